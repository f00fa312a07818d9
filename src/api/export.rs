//! Export of the conversation list as CSV, JSON Lines or one JSON array, written row by row
//! from ClickHouse's response: memory stays flat however many sessions match.

use std::borrow::Cow;

use axum::body::Body;
use bytes::Bytes;

use crate::model::conversation::SessionView;
use crate::query::QueryError;
use crate::store::{SessionStream, StoreError};
use crate::timefmt::rfc3339;

use super::sessions::{Links, SessionJson};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180, CRLF line ends; with `bom`, a UTF-8 byte order mark first (old Excel needs it).
    Csv { bom: bool },
    /// One JSON object per line.
    Jsonl,
    /// One JSON array.
    Json,
}

impl Format {
    /// The names `parse` takes (`ndjson` is also read as `jsonl`); the first is the default.
    pub const NAMES: [&'static str; 3] = ["csv", "jsonl", "json"];

    pub fn parse(name: &str, bom: bool) -> Result<Format, QueryError> {
        match name {
            "csv" => Ok(Format::Csv { bom }),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "json" => Ok(Format::Json),
            other => Err(QueryError::new(
                "format",
                format!("{other:?} is not one of {}", Format::NAMES.join(", ")),
            )),
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            Format::Csv { .. } => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
            Format::Json => "application/json",
        }
    }

    pub fn extension(&self) -> &'static str {
        match self {
            Format::Csv { .. } => "csv",
            Format::Jsonl => "jsonl",
            Format::Json => "json",
        }
    }
}

/// One CSV cell's value.
enum Cell<'a> {
    Text(Cow<'a, str>),
    /// Empty when absent.
    Number(Option<f64>),
    Count(u64),
}

use Cell::{Count, Number, Text};

fn text(value: &str) -> Cell<'_> {
    Text(Cow::Borrowed(value))
}

fn list(values: &[String]) -> Cell<'_> {
    Text(Cow::Owned(values.join("; ")))
}

/// A CSV column: its name, and how a row gives its value.
type CsvColumn = (&'static str, fn(&SessionView) -> Cell<'_>);

/// The CSV columns, in order.
const CSV: [CsvColumn; 40] = [
    ("session_id", |r| text(&r.session_id)),
    ("start_time", |r| {
        Text(rfc3339(r.start_time_unix_nano).into())
    }),
    ("end_time", |r| Text(rfc3339(r.end_time_unix_nano).into())),
    ("duration_ms", |r| Number(Some(r.duration_ms))),
    ("channel", |r| text(&r.channel)),
    ("direction", |r| text(&r.direction)),
    ("environment", |r| text(&r.environment)),
    ("framework", |r| text(&r.framework)),
    ("service_name", |r| text(&r.service_name)),
    ("agent_name", |r| text(&r.agent_name)),
    ("handoff_target", |r| text(&r.handoff_target)),
    ("preview", |r| text(&r.preview)),
    ("turn_count", |r| Count(r.turn_count.into())),
    ("message_count", |r| Count(r.message_count.into())),
    ("interruption_count", |r| Count(r.interruption_count.into())),
    ("tool_call_count", |r| Count(r.tool_call_count.into())),
    ("tool_error_count", |r| Count(r.tool_error_count.into())),
    ("error_span_count", |r| Count(r.error_span_count.into())),
    ("input_tokens", |r| Count(r.input_tokens)),
    ("output_tokens", |r| Count(r.output_tokens)),
    ("models", |r| list(&r.models)),
    ("voice_to_voice_p50_ms", |r| Number(r.voice_to_voice_p50_ms)),
    ("voice_to_voice_p95_ms", |r| Number(r.voice_to_voice_p95_ms)),
    ("llm_ttft_p50_ms", |r| Number(r.llm_ttft_p50_ms)),
    ("state", |r| text(&r.state)),
    ("outcome", |r| text(&r.outcome)),
    ("call_status", |r| text(&r.call_status)),
    ("ended_reason", |r| text(&r.ended_reason)),
    ("intent", |r| text(&r.intent)),
    ("skills", |r| list(&r.skills)),
    ("detected_issues", |r| list(&r.detected_issues)),
    ("cost_usd", |r| Number(Some(r.cost_usd))),
    ("feedback", |r| text(&r.feedback)),
    ("sentiment", |r| text(&r.sentiment)),
    ("topic", |r| text(&r.topic)),
    ("user_name", |r| text(&r.user_name)),
    ("labels", |r| list(&r.labels)),
    ("flagged", |r| {
        text(if r.flagged == 1 { "true" } else { "false" })
    }),
    ("flag_reason", |r| text(&r.flag_reason)),
    ("page", |r| Text(Links::of(&r.session_id).page.into())),
];

/// What the OpenAPI document says of an export's answer.
pub fn response_description() -> String {
    format!(
        "The export (Content-Disposition: attachment). CSV columns: {}.",
        CSV_COLUMNS.join(", ")
    )
}

/// The CSV header: the names of [`CSV`], in order.
pub const CSV_COLUMNS: [&str; CSV.len()] = {
    let mut names = [""; CSV.len()];
    let mut i = 0;
    while i < CSV.len() {
        names[i] = CSV[i].0;
        i += 1;
    }
    names
};

/// Turns rows into bytes of one format: a header, rows, a footer.
pub struct Encoder {
    format: Format,
    rows: u64,
}

/// A text cell: a spreadsheet must not run it as a formula, and quotes, commas and line
/// breaks stay inside the cell.
fn csv_text(out: &mut Vec<u8>, value: &str) {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = formula || value.contains([',', '"', '\n', '\r']) || value.trim() != value;
    if quote {
        out.push(b'"');
    }
    if formula {
        out.push(b'\'');
    }
    for b in value.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    if quote {
        out.push(b'"');
    }
}

fn csv_number(out: &mut Vec<u8>, value: Option<f64>) {
    if let Some(v) = value.filter(|v| v.is_finite()) {
        out.extend_from_slice(v.to_string().as_bytes());
    }
}

impl Encoder {
    pub fn new(format: Format) -> Encoder {
        Encoder { format, rows: 0 }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn header(&self, out: &mut Vec<u8>) {
        match self.format {
            Format::Csv { bom } => {
                if bom {
                    out.extend_from_slice("\u{feff}".as_bytes());
                }
                out.extend_from_slice(CSV_COLUMNS.join(",").as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Format::Jsonl => {}
            Format::Json => out.push(b'['),
        }
    }

    pub fn row(&mut self, row: SessionView, out: &mut Vec<u8>) -> Result<(), StoreError> {
        match self.format {
            Format::Csv { .. } => csv_row(&row, out),
            Format::Jsonl | Format::Json => {
                if self.format == Format::Json {
                    out.extend_from_slice(if self.rows == 0 { b"\n" } else { b",\n" });
                }
                serde_json::to_writer(&mut *out, &SessionJson::of(row))
                    .map_err(|e| StoreError::Corrupt(format!("encoding a session: {e}")))?;
                if self.format == Format::Jsonl {
                    out.push(b'\n');
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    pub fn footer(&self, out: &mut Vec<u8>) {
        if self.format == Format::Json {
            out.extend_from_slice(b"\n]\n");
        }
    }
}

fn csv_row(r: &SessionView, out: &mut Vec<u8>) {
    for (i, (_, value)) in CSV.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match value(r) {
            Text(v) => csv_text(out, &v),
            Number(v) => csv_number(out, v),
            Count(v) => out.extend_from_slice(v.to_string().as_bytes()),
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Bytes per chunk handed to the connection.
const CHUNK: usize = 64 * 1024;

enum Phase {
    Rows,
    Done,
}

/// The response body: `first` (already read, so a store failure before any byte became a
/// proper error answer), then the rest of the stream. A failure later cuts the response short.
pub fn body(first: Option<SessionView>, stream: SessionStream, format: Format) -> Body {
    let mut encoder = Encoder::new(format);
    let mut head = Vec::new();
    encoder.header(&mut head);
    let first_failed = first
        .map(|row| encoder.row(row, &mut head))
        .transpose()
        .err();
    let state = (stream, encoder, Phase::Rows, Some(head), first_failed);
    let chunks = futures::stream::unfold(
        state,
        |(mut stream, mut encoder, phase, head, failed)| async move {
            if let Some(err) = failed {
                return Some((Err(err), (stream, encoder, Phase::Done, None, None)));
            }
            if let Some(head) = head {
                return Some((Ok(Bytes::from(head)), (stream, encoder, phase, None, None)));
            }
            if let Phase::Done = phase {
                return None;
            }
            let mut out = Vec::with_capacity(CHUNK + 4096);
            while out.len() < CHUNK {
                match stream.next().await {
                    Ok(Some(row)) => {
                        if let Err(err) = encoder.row(row, &mut out) {
                            return Some((Err(err), (stream, encoder, Phase::Done, None, None)));
                        }
                    }
                    Ok(None) => {
                        encoder.footer(&mut out);
                        return Some((
                            Ok(Bytes::from(out)),
                            (stream, encoder, Phase::Done, None, None),
                        ));
                    }
                    Err(err) => {
                        tracing::error!(error = %err, rows = encoder.rows(), "export cut short");
                        return Some((Err(err), (stream, encoder, Phase::Done, None, None)));
                    }
                }
            }
            Some((
                Ok(Bytes::from(out)),
                (stream, encoder, Phase::Rows, None, None),
            ))
        },
    );
    Body::from_stream(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(value: &str) -> String {
        let mut out = Vec::new();
        csv_text(&mut out, value);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell("=SUM(A1)"), "\"'=SUM(A1)\"");
        assert_eq!(cell("-1"), "\"'-1\"");
        assert_eq!(cell("Grüße"), "Grüße");
    }

    #[test]
    fn every_format_frames_its_rows() {
        for (format, expect_start, expect_end) in [
            (
                Format::Csv { bom: true },
                "\u{feff}session_id,",
                "/sessions/b\r\n",
            ),
            (Format::Jsonl, "{\"session_id\":\"a\"", "}\n"),
            (Format::Json, "[\n{\"session_id\":\"a\"", "}\n]\n"),
        ] {
            let mut encoder = Encoder::new(format);
            let mut out = Vec::new();
            encoder.header(&mut out);
            for id in ["a", "b"] {
                let row = SessionView {
                    session_id: id.into(),
                    ..Default::default()
                };
                encoder.row(row, &mut out).expect("encodes");
            }
            encoder.footer(&mut out);
            let text = String::from_utf8(out).expect("utf-8");
            assert!(text.starts_with(expect_start), "{text}");
            assert!(text.ends_with(expect_end), "{text}");
            if format == Format::Json {
                let parsed: serde_json::Value = serde_json::from_str(&text).expect("json");
                assert_eq!(parsed.as_array().map(Vec::len), Some(2));
            }
            if let Format::Csv { .. } = format {
                let header = text.lines().next().expect("header");
                assert_eq!(header.matches(',').count(), CSV_COLUMNS.len() - 1);
                let row = text.lines().nth(1).expect("row");
                assert_eq!(row.matches(',').count(), CSV_COLUMNS.len() - 1, "{row}");
            }
        }
    }
}
