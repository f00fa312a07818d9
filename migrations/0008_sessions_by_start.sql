-- Session summaries ordered and partitioned by start time, so that the newest sessions, a
-- time range or a keyset page read only the parts and granules of that time, not every row.
--
-- ReplacingMergeTree folds the revisions of one sorting key, but a session's start moves
-- when a span that started earlier arrives late (a conversation's root span is exported when
-- the call ends). The row at the new start does not replace the one at the old start, so the
-- sessionizer writes, in the same insert, a deleted row at every start the session held
-- before, at the new revision: at each start the latest row is then either the session's
-- current one or a deleted one, and `sessions FINAL WHERE deleted = 0` (sessions_current, the
-- dashboards) still yields each session once. The starts a session has held are recorded in
-- session_starts before its rows are written, so a pass that fails part-way and is redone,
-- or moves the start again, still covers every start that may hold a live row. A deletion
-- writes its tombstone at each of them the same way.
--
-- A session's rows by id (its summary, the sessionizer's current rows) are found through
-- session_starts: its starts, then those keys of `sessions`.
CREATE TABLE IF NOT EXISTS session_starts (
    session_id String,
    start_time_unix_nano UInt64
) ENGINE = ReplacingMergeTree
ORDER BY (session_id, start_time_unix_nano)
-- Looked up by id a few at a time: small granules keep each lookup to a few hundred rows.
SETTINGS index_granularity = 256;

-- Upgrading a database: copy the current rows into the new layout, then swap the tables.
-- A run that stopped part-way is repeated whole: the copy of an earlier run is dropped first,
-- and copying again is harmless (the same rows fold together).
DROP TABLE IF EXISTS sessions_by_id;
CREATE TABLE IF NOT EXISTS sessions_by_start AS sessions
ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(start_time)
ORDER BY (start_time_unix_nano, session_id);
INSERT INTO session_starts SELECT session_id, start_time_unix_nano FROM sessions FINAL;
INSERT INTO sessions_by_start SELECT * FROM sessions FINAL;
RENAME TABLE sessions TO sessions_by_id, sessions_by_start TO sessions;
DROP TABLE IF EXISTS sessions_by_id
