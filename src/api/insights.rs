//! Reports over many sessions: the knowledge gaps.

use serde::Serialize;
use utoipa::ToSchema;

use super::sessions::Links;
use crate::query::GapQuery;
use crate::store::{GapExampleRow, KnowledgeGap};
use crate::timefmt::rfc3339;

#[derive(Debug, Serialize, ToSchema)]
pub struct GapList {
    /// The confidence below which an answer counted as weak.
    pub low_confidence: f64,
    /// The share of cited answers from which an agent counted as normally citing.
    pub usually_cites: f64,
    pub gaps: Vec<Gap>,
}

/// A question the agent answered weakly, with how often and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct Gap {
    /// The newest wording of the question.
    pub question: String,
    /// The question as grouped: lower case, words only.
    pub question_key: String,
    /// Answers to it in the selected sessions.
    pub asked: u64,
    /// Weak answers among them; an answer may be weak for several reasons.
    pub weak: u64,
    pub low_confidence: u64,
    pub thumbs_down: u64,
    /// Answers without citations from an agent that normally cites.
    pub uncited: u64,
    pub last_weak_time: String,
    /// The newest weak answers, newest first.
    pub examples: Vec<GapExample>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GapExample {
    pub session_id: String,
    pub turn_number: u32,
    pub time: String,
    pub question: String,
    pub answer: String,
    pub confidence: Option<f64>,
    pub feedback: String,
    pub citation_count: u32,
    /// Why it counts as weak: `low_confidence`, `thumbs_down`, `uncited`.
    pub reasons: Vec<String>,
    pub links: Links,
}

impl GapList {
    pub fn of(found: Vec<KnowledgeGap>, query: &GapQuery) -> GapList {
        GapList {
            low_confidence: query.low_confidence,
            usually_cites: query.usually_cites,
            gaps: found
                .into_iter()
                .map(|KnowledgeGap { gap, examples }| Gap {
                    question: gap.question,
                    question_key: gap.question_key,
                    asked: gap.asked,
                    weak: gap.weak,
                    low_confidence: gap.low_confidence,
                    thumbs_down: gap.thumbs_down,
                    uncited: gap.uncited,
                    last_weak_time: rfc3339(gap.last_weak_unix_nano),
                    examples: examples.iter().map(example).collect(),
                })
                .collect(),
        }
    }
}

fn example(e: &GapExampleRow) -> GapExample {
    let reasons = [
        (e.low_confidence, "low_confidence"),
        (e.thumbs_down, "thumbs_down"),
        (e.uncited, "uncited"),
    ]
    .iter()
    .filter(|(set, _)| *set == 1)
    .map(|(_, name)| (*name).to_owned())
    .collect();
    GapExample {
        session_id: e.session_id.clone(),
        turn_number: e.turn_number,
        time: rfc3339(e.time_unix_nano),
        question: e.question.clone(),
        answer: e.answer.clone(),
        confidence: e.confidence,
        feedback: e.feedback.clone(),
        citation_count: e.citation_count,
        reasons,
        links: Links::of(&e.session_id),
    }
}
