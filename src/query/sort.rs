//! Sort orders, and the cursor that continues a page where the previous one ended.

use crate::model::conversation::SessionView;

use super::{Params, QueryError};

/// A sort order: one column, and how to read a row's value for the next page's cursor.
#[derive(Debug)]
pub struct SortSpec {
    pub param: &'static str,
    pub column: &'static str,
    pub value: fn(&SessionView) -> SortValue,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SortValue {
    Int(u64),
    /// None for a session without a value: those sort last either way.
    Float(Option<f64>),
}

pub const SORTS: &[SortSpec] = &[
    SortSpec {
        param: "start_time",
        column: "start_time_unix_nano",
        value: |r| SortValue::Int(r.start_time_unix_nano),
    },
    SortSpec {
        param: "duration",
        column: "duration_ms",
        value: |r| SortValue::Float(Some(r.duration_ms)),
    },
    SortSpec {
        param: "latency",
        column: "voice_to_voice_p95_ms",
        value: |r| SortValue::Float(r.voice_to_voice_p95_ms),
    },
    SortSpec {
        param: "voice_to_voice_p95",
        column: "voice_to_voice_p95_ms",
        value: |r| SortValue::Float(r.voice_to_voice_p95_ms),
    },
    SortSpec {
        param: "voice_to_voice_p50",
        column: "voice_to_voice_p50_ms",
        value: |r| SortValue::Float(r.voice_to_voice_p50_ms),
    },
    SortSpec {
        param: "llm_ttft_p50",
        column: "llm_ttft_p50_ms",
        value: |r| SortValue::Float(r.llm_ttft_p50_ms),
    },
    SortSpec {
        param: "turns",
        column: "turn_count",
        value: |r| SortValue::Int(u64::from(r.turn_count)),
    },
    SortSpec {
        param: "cost",
        column: "cost_usd",
        value: |r| SortValue::Float(Some(r.cost_usd)),
    },
];

#[derive(Debug, Clone, Copy)]
pub struct Sort {
    pub spec: &'static SortSpec,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            spec: &SORTS[0],
            descending: true,
        }
    }
}

/// Where the previous page ended: its last row's sort value and session id.
#[derive(Debug, Clone, PartialEq)]
pub struct After {
    pub value: SortValue,
    pub session_id: String,
}

pub fn sort(p: &mut Params) -> Result<Sort, QueryError> {
    let mut sort = Sort::default();
    if let Some(name) = p.one("sort")? {
        sort.spec = SORTS.iter().find(|s| s.param == name).ok_or_else(|| {
            let known: Vec<&str> = SORTS.iter().map(|s| s.param).collect();
            QueryError::new(
                "sort",
                format!("{name:?} is not one of {}", known.join(", ")),
            )
        })?;
    }
    if let Some(order) = p.one("order")? {
        sort.descending = match order.as_str() {
            "desc" => true,
            "asc" => false,
            other => {
                return Err(QueryError::new(
                    "order",
                    format!("{other:?} is not asc or desc"),
                ))
            }
        };
    }
    Ok(sort)
}

/// An opaque token: hex of `v1|sort|order|value|session id`.
pub fn encode_cursor(sort: &Sort, after: &After) -> String {
    let value = match after.value {
        SortValue::Int(v) => format!("i{v}"),
        SortValue::Float(Some(v)) => format!("f{v}"),
        SortValue::Float(None) => "n".to_owned(),
    };
    hex::encode(format!(
        "v1|{}|{}|{value}|{}",
        sort.spec.param,
        if sort.descending { "desc" } else { "asc" },
        after.session_id
    ))
}

pub fn cursor(p: &mut Params, sort: &Sort) -> Result<Option<After>, QueryError> {
    let Some(token) = p.one("cursor")? else {
        return Ok(None);
    };
    let bad = || QueryError::new("cursor", "not a cursor this API returned");
    let text = hex::decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let parts: Vec<&str> = text.splitn(5, '|').collect();
    let [version, sort_name, order, value, session_id] = parts[..] else {
        return Err(bad());
    };
    if version != "v1" {
        return Err(bad());
    }
    let order_now = if sort.descending { "desc" } else { "asc" };
    if sort_name != sort.spec.param || order != order_now {
        return Err(QueryError::new(
            "cursor",
            format!(
                "made for sort={sort_name}&order={order}, not sort={}&order={order_now}",
                sort.spec.param
            ),
        ));
    }
    let value = match (
        value.split_at_checked(1),
        (sort.spec.value)(&Default::default()),
    ) {
        (Some(("i", n)), SortValue::Int(_)) => SortValue::Int(n.parse().map_err(|_| bad())?),
        (Some(("f", n)), SortValue::Float(_)) => SortValue::Float(Some(
            n.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(bad)?,
        )),
        (Some(("n", "")), SortValue::Float(_)) => SortValue::Float(None),
        _ => return Err(bad()),
    };
    Ok(Some(After {
        value,
        session_id: session_id.to_owned(),
    }))
}
