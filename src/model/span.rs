//! The owned span every later stage works with. Attribute values are kept as text: OTLP's
//! typed values are rendered once (numbers in decimal, booleans as `true`/`false`, arrays and
//! maps as JSON), because frameworks disagree on types anyway (LiveKit sends booleans as
//! strings) and conventions parse what they need.

use std::sync::Arc;

use super::ids::{SpanId, TraceId};

/// What the allocator keeps beside each small allocation: jemalloc (the server's) rounds each
/// block up to its size class and glibc's malloc (the tests') keeps a header of 8 bytes and
/// rounds up to 16; either way a block costs about 16 bytes more than asked.
pub const ALLOCATION_OVERHEAD: usize = 16;

/// What a heap allocation of `capacity` bytes takes, its allocator overhead included; nothing
/// for an empty one, which Rust does not allocate.
pub fn heap_bytes(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        capacity + ALLOCATION_OVERHEAD
    }
}

/// Largest magnitude a numeric attribute may have. No latency, count, duration or price in a
/// conversation comes near it, and the bound keeps every sum and product derived from such
/// values finite, so that no `inf` reaches a stored row, a sort or a list cursor.
pub const MAX_NUMBER: f64 = 1e12;

#[derive(Debug, Clone, Default, PartialEq, Hash)]
pub struct Attributes(pub Vec<(String, String)>);

impl Attributes {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first of `keys` that is present with a non-empty value.
    pub fn first_of(&self, keys: &[&str]) -> Option<&str> {
        keys.iter()
            .find_map(|key| self.get(key).filter(|v| !v.is_empty()))
    }

    /// A number within [`MAX_NUMBER`]; `inf`, `NaN` and absurd magnitudes count as absent.
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.abs() <= MAX_NUMBER)
    }

    /// A whole number up to [`MAX_NUMBER`], also when sent as a float (`12.0`).
    pub fn u64(&self, key: &str) -> Option<u64> {
        let value = self.get(key)?.trim();
        let number = match value.parse::<u64>() {
            Ok(n) => n as f64,
            Err(_) => value.parse::<f64>().ok()?,
        };
        (0.0..=MAX_NUMBER)
            .contains(&number)
            .then_some(number as u64)
    }

    /// Booleans arrive as OTLP bools or as the strings "true"/"false" (LiveKit).
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)?.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether any key starts with `prefix`: one look before many lookups of keys under it.
    pub fn has_key_starting(&self, prefix: &str) -> bool {
        self.0.iter().any(|(k, _)| k.starts_with(prefix))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// What these attributes take on the heap: the list and each key and value, as
    /// allocated (see [`heap_bytes`]). The struct itself is counted by what holds it.
    pub fn memory_bytes(&self) -> usize {
        heap_bytes(self.0.capacity() * std::mem::size_of::<(String, String)>())
            + self
                .0
                .iter()
                .map(|(k, v)| heap_bytes(k.capacity()) + heap_bytes(v.capacity()))
                .sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Attributes(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub fn from_otlp(value: i32) -> Self {
        match value {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            SpanKind::Unspecified => "UNSPECIFIED",
            SpanKind::Internal => "INTERNAL",
            SpanKind::Server => "SERVER",
            SpanKind::Client => "CLIENT",
            SpanKind::Producer => "PRODUCER",
            SpanKind::Consumer => "CONSUMER",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "INTERNAL" => SpanKind::Internal,
            "SERVER" => SpanKind::Server,
            "CLIENT" => SpanKind::Client,
            "PRODUCER" => SpanKind::Producer,
            "CONSUMER" => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn from_otlp(value: i32) -> Self {
        match value {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            StatusCode::Unset => "UNSET",
            StatusCode::Ok => "OK",
            StatusCode::Error => "ERROR",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "OK" => StatusCode::Ok,
            "ERROR" => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Hash)]
pub struct SpanEvent {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Hash)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub attributes: Attributes,
}

/// `Hash` covers every field, so that a hash of a span stands for its whole content.
#[derive(Debug, Clone, PartialEq, Hash)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub status_code: StatusCode,
    pub status_message: String,
    pub attributes: Attributes,
    /// Shared by every span of its `ResourceSpans` (often dozens of attributes).
    pub resource: Arc<Attributes>,
    /// Shared by every span of its `ScopeSpans`.
    pub scope_name: Arc<str>,
    pub scope_version: Arc<str>,
    pub events: Vec<SpanEvent>,
    pub links: Vec<SpanLink>,
    pub dropped_attributes_count: u32,
    pub dropped_events_count: u32,
    pub dropped_links_count: u32,
}

impl Span {
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    pub fn is_error(&self) -> bool {
        self.status_code == StatusCode::Error
    }

    /// What this span takes in memory, its struct included, apart from the resource and
    /// scope it shares with the other spans of its request (see [`Span::shared_bytes`]).
    /// Counts what is allocated (capacities, struct sizes, allocator overhead), not the
    /// lengths of the texts, so it follows what the process really holds.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Span>() + self.heap_bytes()
    }

    /// [`Span::memory_bytes`] without the struct itself, for spans held in a list that
    /// counts its own capacity.
    pub fn heap_bytes(&self) -> usize {
        let events: usize = self
            .events
            .iter()
            .map(|e| heap_bytes(e.name.capacity()) + e.attributes.memory_bytes())
            .sum();
        let links: usize = self.links.iter().map(|l| l.attributes.memory_bytes()).sum();
        heap_bytes(self.trace_state.capacity())
            + heap_bytes(self.name.capacity())
            + heap_bytes(self.status_message.capacity())
            + self.attributes.memory_bytes()
            + heap_bytes(self.events.capacity() * std::mem::size_of::<SpanEvent>())
            + events
            + heap_bytes(self.links.capacity() * std::mem::size_of::<SpanLink>())
            + links
    }

    /// What the resource and scope this span shares with the other spans of its request take:
    /// count them once per request (or per trace), not per span.
    pub fn shared_bytes(&self) -> usize {
        shared_bytes(&self.resource, &self.scope_name, &self.scope_version)
    }

    pub fn service_name(&self) -> &str {
        self.resource.get("service.name").unwrap_or("")
    }
}

/// What a resource and a scope name and version take, each in its `Arc` (two counters
/// before the value).
pub fn shared_bytes(
    resource: &Arc<Attributes>,
    scope_name: &Arc<str>,
    version: &Arc<str>,
) -> usize {
    const COUNTERS: usize = 2 * std::mem::size_of::<usize>();
    heap_bytes(COUNTERS + std::mem::size_of::<Attributes>())
        + resource.memory_bytes()
        + heap_bytes(COUNTERS + scope_name.len())
        + heap_bytes(COUNTERS + version.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_out_of_bounds_count_as_absent() {
        let attrs: Attributes = [
            ("ok", "1.5"),
            ("whole", "12.0"),
            ("inf", "inf"),
            ("nan", "NaN"),
            ("huge", "1e306"),
            ("negative", "-3"),
            ("max", "18446744073709551615"),
        ]
        .into_iter()
        .collect();
        assert_eq!(attrs.f64("ok"), Some(1.5));
        assert_eq!(attrs.u64("whole"), Some(12));
        assert_eq!(attrs.f64("negative"), Some(-3.0));
        for key in ["inf", "nan", "huge", "max"] {
            assert_eq!(attrs.f64(key), None, "{key}");
            assert_eq!(attrs.u64(key), None, "{key}");
        }
        assert_eq!(attrs.u64("negative"), None);
    }
}
