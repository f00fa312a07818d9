//! The `spans` table: every received span, as received (after validation).

use std::collections::BTreeMap;
use std::sync::Arc;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::model::conversation::unix_seconds;
use crate::model::{Attributes, Span, SpanEvent, SpanId, SpanKind, SpanLink, StatusCode, TraceId};

/// A row of `spans` as read back.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct SpanRow {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    pub kind: String,
    pub start_time: u32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub duration_ns: u64,
    pub status_code: String,
    pub status_message: String,
    pub service_name: String,
    pub scope_name: String,
    pub scope_version: String,
    #[serde(rename = "attributes.key")]
    pub attribute_keys: Vec<String>,
    #[serde(rename = "attributes.value")]
    pub attribute_values: Vec<String>,
    #[serde(rename = "resource_attributes.key")]
    pub resource_keys: Vec<String>,
    #[serde(rename = "resource_attributes.value")]
    pub resource_values: Vec<String>,
    #[serde(rename = "events.time_unix_nano")]
    pub event_times: Vec<u64>,
    #[serde(rename = "events.name")]
    pub event_names: Vec<String>,
    #[serde(rename = "events.attributes")]
    pub event_attributes: Vec<String>,
    #[serde(rename = "links.trace_id")]
    pub link_trace_ids: Vec<String>,
    #[serde(rename = "links.span_id")]
    pub link_span_ids: Vec<String>,
    #[serde(rename = "links.attributes")]
    pub link_attributes: Vec<String>,
    pub dropped_attributes_count: u32,
    pub dropped_events_count: u32,
    pub dropped_links_count: u32,
    pub ingested_at_unix_nano: u64,
}

/// A span as one row of `spans`, borrowed from the span and encoded straight into the insert:
/// nothing is copied per row, neither the span's own fields nor the resource and scope its
/// request's spans share.
#[derive(Row, Serialize)]
pub struct SpanInsert<'a> {
    trace_id: Hex<'a>,
    span_id: Hex<'a>,
    parent_span_id: Hex<'a>,
    trace_state: &'a str,
    flags: u32,
    name: &'a str,
    kind: &'a str,
    start_time: u32,
    start_time_unix_nano: u64,
    end_time_unix_nano: u64,
    duration_ns: u64,
    status_code: &'a str,
    status_message: &'a str,
    service_name: &'a str,
    scope_name: &'a str,
    scope_version: &'a str,
    #[serde(rename = "attributes.key")]
    attribute_keys: Each<'a, (String, String), &'a str>,
    #[serde(rename = "attributes.value")]
    attribute_values: Each<'a, (String, String), &'a str>,
    #[serde(rename = "resource_attributes.key")]
    resource_keys: Each<'a, (String, String), &'a str>,
    #[serde(rename = "resource_attributes.value")]
    resource_values: Each<'a, (String, String), &'a str>,
    #[serde(rename = "events.time_unix_nano")]
    event_times: Each<'a, SpanEvent, u64>,
    #[serde(rename = "events.name")]
    event_names: Each<'a, SpanEvent, &'a str>,
    #[serde(rename = "events.attributes")]
    event_attributes: Each<'a, SpanEvent, String>,
    #[serde(rename = "links.trace_id")]
    link_trace_ids: Each<'a, SpanLink, Hex<'a>>,
    #[serde(rename = "links.span_id")]
    link_span_ids: Each<'a, SpanLink, Hex<'a>>,
    #[serde(rename = "links.attributes")]
    link_attributes: Each<'a, SpanLink, String>,
    dropped_attributes_count: u32,
    dropped_events_count: u32,
    dropped_links_count: u32,
    ingested_at_unix_nano: u64,
}

impl<'a> SpanInsert<'a> {
    pub fn new(span: &'a Span, ingested_at_unix_nano: u64) -> SpanInsert<'a> {
        SpanInsert {
            trace_id: Hex(span.trace_id.as_bytes()),
            span_id: Hex(span.span_id.as_bytes()),
            parent_span_id: Hex(span.parent_span_id.as_ref().map_or(&[], |p| p.as_bytes())),
            trace_state: &span.trace_state,
            flags: span.flags,
            name: &span.name,
            kind: span.kind.as_str(),
            start_time: unix_seconds(span.start_unix_nano),
            start_time_unix_nano: span.start_unix_nano,
            end_time_unix_nano: span.end_unix_nano,
            duration_ns: span.duration_nanos(),
            status_code: span.status_code.as_str(),
            status_message: &span.status_message,
            service_name: span.service_name(),
            scope_name: &span.scope_name,
            scope_version: &span.scope_version,
            attribute_keys: Each(&span.attributes.0, |(k, _)| k),
            attribute_values: Each(&span.attributes.0, |(_, v)| v),
            resource_keys: Each(&span.resource.0, |(k, _)| k),
            resource_values: Each(&span.resource.0, |(_, v)| v),
            event_times: Each(&span.events, |e| e.time_unix_nano),
            event_names: Each(&span.events, |e| &e.name),
            event_attributes: Each(&span.events, |e| to_json(&e.attributes)),
            link_trace_ids: Each(&span.links, |l| Hex(l.trace_id.as_bytes())),
            link_span_ids: Each(&span.links, |l| Hex(l.span_id.as_bytes())),
            link_attributes: Each(&span.links, |l| to_json(&l.attributes)),
            dropped_attributes_count: span.dropped_attributes_count,
            dropped_events_count: span.dropped_events_count,
            dropped_links_count: span.dropped_links_count,
            ingested_at_unix_nano,
        }
    }
}

/// An id as lowercase hex text (empty for no id), written without allocating.
pub(super) struct Hex<'a>(pub(super) &'a [u8]);

impl Serialize for Hex<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; 32];
        let text = text
            .get_mut(..self.0.len() * 2)
            .ok_or_else(|| serde::ser::Error::custom("id longer than 16 bytes"))?;
        hex::encode_to_slice(self.0, text).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(std::str::from_utf8(text).map_err(serde::ser::Error::custom)?)
    }
}

/// One array column: a field of each item of a span's list, written without collecting it.
pub(super) struct Each<'a, T, V>(pub(super) &'a [T], pub(super) fn(&'a T) -> V);

impl<'a, T, V: Serialize> Serialize for Each<'a, T, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(self.1))
    }
}

/// Attributes of events and links are stored as one JSON object each.
fn to_json(attributes: &Attributes) -> String {
    let map: BTreeMap<&str, &str> = attributes.iter().collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
}

fn from_json(text: &str) -> Result<Attributes, StoreError> {
    let map: BTreeMap<String, String> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("event or link attributes: {e}")))?;
    Ok(Attributes(map.into_iter().collect()))
}

impl SpanRow {
    pub fn into_span(self) -> Result<Span, StoreError> {
        let corrupt = |e: crate::model::IdError| StoreError::Corrupt(e.to_string());
        let events = self
            .event_times
            .iter()
            .zip(self.event_names)
            .zip(self.event_attributes.iter())
            .map(|((time, name), attributes)| {
                Ok(SpanEvent {
                    time_unix_nano: *time,
                    name,
                    attributes: from_json(attributes)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let links = self
            .link_trace_ids
            .iter()
            .zip(self.link_span_ids.iter())
            .zip(self.link_attributes.iter())
            .map(|((trace, span), attributes)| {
                Ok(SpanLink {
                    trace_id: TraceId::from_hex(trace).map_err(corrupt)?,
                    span_id: SpanId::from_hex(span).map_err(corrupt)?,
                    attributes: from_json(attributes)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Span {
            trace_id: TraceId::from_hex(&self.trace_id).map_err(corrupt)?,
            span_id: SpanId::from_hex(&self.span_id).map_err(corrupt)?,
            parent_span_id: if self.parent_span_id.is_empty() {
                None
            } else {
                Some(SpanId::from_hex(&self.parent_span_id).map_err(corrupt)?)
            },
            trace_state: self.trace_state,
            flags: self.flags,
            name: self.name,
            kind: SpanKind::parse(&self.kind),
            start_unix_nano: self.start_time_unix_nano,
            end_unix_nano: self.end_time_unix_nano,
            status_code: StatusCode::parse(&self.status_code),
            status_message: self.status_message,
            attributes: Attributes(
                self.attribute_keys
                    .into_iter()
                    .zip(self.attribute_values)
                    .collect(),
            ),
            resource: Arc::new(Attributes(
                self.resource_keys
                    .into_iter()
                    .zip(self.resource_values)
                    .collect(),
            )),
            scope_name: self.scope_name.into(),
            scope_version: self.scope_version.into(),
            events,
            links,
            dropped_attributes_count: self.dropped_attributes_count,
            dropped_events_count: self.dropped_events_count,
            dropped_links_count: self.dropped_links_count,
        })
    }
}

/// How far the clocks of convolog (which stamps `ingested_at_unix_nano`) and ClickHouse (which
/// stamps parts) may disagree without the catch-up missing a span.
const CATCH_UP_CLOCK_SLACK_SECONDS: u64 = 3600;

/// The partitions of `spans` with a part written since an instant (seconds).
/// `parts` and `table` as [`Store::parts_of`] gives them for `spans`.
pub(super) fn span_partitions_written_sql(parts: &str) -> String {
    format!(
        "SELECT DISTINCT partition FROM {parts} \
         WHERE database = ? AND table = ? AND active AND modification_time >= toDateTime(?)"
    )
}

/// Traces with spans ingested in a range, with the newest stamp in it, in `days` days
/// (partitions) of `spans`.
pub(super) fn traces_ingested_sql(days: usize) -> String {
    format!(
        "SELECT trace_id, max(ingested_at_unix_nano) FROM spans WHERE toYYYYMMDD(start_time) IN {} \
         AND ingested_at_unix_nano > ? AND ingested_at_unix_nano <= ? GROUP BY trace_id",
        placeholders(days)
    )
}

/// The days (`toYYYYMMDD(start_time)`, the partition key of `spans`) of these partitions.
fn partition_days(partitions: &[String]) -> Result<Vec<u32>, StoreError> {
    partitions
        .iter()
        .map(|p| {
            p.trim_matches('\'')
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("spans partition {p:?} is not a day")))
        })
        .collect()
}

/// `(?, ?, ...)` for an IN list: 18.16 does not accept an array on the right of IN.
pub(super) fn placeholders(n: usize) -> String {
    format!("({})", vec!["?"; n.max(1)].join(", "))
}

/// IN lists are sent in chunks of at most this many values...
const IN_CHUNK_VALUES: usize = 1000;
/// ...and this many bytes of values. Bound values are inlined into the query text, which
/// must stay under the server's `max_query_size` (256 KiB by default); escaping can at most
/// double a value, so 64 KiB leaves room for it and the rest of the query.
const IN_CHUNK_BYTES: usize = 64 * 1024;

/// `values` split into runs that each fit one IN list. A value larger than the byte budget
/// goes alone; keys are length-limited before they get here (see `sessionize::MAX_KEY_BYTES`).
pub(super) fn in_chunks(values: &[String]) -> Vec<&[String]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, value) in values.iter().enumerate() {
        let full = i - start == IN_CHUNK_VALUES || bytes + value.len() > IN_CHUNK_BYTES;
        if full && i > start {
            chunks.push(&values[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += value.len();
    }
    if start < values.len() {
        chunks.push(&values[start..]);
    }
    chunks
}

impl Store {
    pub async fn insert_spans(
        &self,
        spans: &[&Span],
        ingested_at_unix_nano: u64,
    ) -> Result<(), StoreError> {
        let _hold = self.hold_writes().await;
        self.timed("spans", async {
            let mut insert = self.client.insert::<SpanInsert<'_>>("spans").await?;
            for span in spans {
                insert
                    .write(&SpanInsert::new(span, ingested_at_unix_nano))
                    .await?;
            }
            insert.end().await?;
            Ok(())
        })
        .await
    }

    /// All stored spans of these traces, each span once (re-sent copies collapse).
    pub async fn load_spans(&self, trace_ids: &[String]) -> Result<Vec<Span>, StoreError> {
        let stamped = self.load_stamped_spans(trace_ids).await?;
        Ok(stamped.into_iter().map(|(_, span)| span).collect())
    }

    /// [`Store::load_spans`], each span with the stamp of the insert that stored its copy.
    pub async fn load_stamped_spans(
        &self,
        trace_ids: &[String],
    ) -> Result<Vec<(u64, Span)>, StoreError> {
        let mut spans = Vec::new();
        for chunk in in_chunks(trace_ids) {
            let sql = format!(
                "SELECT ?fields FROM spans WHERE trace_id IN {} ORDER BY trace_id, span_id, ingested_at_unix_nano DESC LIMIT 1 BY trace_id, span_id",
                placeholders(chunk.len())
            );
            let rows: Vec<SpanRow> = self
                .timed("load spans", async {
                    let mut query = self.client.query(&sql);
                    for id in chunk {
                        query = query.bind(id);
                    }
                    Ok(query.fetch_all::<SpanRow>().await?)
                })
                .await?;
            for row in rows {
                let ingested_at = row.ingested_at_unix_nano;
                spans.push((ingested_at, row.into_span()?));
            }
        }
        Ok(spans)
    }

    /// Traces with spans ingested in (after, until], each with the newest stamp in that range,
    /// for catching up after a restart or another instance's failure. Only
    /// the days (partitions of `spans`) with a part written since `after` are read, not the
    /// whole table: a row is in a part written (inserted, merged or mutated) after the row was
    /// stamped, give or take the clocks of convolog and ClickHouse, which
    /// [`CATCH_UP_CLOCK_SLACK_SECONDS`] allows for.
    pub async fn traces_ingested_between(
        &self,
        after_unix_nano: u64,
        until_unix_nano: u64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let written_since =
            (after_unix_nano / 1_000_000_000).saturating_sub(CATCH_UP_CLOCK_SLACK_SECONDS);
        let (parts, table) = self.parts_of("spans");
        let sql = span_partitions_written_sql(&parts);
        let partitions = self
            .timed("span partitions written", async {
                Ok(self
                    .client
                    .query(&sql)
                    .bind(&self.database)
                    .bind(&table)
                    .bind(u32::try_from(written_since).unwrap_or(u32::MAX))
                    .fetch_all::<String>()
                    .await?)
            })
            .await?;
        let days = partition_days(&partitions)?;
        if days.is_empty() {
            return Ok(Vec::new());
        }
        let sql = traces_ingested_sql(days.len());
        self.timed("traces ingested", async {
            let mut query = self.client.query(&sql);
            for day in &days {
                query = query.bind(day);
            }
            Ok(query
                .bind(after_unix_nano)
                .bind(until_unix_nano)
                .fetch_all::<(String, u64)>()
                .await?)
        })
        .await
    }

    /// Traces with a span starting at or after `since` (seconds), for `rebuild --since`.
    pub async fn traces_started_since(
        &self,
        since_unix_seconds: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.timed("traces since", async {
            Ok(self
                .client
                .query("SELECT DISTINCT trace_id FROM spans WHERE start_time >= toDateTime(?)")
                .bind(since_unix_seconds)
                .fetch_all::<String>()
                .await?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_partitions_are_days() {
        let days = partition_days(&["20261201".into(), "19700101".into()]).expect("days");
        assert_eq!(days, [20261201, 19700101]);
        assert!(partition_days(&["tuple()".into()]).is_err());
    }

    #[test]
    fn in_chunks_bound_values_and_bytes() {
        let small: Vec<String> = (0..2500).map(|i| i.to_string()).collect();
        let sizes: Vec<usize> = in_chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);

        // Six 60 KB ids once made one query over `max_query_size`.
        let large: Vec<String> = (0..6).map(|i| i.to_string().repeat(60_000)).collect();
        let chunks = in_chunks(&large);
        assert_eq!(chunks.len(), 6);
        assert_eq!(chunks.concat(), large);
        let huge = vec!["x".repeat(IN_CHUNK_BYTES * 2)];
        assert_eq!(in_chunks(&huge), [&huge[..]]);
        assert!(in_chunks(&[]).is_empty());
    }
}
