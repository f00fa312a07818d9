-- Log records received over OTLP, as received (after validation). A record is not tied to a
-- session when stored: readers find a session's records through its traces (trace_id) or,
-- for a record whose trace belongs to no session, the session key the record states itself
-- (session_key, the same key rules as spans). So records that arrive before or after their
-- spans, or whose trace later moves to another session, always show where the spans are.
-- Partitioned by month like the transcript tables, and dropped with them after
-- `retention.transcript_days`. ReplacingMergeTree drops re-sent copies (OTLP clients retry)
-- when parts merge; readers that need exact rows before a merge take each record once.
-- time_unix_nano is the record's time, or its observed time when the time was not set.
CREATE TABLE IF NOT EXISTS logs (
    time DateTime,
    time_unix_nano UInt64,
    observed_time_unix_nano UInt64,
    severity_number UInt8,
    severity_text String,
    body String,
    attributes Nested(key String, value String),
    resource_attributes Nested(key String, value String),
    service_name String,
    scope_name String,
    scope_version String,
    trace_id String,
    span_id String,
    event_name String,
    session_key String,
    dropped_attributes_count UInt32,
    ingested_at_unix_nano UInt64
) ENGINE = ReplacingMergeTree(ingested_at_unix_nano)
PARTITION BY toYYYYMM(time)
ORDER BY (trace_id, span_id, time_unix_nano, observed_time_unix_nano, severity_number, cityHash64(body))
