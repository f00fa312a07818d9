-- Session semantics: state, outcome, call status, detected issues, cost and descriptive
-- fields. The migration runner skips an ADD COLUMN whose column already exists, so a
-- half-applied run can be repeated.
ALTER TABLE sessions ADD COLUMN derived_state String;
ALTER TABLE sessions ADD COLUMN ended UInt8;
ALTER TABLE sessions ADD COLUMN last_activity_unix_nano UInt64;
ALTER TABLE sessions ADD COLUMN expires_at DateTime;
ALTER TABLE sessions ADD COLUMN ended_outcome String;
ALTER TABLE sessions ADD COLUMN outcome_explicit UInt8;
ALTER TABLE sessions ADD COLUMN derived_call_status String;
ALTER TABLE sessions ADD COLUMN derived_ended_reason String;
ALTER TABLE sessions ADD COLUMN intent String;
ALTER TABLE sessions ADD COLUMN skills Array(String);
ALTER TABLE sessions ADD COLUMN flow String;
ALTER TABLE sessions ADD COLUMN node String;
ALTER TABLE sessions ADD COLUMN agents Array(String);
ALTER TABLE sessions ADD COLUMN detected_issues Array(String);
ALTER TABLE sessions ADD COLUMN cost_usd Float64;
ALTER TABLE sessions ADD COLUMN llm_cost_usd Float64;
ALTER TABLE sessions ADD COLUMN stt_cost_usd Float64;
ALTER TABLE sessions ADD COLUMN tts_cost_usd Float64;
ALTER TABLE sessions ADD COLUMN user_message_count UInt32;
ALTER TABLE sessions ADD COLUMN campaign String;
ALTER TABLE sessions ADD COLUMN contact String;
ALTER TABLE sessions ADD COLUMN user_name String;
ALTER TABLE sessions ADD COLUMN user_hash String;
ALTER TABLE sessions ADD COLUMN feedback String;
ALTER TABLE sessions ADD COLUMN confidence Nullable(Float64);
ALTER TABLE sessions ADD COLUMN sentiment String;
ALTER TABLE sessions ADD COLUMN topic String;
ALTER TABLE sessions ADD COLUMN summary String;
ALTER TABLE sessions ADD COLUMN extracted_data String;
ALTER TABLE sessions ADD COLUMN recording_url String;

-- The one definition of state, outcome, call status and ended reason: ALIAS columns,
-- computed whenever they are read, so every reader (the API, exports, the list filters,
-- Grafana) gets the same answer. Stored values are as of the session's last span and the
-- clock finishes them here, so a session expires without a new span: ACTIVE or
-- AWAITING_USER past `expires_at` is EXPIRED (ended by inactivity), and a session that has
-- not ended is "In Progress" unless its outcome was stated explicitly.
ALTER TABLE sessions ADD COLUMN state String ALIAS if(derived_state IN ('ACTIVE', 'AWAITING_USER') AND now() >= expires_at, 'EXPIRED', derived_state);
-- Each spells out "expired" itself: on 18.16 an ALIAS that reads another ALIAS fails unless
-- the query selects that one too.
ALTER TABLE sessions ADD COLUMN outcome String ALIAS if(outcome_explicit = 1 OR derived_state IN ('RESOLVED', 'WITH_AGENT') OR (derived_state IN ('ACTIVE', 'AWAITING_USER') AND now() >= expires_at), ended_outcome, 'In Progress');
ALTER TABLE sessions ADD COLUMN call_status String ALIAS if(derived_call_status = 'Active' AND derived_state IN ('ACTIVE', 'AWAITING_USER') AND now() >= expires_at, 'Completed', derived_call_status);
ALTER TABLE sessions ADD COLUMN ended_reason String ALIAS if(derived_ended_reason = '' AND derived_state IN ('ACTIVE', 'AWAITING_USER') AND now() >= expires_at, 'inactivity', derived_ended_reason);

CREATE TABLE IF NOT EXISTS session_issues (
    session_id String,
    revision UInt64,
    issue_index UInt32,
    issue String,
    turn_number UInt32,
    time DateTime,
    time_unix_nano UInt64,
    detail String
) ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(time)
ORDER BY (session_id, issue_index);

-- The views are recreated so they carry the new columns, dependents first.
DROP TABLE IF EXISTS turns_current;
DROP TABLE IF EXISTS messages_current;
DROP TABLE IF EXISTS tool_calls_current;
DROP TABLE IF EXISTS interruptions_current;
DROP TABLE IF EXISTS sessions_current;

-- Each session's current row, with the ALIAS columns (`*` leaves those out).
CREATE VIEW IF NOT EXISTS sessions_current AS
    SELECT *, state, outcome, call_status, ended_reason
    FROM sessions FINAL
    WHERE deleted = 0;

CREATE VIEW IF NOT EXISTS turns_current AS
    SELECT * FROM turns WHERE (session_id, revision) IN (SELECT session_id, revision FROM sessions_current);

CREATE VIEW IF NOT EXISTS messages_current AS
    SELECT * FROM messages WHERE (session_id, revision) IN (SELECT session_id, revision FROM sessions_current);

CREATE VIEW IF NOT EXISTS tool_calls_current AS
    SELECT * FROM tool_calls WHERE (session_id, revision) IN (SELECT session_id, revision FROM sessions_current);

CREATE VIEW IF NOT EXISTS interruptions_current AS
    SELECT * FROM interruptions WHERE (session_id, revision) IN (SELECT session_id, revision FROM sessions_current);

CREATE VIEW IF NOT EXISTS session_issues_current AS
    SELECT * FROM session_issues WHERE (session_id, revision) IN (SELECT session_id, revision FROM sessions_current)
