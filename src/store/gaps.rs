//! The knowledge-gaps report: questions whose answers were weak (low confidence, a
//! thumbs-down, or no citation from an agent that normally cites), grouped by the
//! question's normalised text, over the sessions a list filter selects.

use clickhouse::Row;
use serde::Deserialize;

use super::list::{conditions, Bind, Sql};
use super::{Store, StoreError};
use crate::config::Secret;
use crate::query::{GapQuery, SessionFilter};

/// One question and how often its answers were weak.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct GapRow {
    pub question_key: String,
    /// The newest wording of the question.
    pub question: String,
    /// Answers to it in the selected sessions.
    pub asked: u64,
    /// Of those, the weak ones, and why (an answer may be weak for several reasons).
    pub weak: u64,
    pub low_confidence: u64,
    pub thumbs_down: u64,
    pub uncited: u64,
    pub last_weak_unix_nano: u64,
}

/// A weak answer, as an example of its question.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct GapExampleRow {
    pub question_key: String,
    pub session_id: String,
    pub turn_number: u32,
    pub time_unix_nano: u64,
    pub question: String,
    pub answer: String,
    pub confidence: Option<f64>,
    pub feedback: String,
    pub citation_count: u32,
    pub low_confidence: u8,
    pub thumbs_down: u8,
    pub uncited: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeGap {
    pub gap: GapRow,
    /// Newest first.
    pub examples: Vec<GapExampleRow>,
}

/// The current answers of the sessions the filter selects.
fn current_answers(filter: &SessionFilter, contact_key: &Secret) -> Sql {
    let selected = conditions(filter, contact_key, None);
    let mut sql = Sql::default();
    sql.push(
        format!(
            "(session_id, revision) IN (SELECT session_id, revision FROM sessions FINAL WHERE {})",
            selected.conditions.join(" AND ")
        ),
        selected.binds,
    );
    sql
}

/// `is_low`, `is_down`, `is_uncited` (0 or 1) of an answer row, as SELECT columns.
fn reasons(query: &GapQuery, citing_agents: &[String]) -> (String, Vec<Bind>) {
    let mut binds = vec![Bind::F64(query.low_confidence)];
    let uncited = if citing_agents.is_empty() {
        "toUInt8(0) AS is_uncited".to_owned()
    } else {
        binds.push(Bind::Strs(citing_agents.to_vec()));
        "toUInt8(citation_count = 0 AND has(?, agent)) AS is_uncited".to_owned()
    };
    (
        format!(
            "toUInt8(ifNull(confidence < ?, 0)) AS is_low, \
             toUInt8(feedback = 'down') AS is_down, {uncited}"
        ),
        binds,
    )
}

/// Agents that cite in at least `usually_cites` of their answers.
fn citing_sql(current: &Sql, query: &GapQuery) -> (String, Sql) {
    let text = format!(
        "SELECT agent FROM answers WHERE {} \
         GROUP BY agent HAVING countIf(citation_count > 0) >= ? * count()",
        current.conditions.join(" AND ")
    );
    let mut sql = Sql::default();
    sql.binds.extend(current.binds.iter().cloned());
    sql.binds.push(Bind::F64(query.usually_cites));
    (text, sql)
}

/// The questions with weak answers, the most often weak first.
fn groups_sql(current: &Sql, query: &GapQuery, citing: &[String]) -> (String, Sql) {
    let (reasons, reason_binds) = reasons(query, citing);
    let text = format!(
        "SELECT question_key, argMax(question, time_unix_nano) AS question, \
             count() AS asked, sum(is_weak) AS weak, sum(is_low) AS low_confidence, \
             sum(is_down) AS thumbs_down, sum(is_uncited) AS uncited, \
             maxIf(time_unix_nano, is_weak = 1) AS last_weak_unix_nano \
         FROM (SELECT question_key, question, time_unix_nano, {reasons}, \
                 toUInt8(is_low + is_down + is_uncited > 0) AS is_weak \
               FROM answers WHERE question_key != '' AND {}) \
         GROUP BY question_key HAVING weak > 0 \
         ORDER BY weak DESC, last_weak_unix_nano DESC, question_key \
         LIMIT {}",
        current.conditions.join(" AND "),
        query.limit
    );
    let mut sql = Sql::default();
    sql.binds.extend(reason_binds);
    sql.binds.extend(current.binds.iter().cloned());
    (text, sql)
}

/// The newest weak answers to each of `keys`.
fn examples_sql(
    current: &Sql,
    query: &GapQuery,
    citing: &[String],
    keys: Vec<String>,
) -> (String, Sql) {
    let (reasons, reason_binds) = reasons(query, citing);
    let text = format!(
        "SELECT question_key, session_id, turn_number, time_unix_nano, question, answer, \
             confidence, feedback, citation_count, is_low AS low_confidence, \
             is_down AS thumbs_down, is_uncited AS uncited \
         FROM (SELECT *, {reasons} FROM answers WHERE has(?, question_key) AND {}) \
         WHERE is_low + is_down + is_uncited > 0 \
         ORDER BY question_key, time_unix_nano DESC, session_id \
         LIMIT {} BY question_key",
        current.conditions.join(" AND "),
        query.examples
    );
    let mut sql = Sql::default();
    sql.binds.extend(reason_binds);
    sql.binds.push(Bind::Strs(keys));
    sql.binds.extend(current.binds.iter().cloned());
    (text, sql)
}

impl Store {
    pub async fn knowledge_gaps(
        &self,
        filter: &SessionFilter,
        query: &GapQuery,
    ) -> Result<Vec<KnowledgeGap>, StoreError> {
        let current = current_answers(filter, &self.contact_key);
        let (text, sql) = citing_sql(&current, query);
        let citing: Vec<String> = self
            .timed("citing agents", async {
                Ok(sql
                    .apply(self.client.query(&text))
                    .fetch_all::<String>()
                    .await?)
            })
            .await?;
        let (text, sql) = groups_sql(&current, query, &citing);
        let gaps: Vec<GapRow> = self
            .timed("knowledge gaps", async {
                Ok(sql
                    .apply(self.client.query(&text))
                    .fetch_all::<GapRow>()
                    .await?)
            })
            .await?;
        if gaps.is_empty() {
            return Ok(Vec::new());
        }
        let keys = gaps.iter().map(|g| g.question_key.clone()).collect();
        let (text, sql) = examples_sql(&current, query, &citing, keys);
        let mut rows: Vec<GapExampleRow> = self
            .timed("knowledge gap examples", async {
                Ok(sql
                    .apply(self.client.query(&text))
                    .fetch_all::<GapExampleRow>()
                    .await?)
            })
            .await?;
        Ok(gaps
            .into_iter()
            .map(|gap| {
                let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut rows)
                    .into_iter()
                    .partition(|e| e.question_key == gap.question_key);
                rows = rest;
                KnowledgeGap {
                    gap,
                    examples: mine,
                }
            })
            .collect())
    }

    /// The knowledge-gaps queries as sent, with their values inlined, for agents that cite
    /// and for none: for checking the SQL on other ClickHouse releases.
    #[doc(hidden)]
    pub fn rendered_gaps_sql(&self, filter: &SessionFilter, query: &GapQuery) -> Vec<String> {
        let current = current_answers(filter, &self.contact_key);
        let mut rendered = vec![citing_sql(&current, query)];
        for citing in [vec![], vec!["a".to_owned(), "b'c".to_owned()]] {
            rendered.push(groups_sql(&current, query, &citing));
            rendered.push(examples_sql(&current, query, &citing, vec!["k".to_owned()]));
        }
        rendered
            .into_iter()
            .map(|(text, sql)| {
                sql.apply(self.client.query(&text))
                    .sql_display()
                    .to_string()
            })
            .collect()
    }
}
