-- Session summaries in granules of 1024 rows instead of 8192. A list sorted by a column other
-- than the start (latency, duration, cost) reads its page's rows by key, scattered over the
-- table, and ClickHouse reads every column of each granule such a row is in: a page of 50
-- read about 400,000 full rows at 8192 and reads about 50,000 at 1024. A session's summary
-- by id reads one granule the same way. Scans of a column cost the same.
--
-- Upgrading a database copies every row (every revision, deleted rows too: readers and merges
-- fold them as before) into the new layout and swaps the tables, as 0008 did. A run that
-- stopped part-way is repeated whole: the copy of an earlier run is dropped first, and the old
-- table a finished run left only once `sessions` is known to exist (the CREATE fails without it).
DROP TABLE IF EXISTS sessions_fine;
CREATE TABLE IF NOT EXISTS sessions_fine AS sessions
ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(start_time)
ORDER BY (start_time_unix_nano, session_id)
SETTINGS index_granularity = 1024;
DROP TABLE IF EXISTS sessions_coarse;
INSERT INTO sessions_fine SELECT * FROM sessions;
RENAME TABLE sessions TO sessions_coarse, sessions_fine TO sessions;
DROP TABLE IF EXISTS sessions_coarse
