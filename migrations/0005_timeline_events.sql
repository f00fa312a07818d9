-- What the audit timeline shows beyond turns, messages, tool calls, interruptions and
-- issues: each change of the intent, flow or node a span states, each handoff, and each
-- failed span that is not a tool call. Written by the sessionizer with the other children,
-- so the API reads them instead of reading the conventions over every span again.
-- kind is 'intent', 'handoff' or 'error'; turn_number 0 means before the first turn.
CREATE TABLE IF NOT EXISTS timeline_events (
    session_id String,
    revision UInt64,
    event_index UInt32,
    kind String,
    turn_number UInt32,
    time DateTime,
    time_unix_nano UInt64,
    span_name String,
    intent String,
    flow String,
    node String,
    handoff_target String,
    status_message String,
    trace_id String,
    span_id String
) ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(time)
ORDER BY (session_id, event_index);

CREATE VIEW IF NOT EXISTS timeline_events_current AS
    SELECT * FROM timeline_events WHERE (session_id, revision) IN (SELECT session_id, revision FROM sessions_current)
