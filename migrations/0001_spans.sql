-- Raw spans: the source of truth. Every derived row is rebuilt from these.
-- ReplacingMergeTree drops re-sent copies of a span (OTLP clients retry) when parts merge;
-- readers that need exact counts before a merge deduplicate by (trace_id, span_id).
CREATE TABLE IF NOT EXISTS spans (
    trace_id String,
    span_id String,
    parent_span_id String,
    trace_state String,
    flags UInt32,
    name String,
    kind String,
    start_time DateTime,
    start_time_unix_nano UInt64,
    end_time_unix_nano UInt64,
    duration_ns UInt64,
    status_code String,
    status_message String,
    service_name String,
    scope_name String,
    scope_version String,
    attributes Nested(key String, value String),
    resource_attributes Nested(key String, value String),
    events Nested(time_unix_nano UInt64, name String, attributes String),
    links Nested(trace_id String, span_id String, attributes String),
    dropped_attributes_count UInt32,
    dropped_events_count UInt32,
    dropped_links_count UInt32,
    ingested_at_unix_nano UInt64
) ENGINE = ReplacingMergeTree(ingested_at_unix_nano)
PARTITION BY toYYYYMMDD(start_time)
ORDER BY (trace_id, span_id)
