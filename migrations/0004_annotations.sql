-- Labels and flags people put on sessions: the only thing in the logs a reader changes.
-- Each change is a row (present = 1 adds, present = 0 removes) at a new version; the current
-- state of a (session, kind, value) is its latest row. ReplacingMergeTree folds old versions on
-- merge; readers take argMax over version, so they are exact before a merge too.
-- kind is 'label' (value = the label) or 'flag' (value empty, note = why it was flagged).
CREATE TABLE IF NOT EXISTS session_annotations (
    session_id String,
    kind String,
    value String,
    present UInt8,
    note String,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY (session_id, kind, value);

-- The annotations in force: one row per (session, kind, value) whose latest change added it.
CREATE VIEW IF NOT EXISTS session_annotations_current AS
    SELECT session_id, kind, value, current_note AS note, last_version AS version
    FROM (
        SELECT session_id, kind, value,
            argMax(present, version) AS is_present,
            argMax(note, version) AS current_note,
            max(version) AS last_version
        FROM session_annotations
        GROUP BY session_id, kind, value
    )
    WHERE is_present = 1;

-- Per session: its labels (sorted), whether it is flagged, and why.
CREATE VIEW IF NOT EXISTS session_annotations_by_session AS
    SELECT session_id,
        arraySort(groupArrayIf(value, kind = 'label')) AS labels,
        toUInt8(countIf(kind = 'flag') > 0) AS flagged,
        anyIf(note, kind = 'flag') AS flag_reason
    FROM session_annotations_current
    GROUP BY session_id;
