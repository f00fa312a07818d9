//! The query language of the conversation list and the export: which filters and sort orders
//! exist (with their parameter names and documentation), and parsing `name=value` pairs into
//! a checked query. The API, the pages and `convolog export` all read it; `store` turns a
//! parsed query into SQL.
//!
//! A filter on one more `sessions` column is one entry in [`FILTERS`]; a sort order is one
//! entry in [`SORTS`]. The OpenAPI document's query parameters are built from both.

mod filter;
mod gaps;
mod sort;

pub use filter::{session_filter, FilterKind, FilterSpec, FilterValue, SessionFilter, FILTERS};
pub use gaps::{
    gap_query, GapQuery, DEFAULT_EXAMPLES, DEFAULT_LOW_CONFIDENCE, DEFAULT_USUALLY_CITES,
    MAX_EXAMPLES,
};
pub use sort::{cursor, encode_cursor, sort, After, Sort, SortSpec, SortValue, SORTS};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;
const MAX_VALUE_CHARS: usize = 500;

/// A parameter that is malformed, out of range, repeated or unknown.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid parameter {name}: {why}")]
pub struct QueryError {
    pub name: String,
    pub why: String,
}

impl QueryError {
    /// Names the parameter and says what is wrong with it.
    pub fn new(name: impl Into<String>, why: impl Into<String>) -> QueryError {
        QueryError {
            name: name.into(),
            why: why.into(),
        }
    }
}

/// The decoded `name=value` pairs of a query; parameters are taken out as they are read,
/// and whatever is left at the end is unknown.
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// A URL query string.
    pub fn parse(raw: Option<&str>) -> Result<Params, QueryError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| QueryError::new("query string", e.to_string()))?;
        Params::from_pairs(pairs)
    }

    /// Parameters already split into pairs; each value is held to the same length limit.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Params, QueryError> {
        for (name, value) in &pairs {
            if value.chars().count() > MAX_VALUE_CHARS {
                return Err(QueryError::new(
                    name.clone(),
                    format!("longer than {MAX_VALUE_CHARS} characters"),
                ));
            }
        }
        Ok(Params { pairs })
    }

    fn take(&mut self, name: &str) -> Vec<String> {
        let (taken, rest) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(n, _)| n == name);
        self.pairs = rest;
        taken.into_iter().map(|(_, v)| v).collect()
    }

    /// A parameter given at most once.
    pub fn one(&mut self, name: &str) -> Result<Option<String>, QueryError> {
        let mut values = self.take(name);
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            _ => Err(QueryError::new(name, "given more than once")),
        }
    }

    /// Values of a parameter given repeatedly and/or comma-separated; none may be empty.
    pub fn many(&mut self, name: &str) -> Result<Vec<String>, QueryError> {
        let mut out = Vec::new();
        for value in self.take(name) {
            for part in value.split(',') {
                let part = part.trim();
                if part.is_empty() {
                    return Err(QueryError::new(name, "an empty value"));
                }
                out.push(part.to_owned());
            }
        }
        Ok(out)
    }

    pub fn bool(&mut self, name: &str) -> Result<Option<bool>, QueryError> {
        self.one(name)?
            .map(|v| match v.as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                other => Err(QueryError::new(
                    name,
                    format!("{other:?} is not true or false"),
                )),
            })
            .transpose()
    }

    fn number(&mut self, name: &str) -> Result<Option<f64>, QueryError> {
        self.one(name)?
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| QueryError::new(name, format!("{v:?} is not a number")))
            })
            .transpose()
    }

    fn instant(&mut self, name: &str, now_unix_seconds: u64) -> Result<Option<u64>, QueryError> {
        self.one(name)?
            .map(|v| {
                crate::timefmt::parse_since(&v, now_unix_seconds)
                    .map(|s| s.saturating_mul(1_000_000_000))
                    .map_err(|why| QueryError::new(name, why))
            })
            .transpose()
    }

    /// Fails on the first parameter nobody read.
    pub fn finish(self) -> Result<(), QueryError> {
        match self.pairs.into_iter().next() {
            Some((name, _)) => Err(QueryError::new(
                name,
                "unknown parameter (see /openapi.json)",
            )),
            None => Ok(()),
        }
    }
}

/// How many rows a page holds.
pub fn limit(p: &mut Params) -> Result<u32, QueryError> {
    match p.one("limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                QueryError::new(
                    "limit",
                    format!("{v:?} is not a whole number from 1 to {MAX_LIMIT}"),
                )
            }),
    }
}

#[cfg(test)]
mod tests;
