-- Several convolog instances derive sessions from one database (README "Running more than
-- one"). Each pass records, for every trace it derived, the newest span stamp and the number
-- of spans it derived from, so any instance can tell a trace with spans no pass has seen
-- (its storing instance died before deriving them, or they reached this server's replica
-- after the pass read another) from one already derived.
ALTER TABLE trace_sessions ADD COLUMN derived_through UInt64;
ALTER TABLE trace_sessions ADD COLUMN derived_spans UInt64;

-- trace_sessions by session: which traces a session has (had), so that a pass finds the
-- traces another instance put in a session (an OpenInference conversation whose per-turn
-- traces reached different instances). A trace counts for the session its latest
-- trace_sessions row names; rows here are only candidates.
CREATE TABLE IF NOT EXISTS session_traces (
    session_id String,
    trace_id String,
    revision UInt64
) ENGINE = ReplacingMergeTree(revision)
ORDER BY (session_id, trace_id);

INSERT INTO session_traces SELECT session_id, trace_id, revision FROM trace_sessions
