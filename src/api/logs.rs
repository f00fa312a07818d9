//! A session's log records as JSON (`GET /v1/sessions/{id}/logs`): each at its time, linked
//! to the span it was written in and the turn it falls in, with severity and text filters and
//! cursor paging.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::model::log::{severity_floor, severity_name};
use crate::query::{self, Params, QueryError};
use crate::sessionize::logs::{turn_at, turn_spans};
use crate::store::{LogLine, LogQuery, SessionDetail};
use crate::timefmt::{offset, rfc3339};

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionLogs {
    pub session_id: String,
    pub records: Vec<LogRecordJson>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogRecordJson {
    /// RFC 3339 (the record's time, or when it was observed if it had none).
    pub time: String,
    /// `mm:ss.mmm` from the session start.
    pub at: String,
    pub offset_ms: f64,
    /// The turn the record falls in; none before the first turn.
    pub turn_number: Option<u32>,
    /// 1..24 as OTLP defines them (17..24 is ERROR or worse); 0 when not given.
    pub severity_number: u8,
    /// The severity text as sent, else the name of its number (TRACE ... FATAL).
    pub severity: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub event_name: String,
    pub service_name: String,
    pub scope_name: String,
    /// The trace and span the record was written in (empty when not given).
    pub trace_id: String,
    pub span_id: String,
    /// The name of that span, when it is stored.
    pub span_name: String,
}

/// What `/logs` was asked for.
pub fn parse_query(p: &mut Params) -> Result<LogQuery, QueryError> {
    let min_severity = match p.one("severity")? {
        None => 0,
        Some(text) => severity_floor(&text).ok_or_else(|| {
            QueryError::new(
                "severity",
                format!(
                    "{text:?} is not trace, debug, info, warn, error, fatal or a number 1 to 24"
                ),
            )
        })?,
    };
    let text = match p.one("q")? {
        Some(q) if q.trim().is_empty() => return Err(QueryError::new("q", "empty search text")),
        other => other,
    };
    let after = p.one("cursor")?.map(|c| decode_cursor(&c)).transpose()?;
    let limit = u64::from(query::limit(p)?);
    Ok(LogQuery {
        min_severity,
        text,
        after,
        limit,
    })
}

fn decode_cursor(cursor: &str) -> Result<(u64, u64), QueryError> {
    let invalid = || QueryError::new("cursor", "not a cursor this endpoint gave");
    let (time, key) = cursor.split_once('.').ok_or_else(invalid)?;
    Ok((
        time.parse().map_err(|_| invalid())?,
        u64::from_str_radix(key, 16).map_err(|_| invalid())?,
    ))
}

fn encode_cursor(line: &LogLine) -> String {
    format!("{}.{:x}", line.time_unix_nano, line.record_key)
}

/// The records as JSON, each with its turn. `full_page` says the page was filled, so the
/// last record's position is the next page's cursor.
pub fn build(detail: &SessionDetail, lines: &[LogLine], full_page: bool) -> SessionLogs {
    SessionLogs {
        session_id: detail.session.session_id.clone(),
        records: records(detail, lines),
        next_cursor: lines.last().filter(|_| full_page).map(encode_cursor),
    }
}

pub fn records(detail: &SessionDetail, lines: &[LogLine]) -> Vec<LogRecordJson> {
    let turns = turn_spans(&detail.turns);
    let start = detail.session.start_time_unix_nano;
    lines
        .iter()
        .map(|line| LogRecordJson {
            time: rfc3339(line.time_unix_nano),
            at: offset(start, line.time_unix_nano),
            offset_ms: line.time_unix_nano.saturating_sub(start) as f64 / 1e6,
            turn_number: turn_at(&turns, line.time_unix_nano),
            severity_number: line.severity_number,
            severity: severity_label(line),
            body: line.body.clone(),
            attributes: line
                .attribute_keys
                .iter()
                .cloned()
                .zip(line.attribute_values.iter().cloned())
                .collect(),
            event_name: line.event_name.clone(),
            service_name: line.service_name.clone(),
            scope_name: line.scope_name.clone(),
            trace_id: line.trace_id.clone(),
            span_id: line.span_id.clone(),
            span_name: line.span_name.clone(),
        })
        .collect()
}

pub fn severity_label(line: &LogLine) -> String {
    if line.severity_text.is_empty() {
        severity_name(line.severity_number).to_owned()
    } else {
        line.severity_text.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let line = LogLine {
            time_unix_nano: 1_700_000_000_123_456_789,
            observed_time_unix_nano: 0,
            severity_number: 17,
            severity_text: String::new(),
            body: "boom".into(),
            attribute_keys: vec![],
            attribute_values: vec![],
            service_name: String::new(),
            scope_name: String::new(),
            trace_id: String::new(),
            span_id: String::new(),
            event_name: String::new(),
            span_name: String::new(),
            record_key: u64::MAX - 5,
        };
        let cursor = encode_cursor(&line);
        assert_eq!(
            decode_cursor(&cursor),
            Ok((line.time_unix_nano, u64::MAX - 5))
        );
        assert!(decode_cursor("12").is_err());
        assert!(decode_cursor("x.1").is_err());
        assert_eq!(severity_label(&line), "ERROR");
    }

    #[test]
    fn the_query_takes_severity_names_numbers_text_and_a_limit() {
        let mut p = Params::parse(Some("severity=Warning&q=timeout&limit=10")).expect("parses");
        let query = parse_query(&mut p).expect("valid");
        assert_eq!(query.min_severity, 13);
        assert_eq!(query.text.as_deref(), Some("timeout"));
        assert_eq!(query.limit, 10);
        let mut bad = Params::parse(Some("severity=loud")).expect("parses");
        assert_eq!(
            parse_query(&mut bad).map_err(|e| e.name),
            Err("severity".to_owned())
        );
    }
}
