//! Log records in the conversation, pure: which session a record names itself, which turn a
//! record falls in, and the `error_logged` issue. Records are tied to sessions when read
//! (through their trace, else this key), never by the span sessionizer, so a record shows at
//! its step whether it arrived before or after its spans.

use crate::conventions;
use crate::model::conversation::TurnRow;
use crate::model::log::SEVERITY_ERROR;
use crate::model::LogRecord;

use super::bounded_key;

/// The detected issue of a session with an ERROR-or-worse log record.
pub const ERROR_LOGGED: &str = "error_logged";

/// The session key a record states in its own attributes, else in its resource (the key
/// attributes and the bound of spans). Used only when the record's trace is in no session.
pub fn session_key(record: &LogRecord) -> Option<String> {
    conventions::session_key(&record.attributes)
        .or_else(|| conventions::session_key(&record.resource))
        .map(bounded_key)
}

/// A turn's number and time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnSpan {
    pub turn_number: u32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

pub fn turn_spans(turns: &[TurnRow]) -> Vec<TurnSpan> {
    turns
        .iter()
        .map(|t| TurnSpan {
            turn_number: t.turn_number,
            start_unix_nano: t.start_time_unix_nano,
            end_unix_nano: t.end_time_unix_nano,
        })
        .collect()
}

/// The turn a record written at `time` belongs to: the turn running then (the latest to start
/// when turns overlap), else the last turn begun before it (a line written after the reply,
/// before the user speaks again); None before the first turn.
pub fn turn_at(turns: &[TurnSpan], time: u64) -> Option<u32> {
    let begun = turns.iter().filter(|t| t.start_unix_nano <= time);
    let running = begun
        .clone()
        .filter(|t| time <= t.end_unix_nano)
        .max_by_key(|t| (t.start_unix_nano, t.turn_number));
    running
        .or_else(|| begun.max_by_key(|t| (t.start_unix_nano, t.turn_number)))
        .map(|t| t.turn_number)
}

/// An `error_logged` issue: the first ERROR-or-worse record of a turn (or of the time before
/// the first turn), and how many there were.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorLogged {
    pub turn_number: Option<u32>,
    pub time_unix_nano: u64,
    pub count: usize,
    pub first_body: String,
}

impl ErrorLogged {
    pub fn detail(&self) -> String {
        const SHOWN_CHARS: usize = 200;
        let body: String = self.first_body.chars().take(SHOWN_CHARS).collect();
        let more = if self.first_body.chars().count() > SHOWN_CHARS {
            "..."
        } else {
            ""
        };
        format!("{} error record(s) logged: {body}{more}", self.count)
    }
}

/// One `error_logged` issue per turn with ERROR-or-worse records, in time order. Records are
/// `(time, severity_number, turn, body)`.
pub fn errors_logged<'a>(
    records: impl IntoIterator<Item = (u64, u8, Option<u32>, &'a str)>,
) -> Vec<ErrorLogged> {
    let mut issues: Vec<ErrorLogged> = Vec::new();
    for (time, severity, turn_number, body) in records {
        if severity < SEVERITY_ERROR {
            continue;
        }
        match issues.iter_mut().find(|i| i.turn_number == turn_number) {
            Some(issue) => {
                issue.count += 1;
                if time < issue.time_unix_nano {
                    issue.time_unix_nano = time;
                    issue.first_body = body.to_owned();
                }
            }
            None => issues.push(ErrorLogged {
                turn_number,
                time_unix_nano: time,
                count: 1,
                first_body: body.to_owned(),
            }),
        }
    }
    issues.sort_by_key(|i| (i.time_unix_nano, i.turn_number));
    issues
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attributes;
    use std::sync::Arc;

    fn turn(turn_number: u32, start: u64, end: u64) -> TurnSpan {
        TurnSpan {
            turn_number,
            start_unix_nano: start,
            end_unix_nano: end,
        }
    }

    #[test]
    fn a_record_falls_in_the_turn_running_else_the_last_begun() {
        let turns = [turn(1, 100, 200), turn(2, 300, 400), turn(3, 350, 380)];
        assert_eq!(turn_at(&turns, 50), None);
        assert_eq!(turn_at(&turns, 100), Some(1));
        assert_eq!(turn_at(&turns, 250), Some(1));
        assert_eq!(turn_at(&turns, 360), Some(3));
        assert_eq!(turn_at(&turns, 390), Some(2));
        assert_eq!(turn_at(&turns, 900), Some(3));
        assert_eq!(turn_at(&[], 900), None);
    }

    #[test]
    fn errors_are_grouped_per_turn_from_the_first() {
        let issues = errors_logged([
            (500, 17, Some(2), "tool failed again"),
            (450, 21, Some(2), "tool failed"),
            (120, 13, Some(1), "slow"),
            (10, 17, None, "startup error"),
        ]);
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].turn_number, None);
        assert_eq!(issues[1].turn_number, Some(2));
        assert_eq!(issues[1].count, 2);
        assert_eq!(issues[1].time_unix_nano, 450);
        assert_eq!(issues[1].detail(), "2 error record(s) logged: tool failed");
        assert!(errors_logged([(1, 16, Some(1), "warn4")]).is_empty());
    }

    #[test]
    fn the_records_own_key_wins_over_its_resource() {
        let record = |attributes: Attributes, resource: Attributes| LogRecord {
            time_unix_nano: 1,
            observed_time_unix_nano: 0,
            severity_number: 9,
            severity_text: String::new(),
            body: String::new(),
            attributes,
            resource: Arc::new(resource),
            scope_name: "".into(),
            scope_version: "".into(),
            trace_id: None,
            span_id: None,
            event_name: String::new(),
            dropped_attributes_count: 0,
        };
        let both = record(
            [("session.id", "own")].into_iter().collect(),
            [("session.id", "process")].into_iter().collect(),
        );
        assert_eq!(session_key(&both).as_deref(), Some("own"));
        let resource_only = record(
            Attributes::default(),
            [("gen_ai.conversation.id", "conv")].into_iter().collect(),
        );
        assert_eq!(session_key(&resource_only).as_deref(), Some("conv"));
        let long = record(
            [("session.id", "k".repeat(300))].into_iter().collect(),
            Attributes::default(),
        );
        assert!(session_key(&long).is_some_and(|k| k.starts_with("sha256:")));
        assert_eq!(
            session_key(&record(Attributes::default(), Attributes::default())),
            None
        );
    }
}
