//! The conversation list as SQL: a parsed query (`crate::query`) turned into conditions with
//! every value bound, and keyset pagination. The same query, without a limit, streams every
//! matching session for export.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clickhouse::Row;
use serde::Deserialize;
use tokio::runtime::Handle;

use super::{Store, StoreError};
use crate::config::Secret;
use crate::contact;
use crate::model::conversation::SessionView;
use crate::query::{After, FilterKind, FilterValue, SessionFilter, Sort, SortValue};

pub struct SessionPage {
    pub rows: Vec<SessionView>,
    /// Set when more rows follow.
    pub next: Option<After>,
}

/// A value to bind to the next `?` of a query.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Bind {
    Str(String),
    Strs(Vec<String>),
    F64(f64),
    U64(u64),
    /// A `sessions` key: (start, session id).
    Key(u64, String),
    /// A session's revision.
    Revision(String, u64),
}

/// SQL text with its bind values in order.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Sql {
    pub(super) conditions: Vec<String>,
    pub(super) binds: Vec<Bind>,
}

impl Sql {
    pub(super) fn push(
        &mut self,
        condition: impl Into<String>,
        binds: impl IntoIterator<Item = Bind>,
    ) {
        self.conditions.push(condition.into());
        self.binds.extend(binds);
    }

    pub(super) fn apply(&self, mut query: clickhouse::query::Query) -> clickhouse::query::Query {
        for bind in &self.binds {
            query = match bind {
                Bind::Str(v) => query.bind(v),
                Bind::Strs(v) => query.bind(v),
                Bind::F64(v) => query.bind(v),
                Bind::U64(v) => query.bind(v),
                Bind::Key(start, id) => query.bind((start, id)),
                Bind::Revision(id, revision) => query.bind((id, revision)),
            };
        }
        query
    }
}

/// Null sorts last: below every value when descending, above every value when ascending.
const NULL_LOW: &str = "-1e300";
const NULL_HIGH: &str = "1e300";

fn sort_expression(sort: &Sort) -> String {
    match (sort.spec.value)(&SessionView::default()) {
        SortValue::Int(_) => sort.spec.column.to_owned(),
        SortValue::Float(_) => format!(
            "ifNull({}, {})",
            sort.spec.column,
            if sort.descending { NULL_LOW } else { NULL_HIGH }
        ),
    }
}

fn sort_bind(sort: &Sort, value: SortValue) -> Bind {
    match value {
        SortValue::Int(v) => Bind::U64(v),
        SortValue::Float(Some(v)) => Bind::F64(v),
        SortValue::Float(None) => Bind::F64(if sort.descending { -1e300 } else { 1e300 }),
    }
}

/// Sessions whose contact has the bound keyed pseudonym, at their latest revision.
const WITH_CONTACT: &str =
    "session_id IN (SELECT session_id FROM session_contacts FINAL WHERE contact_pseudonym = ?)";

/// The keyed pseudonym of a full contact given to a contact filter, as stored at ingest.
fn contact_pseudonym(kind: FilterKind, text: &str, contact_key: &Secret) -> Option<String> {
    (kind == FilterKind::Contact)
        .then(|| contact::normalize(text))
        .flatten()
        .map(|c| contact::pseudonym(contact_key, &c))
}

/// The WHERE conditions of a filter, over `sessions` columns, within a time window (sessions
/// that started at or after `window`) when given.
pub(super) fn conditions(filter: &SessionFilter, contact_key: &Secret, window: Option<u64>) -> Sql {
    let mut sql = Sql::default();
    sql.push("deleted = 0", []);
    if let Some(start) = window {
        sql.push("start_time_unix_nano >= ?", [Bind::U64(start)]);
    }
    if let Some(from) = filter.from_unix_nano {
        sql.push("start_time_unix_nano >= ?", [Bind::U64(from)]);
    }
    if let Some(to) = filter.to_unix_nano {
        sql.push("start_time_unix_nano < ?", [Bind::U64(to)]);
    }
    for (spec, value) in &filter.columns {
        let column = spec.column;
        match value {
            FilterValue::Any(values) if spec.kind == FilterKind::HasAny => {
                sql.push(format!("hasAny({column}, ?)"), [Bind::Strs(values.clone())]);
            }
            FilterValue::Any(values) => {
                sql.push(format!("has(?, {column})"), [Bind::Strs(values.clone())]);
            }
            FilterValue::Range { min, max } => {
                if let Some(min) = min {
                    sql.push(format!("{column} >= ?"), [Bind::F64(*min)]);
                }
                if let Some(max) = max {
                    sql.push(format!("{column} <= ?"), [Bind::F64(*max)]);
                }
            }
            FilterValue::Bool(true) => sql.push(format!("{column} != 0"), []),
            FilterValue::Bool(false) => sql.push(format!("{column} = 0"), []),
            FilterValue::Text(text) => {
                let contains = format!("positionCaseInsensitiveUTF8({column}, ?) > 0");
                match contact_pseudonym(spec.kind, text, contact_key) {
                    None => sql.push(contains, [Bind::Str(text.clone())]),
                    Some(pseudonym) => sql.push(
                        format!("({contains} OR {WITH_CONTACT})"),
                        [Bind::Str(text.clone()), Bind::Str(pseudonym)],
                    ),
                }
            }
        }
    }
    if !filter.span_names.is_empty() {
        // Each trace's session as last resolved; the session must hold the trace now too.
        sql.push(
            "session_id IN (SELECT argMax(session_id, revision) FROM trace_sessions \
             WHERE trace_id IN (SELECT trace_id FROM spans WHERE has(?, name)) GROUP BY trace_id)",
            [Bind::Strs(filter.span_names.clone())],
        );
    }
    if let Some(text) = &filter.text {
        // Messages of the session's current revision only.
        let messages = "(session_id, revision) IN (SELECT session_id, revision FROM messages \
             WHERE positionCaseInsensitiveUTF8(text, ?) > 0)";
        match contact_pseudonym(FilterKind::Contact, text, contact_key) {
            None => sql.push(messages, [Bind::Str(text.clone())]),
            Some(pseudonym) => sql.push(
                format!("({messages} OR {WITH_CONTACT})"),
                [Bind::Str(text.clone()), Bind::Str(pseudonym)],
            ),
        }
    }
    // GLOBAL: on a cluster of several shards a view in a subquery would otherwise be looked
    // up on every shard in that server's default database; on one server it is plain IN.
    if !filter.labels.is_empty() {
        sql.push(
            "session_id GLOBAL IN (SELECT session_id FROM session_annotations_current \
             WHERE kind = 'label' AND has(?, value))",
            [Bind::Strs(filter.labels.clone())],
        );
    }
    if let Some(flagged) = filter.flagged {
        sql.push(
            format!(
                "session_id {} (SELECT session_id FROM session_annotations_current WHERE kind = 'flag')",
                if flagged { "GLOBAL IN" } else { "GLOBAL NOT IN" }
            ),
            [],
        );
    }
    sql
}

/// `ORDER BY` of a sort, and the keyset condition that starts after `after`.
fn order_and_after(sort: &Sort, after: Option<&After>, sql: &mut Sql) -> String {
    let expression = sort_expression(sort);
    let (cmp, dir) = if sort.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(after) = after {
        let value = sort_bind(sort, after.value);
        sql.push(
            format!("({expression} {cmp} ? OR ({expression} = ? AND session_id {cmp} ?))"),
            [value.clone(), value, Bind::Str(after.session_id.clone())],
        );
    }
    format!("{expression} {dir}, session_id {dir}")
}

/// The ALIAS columns of `sessions` (the one definition of these), which `*` leaves out. On
/// 18.16 they are selected together: one that reads another fails unless both are selected.
pub(super) const SEMANTICS: &str = "state, outcome, call_status, ended_reason";

/// [`SessionView`]s: sessions (a subquery yielding `sessions` rows) joined with their labels
/// and flag, the annotations narrowed by `annotations_where` when given.
pub(super) fn with_annotations(
    sessions: &str,
    annotations_where: Option<&str>,
    order: &str,
) -> String {
    let annotations_where = annotations_where
        .map(|w| format!(" WHERE {w}"))
        .unwrap_or_default();
    format!(
        "SELECT ?fields FROM ({sessions}) AS s \
         ANY LEFT JOIN (SELECT * FROM session_annotations_by_session{annotations_where}) AS a \
         USING session_id ORDER BY {order}"
    )
}

/// Start times a page is looked for in: at or after `from`, before `below` (each when given).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Window {
    from: Option<u64>,
    below: Option<u64>,
}

/// The conditions of a filter within a window, and the keyset condition after `after`; and
/// the `ORDER BY` of the sort.
fn selection(
    filter: &SessionFilter,
    contact_key: &Secret,
    sort: &Sort,
    after: Option<&After>,
    window: Window,
) -> (Sql, String) {
    let mut sql = conditions(filter, contact_key, window.from);
    if let Some(below) = window.below {
        sql.push("start_time_unix_nano < ?", [Bind::U64(below)]);
    }
    let order = order_and_after(sort, after, &mut sql);
    (sql, order)
}

/// The whole answer with FINAL: every current row merged, then filtered and sorted. Exact
/// and simple, but FINAL over the whole table is what costs; the export streams this.
fn full_sql(
    filter: &SessionFilter,
    contact_key: &Secret,
    sort: &Sort,
    after: Option<&After>,
    window: Window,
    limit: Option<u64>,
) -> (String, Sql) {
    let (sql, order) = selection(filter, contact_key, sort, after, window);
    let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    let sessions = format!(
        "SELECT *, {SEMANTICS} FROM sessions FINAL WHERE {} ORDER BY {order}{limit}",
        sql.conditions.join(" AND ")
    );
    (with_annotations(&sessions, None, &order), sql)
}

/// Step 1 of a page: the first `k` matching rows in sort order, without FINAL, so old
/// revisions are among them. The sort value of the k-th row is found first, reading that
/// column alone; the rows at or before it are then few, and PREWHERE reads the key columns
/// only in the granules that hold them (a sort by latency read every session id otherwise).
fn candidates_sql(
    filter: &SessionFilter,
    contact_key: &Secret,
    sort: &Sort,
    after: Option<&After>,
    window: Window,
    k: u64,
) -> (String, Sql) {
    let (mut sql, order) = selection(filter, contact_key, sort, after, window);
    let expression = sort_expression(sort);
    let (bound, cmp, dir) = if sort.descending {
        ("min", ">=", "DESC")
    } else {
        ("max", "<=", "ASC")
    };
    let conditions = sql.conditions.join(" AND ");
    let text = format!(
        "SELECT start_time_unix_nano, session_id, revision FROM sessions \
         PREWHERE {expression} {cmp} (SELECT {bound}(value) FROM (SELECT {expression} AS value \
         FROM sessions WHERE {conditions} ORDER BY value {dir} LIMIT {k})) \
         WHERE {conditions} ORDER BY {order} LIMIT {k}"
    );
    // The subquery's placeholders come first, then the same again for the WHERE.
    sql.binds.extend(sql.binds.clone());
    (text, sql)
}

/// The condition that picks rows at the candidates' keys, with its binds. The starts alone
/// as well, in PREWHERE: 18.16 narrows the granules to read by a list of values of the first
/// key column, not by a list of tuples, and PREWHERE reads the other columns only in the
/// granules that hold a candidate.
fn at_keys(candidates: &[Candidate]) -> (String, Vec<Bind>) {
    let marks = vec!["?"; candidates.len().max(1)].join(", ");
    let binds = candidates
        .iter()
        .map(|c| Bind::U64(c.start_time_unix_nano))
        .chain(
            candidates
                .iter()
                .map(|c| Bind::Key(c.start_time_unix_nano, c.session_id.clone())),
        )
        .collect();
    (
        format!(
            "PREWHERE start_time_unix_nano IN ({marks}) \
             WHERE (start_time_unix_nano, session_id) IN ({marks})"
        ),
        binds,
    )
}

/// Step 2: every revision at the candidates' keys, the key columns only; see
/// [`current_candidates`].
fn revisions_sql(candidates: &[Candidate]) -> (String, Sql) {
    let (at_keys, binds) = at_keys(candidates);
    let sql = Sql {
        conditions: Vec::new(),
        binds,
    };
    (
        format!("SELECT start_time_unix_nano, session_id, revision FROM sessions {at_keys}"),
        sql,
    )
}

/// Of the candidates (in sort order), those that are their session's latest revision among
/// the rows at the candidates' keys, once per session, the first `n`. A tombstone, or the
/// deleted row that retires a start the session left, being latest drops the session.
fn current_candidates(candidates: &[Candidate], at_keys: &[Candidate], n: u64) -> Vec<Candidate> {
    let mut latest: HashMap<&str, u64> = HashMap::new();
    for row in at_keys {
        let revision = latest.entry(row.session_id.as_str()).or_default();
        *revision = (*revision).max(row.revision);
    }
    let mut seen = HashSet::new();
    candidates
        .iter()
        .filter(|c| latest.get(c.session_id.as_str()) == Some(&c.revision))
        .filter(|c| seen.insert(c.session_id.as_str()))
        .take(n as usize)
        .cloned()
        .collect()
}

/// Step 3: the rows of the current candidates, whole, in sort order; only these granules
/// are read in full.
fn page_sql(sort: &Sort, current: &[Candidate]) -> (String, Sql) {
    let (at_keys, binds) = at_keys(current);
    let mut sql = Sql {
        conditions: Vec::new(),
        binds,
    };
    sql.binds.extend(
        current
            .iter()
            .map(|c| Bind::Revision(c.session_id.clone(), c.revision)),
    );
    let marks = vec!["?"; current.len().max(1)].join(", ");
    let order = order_and_after(sort, None, &mut sql);
    let sessions = format!(
        "SELECT *, {SEMANTICS} FROM sessions {at_keys} \
         AND (session_id, revision) IN ({marks}) AND deleted = 0 \
         ORDER BY {order} LIMIT 1 BY session_id"
    );
    // The labels and flags of these sessions only.
    sql.binds
        .extend(current.iter().map(|c| Bind::Str(c.session_id.clone())));
    let annotations = format!("session_id IN ({marks})");
    (with_annotations(&sessions, Some(&annotations), &order), sql)
}

#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
struct Candidate {
    start_time_unix_nano: u64,
    session_id: String,
    revision: u64,
}

/// The first window of a newest-first list, and how much each next one is longer.
const FIRST_WINDOW_NANOS: u64 = 3600 * 1_000_000_000;
const WINDOW_GROWTH: u64 = 16;
const MAX_WINDOWS: u32 = 5;

/// The lower bounds of the start-time windows a page is looked for in, ending with None (no
/// bound). Only newest-first lists have them, and only when the filter is cheap to repeat:
/// free text and span names read messages and spans once whatever the window.
fn windows(
    filter: &SessionFilter,
    sort: &Sort,
    after: Option<&After>,
    now_unix_nano: u64,
) -> Vec<Option<u64>> {
    let newest_first = sort.spec.column == "start_time_unix_nano" && sort.descending;
    if !newest_first || filter.text.is_some() || !filter.span_names.is_empty() {
        return vec![None];
    }
    // The newest start a row of the page can have.
    let mut top = now_unix_nano;
    if let Some(SortValue::Int(start)) = after.map(|a| a.value) {
        top = top.min(start);
    }
    if let Some(to) = filter.to_unix_nano {
        top = top.min(to);
    }
    let from = filter.from_unix_nano.unwrap_or(0);
    let mut out = Vec::new();
    let mut length = FIRST_WINDOW_NANOS;
    for _ in 0..MAX_WINDOWS {
        match top.checked_sub(length) {
            Some(start) if start > from => out.push(Some(start)),
            _ => break,
        }
        length = length.saturating_mul(WINDOW_GROWTH);
    }
    out.push(None);
    out
}

/// Candidates per page row at first; more if old revisions crowd them out.
const CANDIDATES_PER_ROW: u64 = 4;
const MIN_CANDIDATES: u64 = 200;
const MAX_CANDIDATES: u64 = 8192;

/// Rows of an export, read one at a time from ClickHouse's response. It holds one of the
/// tenant's export slots until dropped; dropped before its last row (the client went away or
/// stalled), it kills its query on the server.
pub struct SessionStream {
    cursor: clickhouse::query::RowCursor<SessionView>,
    timeout: std::time::Duration,
    /// Until the last row is read: the query to kill if the stream is dropped.
    running: Option<RunningQuery>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl SessionStream {
    /// The next row; each wait for ClickHouse is bounded by the configured timeout.
    pub async fn next(&mut self) -> Result<Option<SessionView>, StoreError> {
        let row = match tokio::time::timeout(self.timeout, self.cursor.next()).await {
            Ok(row) => row?,
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "export stalled for {:?}",
                    self.timeout
                )))
            }
        };
        if row.is_none() {
            self.running = None;
        }
        Ok(row)
    }
}

impl Drop for SessionStream {
    fn drop(&mut self) {
        if let (Some(query), Ok(runtime)) = (self.running.take(), Handle::try_current()) {
            runtime.spawn(query.kill());
        }
    }
}

/// A query that may outlive the connection that sent it: ClickHouse 18.16 does not cancel an
/// HTTP query when its client goes, so it is killed by id.
struct RunningQuery {
    client: clickhouse::Client,
    query_id: String,
    timeout: std::time::Duration,
}

impl RunningQuery {
    async fn kill(self) {
        let kill = self
            .client
            .query("KILL QUERY WHERE query_id = ? ASYNC")
            .bind(&self.query_id)
            .execute();
        match tokio::time::timeout(self.timeout, kill).await {
            Ok(Ok(())) => tracing::debug!(query_id = %self.query_id, "killed an abandoned export"),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, query_id = %self.query_id, "could not kill an abandoned export")
            }
            Err(_) => {
                tracing::warn!(query_id = %self.query_id, "killing an abandoned export timed out")
            }
        }
    }
}

/// Names the tenant's database (for whoever reads `system.processes`) and is unique across
/// processes and restarts.
fn export_query_id(database: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "convolog-export-{database}-{}-{}-{}",
        std::process::id(),
        crate::clock::now_unix_nano(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Store {
    /// One page of sessions, `limit` rows at most, after `after` in `sort` order.
    pub async fn list_sessions(
        &self,
        filter: &SessionFilter,
        sort: &Sort,
        after: Option<&After>,
        limit: u32,
    ) -> Result<SessionPage, StoreError> {
        let wanted = u64::from(limit) + 1;
        // Newest first, the sessions of the last hour, then of longer and longer windows
        // further back until a page is full: `sessions` is keyed by start, so a window reads
        // only its own parts and granules. Rows of a window started before every row of the
        // windows before it, so each window's rows follow theirs, and no row is read twice.
        let mut rows = Vec::new();
        let mut below = None;
        for from in windows(filter, sort, after, crate::clock::now_unix_nano()) {
            let window = Window { from, below };
            let missing = wanted - rows.len() as u64;
            rows.extend(
                self.page_in_window(filter, sort, after, window, missing)
                    .await?,
            );
            if rows.len() as u64 == wanted {
                break;
            }
            below = from;
        }
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = match rows.last() {
            Some(last) if more => Some(After {
                value: (sort.spec.value)(last),
                session_id: last.session_id.clone(),
            }),
            _ => None,
        };
        Ok(SessionPage { rows, next })
    }

    /// The first `wanted` rows of the answer among sessions that started in `window`.
    async fn page_in_window(
        &self,
        filter: &SessionFilter,
        sort: &Sort,
        after: Option<&After>,
        window: Window,
        wanted: u64,
    ) -> Result<Vec<SessionView>, StoreError> {
        // A page in steps, because FINAL over many rows is slow: the first k rows in sort
        // order without FINAL, then those of them that are their session's current row. A
        // current row ranks where it ranks whether or not old revisions precede it, so the
        // kept rows are exactly the first rows of the answer: a full page from them is exact,
        // and so is a short one when fewer than k rows matched at all. Otherwise old
        // revisions crowded the candidates out: take more, and in the end use FINAL.
        let mut k = (wanted * CANDIDATES_PER_ROW).max(MIN_CANDIDATES);
        loop {
            let candidates = self
                .fetch_candidates(candidates_sql(
                    filter,
                    &self.contact_key,
                    sort,
                    after,
                    window,
                    k,
                ))
                .await?;
            if candidates.is_empty() {
                return Ok(Vec::new());
            }
            let complete = (candidates.len() as u64) < k;
            let at_keys = self.fetch_candidates(revisions_sql(&candidates)).await?;
            let current = current_candidates(&candidates, &at_keys, wanted);
            let rows = if current.is_empty() {
                Vec::new()
            } else {
                self.fetch_list(page_sql(sort, &current)).await?
            };
            if complete || rows.len() as u64 == wanted {
                return Ok(rows);
            }
            if k >= MAX_CANDIDATES {
                return self
                    .fetch_list(full_sql(
                        filter,
                        &self.contact_key,
                        sort,
                        after,
                        window,
                        Some(wanted),
                    ))
                    .await;
            }
            k = (k * 8).min(MAX_CANDIDATES);
        }
    }

    async fn fetch_candidates(
        &self,
        (text, sql): (String, Sql),
    ) -> Result<Vec<Candidate>, StoreError> {
        self.timed("list candidates", async {
            Ok(sql
                .apply(self.client.query(&text))
                // Candidate keys are sent in the query text.
                .with_setting("max_query_size", "67108864")
                .fetch_all::<Candidate>()
                .await?)
        })
        .await
    }

    async fn fetch_list(&self, (text, sql): (String, Sql)) -> Result<Vec<SessionView>, StoreError> {
        self.timed("list sessions", async {
            Ok(sql
                .apply(self.client.query(&text))
                // Candidate ids are sent in the query text.
                .with_setting("max_query_size", "67108864")
                .fetch_all::<SessionView>()
                .await?)
        })
        .await
    }

    /// The values a column of `sessions` holds (array columns: their elements), sorted, at
    /// most `limit`: what the list page offers to pick from. `column` is one of the
    /// filters' columns, never input.
    pub async fn distinct_values(
        &self,
        column: &'static str,
        array: bool,
        limit: u64,
    ) -> Result<Vec<String>, StoreError> {
        let value = if array {
            format!("arrayJoin({column})")
        } else {
            column.to_owned()
        };
        let text = format!(
            "SELECT DISTINCT {value} AS value FROM sessions \
             WHERE deleted = 0 AND value != '' ORDER BY value LIMIT ?"
        );
        self.timed("distinct values", async {
            Ok(self
                .client
                .query(&text)
                .bind(limit)
                .fetch_all::<String>()
                .await?)
        })
        .await
    }

    /// How many sessions match.
    pub async fn count_sessions(&self, filter: &SessionFilter) -> Result<u64, StoreError> {
        let sql = conditions(filter, &self.contact_key, None);
        let text = format!(
            "SELECT count() FROM sessions FINAL WHERE {}",
            sql.conditions.join(" AND ")
        );
        self.timed("count sessions", async {
            Ok(sql
                .apply(self.client.query(&text))
                .fetch_one::<u64>()
                .await?)
        })
        .await
    }

    /// The list's SQL with values bound, as ClickHouse receives it (the candidates step,
    /// the revisions and page steps for two made-up candidates, and the FINAL query): for checking the SQL
    /// on other ClickHouse releases.
    #[doc(hidden)]
    pub fn rendered_list_sql(
        &self,
        filter: &SessionFilter,
        sort: &Sort,
        after: Option<&After>,
    ) -> Vec<String> {
        let fields: Vec<String> = <SessionView as Row>::COLUMN_NAMES
            .iter()
            .map(|c| format!("`{c}`"))
            .collect();
        let candidates = [
            Candidate {
                start_time_unix_nano: 5,
                session_id: "a'b".into(),
                revision: 3,
            },
            Candidate {
                start_time_unix_nano: 7,
                session_id: "c".into(),
                revision: 1,
            },
        ];
        let window = Window {
            from: Some(11),
            below: Some(13),
        };
        let key = &self.contact_key;
        [
            candidates_sql(filter, key, sort, after, window, 200),
            candidates_sql(filter, key, sort, after, Window::default(), 200),
            revisions_sql(&candidates),
            page_sql(sort, &candidates),
            full_sql(filter, key, sort, after, window, Some(51)),
            full_sql(filter, key, sort, after, Window::default(), None),
        ]
        .into_iter()
        .map(|(text, sql)| {
            sql.apply(self.client.query(&text))
                .sql_display()
                .to_string()
                .replace("?fields", &fields.join(", "))
        })
        .collect()
    }

    /// Every matching session in `sort` order, streamed: memory stays flat however many match.
    /// At most `clickhouse.max_concurrent_exports` run at once per tenant; one more is refused
    /// as unavailable (retry later). The query may run `clickhouse.export_max_seconds`.
    pub fn stream_sessions(
        &self,
        filter: &SessionFilter,
        sort: &Sort,
    ) -> Result<SessionStream, StoreError> {
        let slot = Arc::clone(&self.export_slots)
            .try_acquire_owned()
            .map_err(|_| {
                StoreError::Unavailable("too many exports in progress, retry later".into())
            })?;
        let query_id = export_query_id(&self.database);
        let (text, sql) = full_sql(
            filter,
            &self.contact_key,
            sort,
            None,
            Window::default(),
            None,
        );
        let query = self
            .client
            .query(&text)
            .with_setting("query_id", query_id.as_str())
            .with_setting("max_execution_time", self.export_max_seconds.to_string());
        let cursor = sql.apply(query).fetch::<SessionView>()?;
        Ok(SessionStream {
            cursor,
            timeout: self.timeout,
            running: Some(RunningQuery {
                client: self.client.clone(),
                query_id,
                timeout: self.timeout,
            }),
            _slot: slot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{FILTERS, SORTS};

    #[test]
    fn binds_follow_placeholders_in_order() {
        let channel = FILTERS
            .iter()
            .find(|f| f.param == "channel")
            .expect("channel");
        let p95 = FILTERS
            .iter()
            .find(|f| f.param == "voice_to_voice_p95_ms")
            .expect("p95");
        let filter = SessionFilter {
            from_unix_nano: Some(5),
            columns: vec![
                (channel, FilterValue::Any(vec!["voice".into()])),
                (
                    p95,
                    FilterValue::Range {
                        min: Some(800.0),
                        max: None,
                    },
                ),
            ],
            text: Some("refund".into()),
            ..Default::default()
        };
        let sort = Sort {
            spec: &SORTS[2],
            descending: true,
        };
        let after = After {
            value: SortValue::Float(None),
            session_id: "s9".into(),
        };
        let key = Secret::default();
        let everything = Window::default();
        let (text, sql) = full_sql(&filter, &key, &sort, Some(&after), everything, Some(51));
        assert_eq!(text.matches('?').count() - 1, sql.binds.len(), "{text}");
        let (candidates, candidate_sql) =
            candidates_sql(&filter, &key, &sort, Some(&after), everything, 200);
        assert!(candidates.ends_with("LIMIT 200"), "{candidates}");
        assert_eq!(candidates.matches('?').count(), candidate_sql.binds.len());
        assert_eq!(candidate_sql.binds[..7], sql.binds[..]);
        assert_eq!(candidate_sql.binds[7..], sql.binds[..]);
        assert!(text.contains("ifNull(voice_to_voice_p95_ms, -1e300) DESC, session_id DESC"));
        assert_eq!(
            sql.binds,
            [
                Bind::U64(5),
                Bind::Strs(vec!["voice".into()]),
                Bind::F64(800.0),
                Bind::Str("refund".into()),
                Bind::F64(-1e300),
                Bind::F64(-1e300),
                Bind::Str("s9".into()),
            ]
        );
    }

    fn candidate(id: &str, revision: u64, start: u64) -> Candidate {
        Candidate {
            start_time_unix_nano: start,
            session_id: id.into(),
            revision,
        }
    }

    #[test]
    fn only_each_sessions_latest_revision_is_kept_in_sort_order() {
        let candidates = [
            candidate("a", 2, 9),
            candidate("b", 1, 8),
            candidate("a", 1, 9),
            candidate("c", 3, 7),
            candidate("d", 1, 6),
            candidate("e", 1, 5),
        ];
        let mut at_keys = candidates.to_vec();
        // b has a newer revision at its key that no longer matches; c's start moved and a
        // deleted row at revision 4 retires the old one.
        at_keys.push(candidate("b", 2, 8));
        at_keys.push(candidate("c", 4, 7));
        assert_eq!(
            current_candidates(&candidates, &at_keys, 10),
            [
                candidates[0].clone(),
                candidates[4].clone(),
                candidates[5].clone()
            ]
        );
        assert_eq!(
            current_candidates(&candidates, &at_keys, 2),
            [candidates[0].clone(), candidates[4].clone()]
        );
    }

    #[test]
    fn newest_first_looks_in_growing_windows_below_the_cursor() {
        const H: u64 = 3_600_000_000_000;
        let newest = Sort::default();
        let now = 100_000 * H;
        assert_eq!(
            windows(&SessionFilter::default(), &newest, None, now),
            [
                Some(now - H),
                Some(now - 16 * H),
                Some(now - 256 * H),
                Some(now - 4096 * H),
                Some(now - 65536 * H),
                None
            ]
        );
        let after = After {
            value: SortValue::Int(50 * H),
            session_id: "s".into(),
        };
        let from_40h = SessionFilter {
            from_unix_nano: Some(40 * H),
            ..Default::default()
        };
        // Below the cursor; the window that would reach past `from` is the last, unbounded.
        assert_eq!(
            windows(&from_40h, &newest, Some(&after), now),
            [Some(49 * H), None]
        );
        let text = SessionFilter {
            text: Some("refund".into()),
            ..Default::default()
        };
        assert_eq!(windows(&text, &newest, None, now), [None]);
        let oldest = Sort {
            descending: false,
            ..Sort::default()
        };
        assert_eq!(
            windows(&SessionFilter::default(), &oldest, None, now),
            [None]
        );
    }
}
