-- Derived rows. Each sessionizer pass writes a whole session at a new `revision`: children
-- first, the `sessions` row last, so a session row always points at a complete set.
-- Readers take a session's current revision from `sessions_current` and its children at that
-- revision (the *_current views), and ReplacingMergeTree discards older revisions on merge.
CREATE TABLE IF NOT EXISTS sessions (
    session_id String,
    revision UInt64,
    deleted UInt8,
    start_time DateTime,
    start_time_unix_nano UInt64,
    end_time_unix_nano UInt64,
    duration_ms Float64,
    trace_ids Array(String),
    framework String,
    service_name String,
    agent_name String,
    environment String,
    channel String,
    direction String,
    handoff_target String,
    preview String,
    turn_count UInt32,
    message_count UInt32,
    interruption_count UInt32,
    tool_call_count UInt32,
    tool_error_count UInt32,
    span_count UInt32,
    error_span_count UInt32,
    input_tokens UInt64,
    output_tokens UInt64,
    models Array(String),
    voice_to_voice_p50_ms Nullable(Float64),
    voice_to_voice_p95_ms Nullable(Float64),
    llm_ttft_p50_ms Nullable(Float64),
    updated_at DateTime
) ENGINE = ReplacingMergeTree(revision)
ORDER BY session_id;

-- Which session each trace belongs to, as last resolved. Lets the sessionizer notice when a
-- trace moves (its session key arrived late), so the old session is rewritten too.
CREATE TABLE IF NOT EXISTS trace_sessions (
    trace_id String,
    session_id String,
    revision UInt64
) ENGINE = ReplacingMergeTree(revision)
ORDER BY trace_id;

CREATE TABLE IF NOT EXISTS turns (
    session_id String,
    revision UInt64,
    turn_number UInt32,
    trace_id String,
    span_id String,
    start_time DateTime,
    start_time_unix_nano UInt64,
    end_time_unix_nano UInt64,
    framework String,
    user_text String,
    agent_text String,
    agent_spoken_text Nullable(String),
    interrupted UInt8,
    llm_provider String,
    llm_model String,
    stt_provider String,
    stt_model String,
    tts_provider String,
    tts_voice String,
    end_of_utterance_ms Nullable(Float64),
    end_of_utterance_source String,
    stt_ms Nullable(Float64),
    stt_source String,
    llm_ttft_ms Nullable(Float64),
    llm_ttft_source String,
    tts_ttfb_ms Nullable(Float64),
    tts_ttfb_source String,
    tool_ms Nullable(Float64),
    tool_source String,
    voice_to_voice_ms Nullable(Float64),
    voice_to_voice_source String,
    input_tokens UInt64,
    output_tokens UInt64,
    tool_call_count UInt32,
    tool_error_count UInt32,
    error_count UInt32
) ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(start_time)
ORDER BY (session_id, turn_number);

CREATE TABLE IF NOT EXISTS messages (
    session_id String,
    revision UInt64,
    message_index UInt32,
    turn_number UInt32,
    time DateTime,
    time_unix_nano UInt64,
    speaker String,
    text String,
    interrupted UInt8,
    spoken_text Nullable(String),
    tool_name String,
    trace_id String,
    span_id String
) ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(time)
ORDER BY (session_id, message_index);

CREATE TABLE IF NOT EXISTS tool_calls (
    session_id String,
    revision UInt64,
    call_index UInt32,
    turn_number UInt32,
    start_time DateTime,
    start_time_unix_nano UInt64,
    duration_ms Float64,
    name String,
    call_id String,
    arguments String,
    result String,
    is_error UInt8,
    error_message String,
    trace_id String,
    span_id String
) ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(start_time)
ORDER BY (session_id, call_index);

CREATE TABLE IF NOT EXISTS interruptions (
    session_id String,
    revision UInt64,
    interruption_index UInt32,
    turn_number UInt32,
    time DateTime,
    time_unix_nano UInt64,
    agent_text String,
    spoken_text Nullable(String),
    signal String,
    trace_id String,
    span_id String
) ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(time)
ORDER BY (session_id, interruption_index);

CREATE VIEW IF NOT EXISTS sessions_current AS
    SELECT * FROM sessions FINAL WHERE deleted = 0;

CREATE VIEW IF NOT EXISTS turns_current AS
    SELECT * FROM turns WHERE (session_id, revision) IN (SELECT session_id, revision FROM sessions_current);

CREATE VIEW IF NOT EXISTS messages_current AS
    SELECT * FROM messages WHERE (session_id, revision) IN (SELECT session_id, revision FROM sessions_current);

CREATE VIEW IF NOT EXISTS tool_calls_current AS
    SELECT * FROM tool_calls WHERE (session_id, revision) IN (SELECT session_id, revision FROM sessions_current);

CREATE VIEW IF NOT EXISTS interruptions_current AS
    SELECT * FROM interruptions WHERE (session_id, revision) IN (SELECT session_id, revision FROM sessions_current);

-- How far the sessionizer has got: spans ingested at or before `ingested_at_unix_nano` are
-- reflected in the derived tables. Read at start to catch up after a crash.
CREATE TABLE IF NOT EXISTS sessionizer_progress (
    id UInt8,
    ingested_at_unix_nano UInt64
) ENGINE = ReplacingMergeTree(ingested_at_unix_nano)
ORDER BY id
