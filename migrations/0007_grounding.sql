-- Grounding per answer, and contact pseudonyms.
-- Grounding per answer: each reply's question, confidence, feedback and citation count
-- (answers), and the documents it stood on (citations). Written by the sessionizer with the
-- other children; the knowledge-gaps report reads answers. feedback is 'up', 'down' or ''.
CREATE TABLE IF NOT EXISTS answers (
    session_id String,
    revision UInt64,
    turn_number UInt32,
    time DateTime,
    time_unix_nano UInt64,
    agent String,
    question String,
    question_key String,
    answer String,
    confidence Nullable(Float64),
    feedback String,
    citation_count UInt32,
    trace_id String,
    span_id String
) ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(time)
ORDER BY (session_id, turn_number);

-- stage is 'cited', 'reranked' or 'retrieved'.
CREATE TABLE IF NOT EXISTS citations (
    session_id String,
    revision UInt64,
    citation_index UInt32,
    turn_number UInt32,
    time DateTime,
    stage String,
    document_id String,
    title String,
    url String,
    score Nullable(Float64),
    snippet String,
    trace_id String,
    span_id String
) ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(time)
ORDER BY (session_id, citation_index);

-- The keyed pseudonym of each session's contact (HMAC-SHA-256 of the normalised phone number
-- or email address under rules.contact_key), so a search by the full contact finds the
-- session while only the masked contact is shown. One row per session, the latest revision wins.
CREATE TABLE IF NOT EXISTS session_contacts (
    session_id String,
    revision UInt64,
    time DateTime,
    contact_pseudonym String
) ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(time)
ORDER BY session_id;

CREATE VIEW IF NOT EXISTS answers_current AS
    SELECT * FROM answers WHERE (session_id, revision) IN (SELECT session_id, revision FROM sessions_current);

CREATE VIEW IF NOT EXISTS citations_current AS
    SELECT * FROM citations WHERE (session_id, revision) IN (SELECT session_id, revision FROM sessions_current)
