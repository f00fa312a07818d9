//! What each answer stood on: the documents of its turn (the latest stage present: cited,
//! else reranked, else retrieved), its confidence and the feedback on it.

use std::collections::HashSet;

use super::semantics::normalize_feedback;
use super::Node;
use crate::conventions::{Document, GroundingStage};
use crate::model::conversation::{unix_seconds, AnswerRow, CitationRow, TurnRow};

/// Characters of a document's content kept as its snippet.
const SNIPPET_CHARS: usize = 300;

/// The answers and citations of a session's turns. `turns` pairs each turn row with its
/// member nodes (in start order); `agent` is who answers in this session.
pub(crate) fn answers(
    nodes: &[Node],
    turns: &[(&TurnRow, &[usize])],
    agent: &str,
) -> (Vec<AnswerRow>, Vec<CitationRow>) {
    let mut answers = Vec::new();
    let mut citations: Vec<CitationRow> = Vec::new();
    for (turn, members) in turns {
        let stage = members
            .iter()
            .filter_map(|&i| nodes[i].facts.grounding.as_ref().map(|g| g.stage))
            .max();
        let mut seen: HashSet<String> = HashSet::new();
        let before = citations.len();
        for &i in members.iter() {
            let Some(grounding) = nodes[i].facts.grounding.as_ref() else {
                continue;
            };
            if Some(grounding.stage) != stage {
                continue;
            }
            for document in &grounding.documents {
                if !seen.insert(identity(document)) {
                    continue;
                }
                citations.push(citation(turn, grounding.stage, document, nodes[i].span));
            }
        }
        let cited = citations.len() - before;
        // The latest member that states it speaks for the answer.
        let mut by_end: Vec<usize> = members.to_vec();
        by_end.sort_by_key(|&i| (nodes[i].span.end_unix_nano, i));
        let latest =
            |get: &dyn Fn(usize) -> Option<String>| by_end.iter().rev().find_map(|&i| get(i));
        let confidence = by_end
            .iter()
            .rev()
            .find_map(|&i| nodes[i].facts.answer_confidence);
        let feedback = latest(&|i| nodes[i].facts.session.feedback.clone())
            .map(|f| normalize_feedback(&f).to_owned())
            .unwrap_or_default();
        if turn.agent_text.is_empty() && cited == 0 && confidence.is_none() {
            continue;
        }
        answers.push(AnswerRow {
            session_id: turn.session_id.clone(),
            revision: turn.revision,
            turn_number: turn.turn_number,
            time: unix_seconds(turn.start_time_unix_nano),
            time_unix_nano: turn.start_time_unix_nano,
            agent: agent.to_owned(),
            question: turn.user_text.clone(),
            question_key: question_key(&turn.user_text),
            answer: turn.agent_text.clone(),
            confidence,
            feedback,
            citation_count: u32::try_from(cited).unwrap_or(u32::MAX),
            trace_id: turn.trace_id.clone(),
            span_id: turn.span_id.clone(),
        });
    }
    for (i, c) in citations.iter_mut().enumerate() {
        c.citation_index = u32::try_from(i).unwrap_or(u32::MAX);
    }
    (answers, citations)
}

/// What makes two listings the same document: its id, else its URL, title or content.
fn identity(document: &Document) -> String {
    [
        &document.id,
        &document.url,
        &document.title,
        &document.content,
    ]
    .iter()
    .enumerate()
    .find(|(_, v)| !v.is_empty())
    .map(|(kind, v)| format!("{kind}:{v}"))
    .unwrap_or_default()
}

fn citation(
    turn: &TurnRow,
    stage: GroundingStage,
    document: &Document,
    span: &crate::model::Span,
) -> CitationRow {
    CitationRow {
        session_id: turn.session_id.clone(),
        revision: turn.revision,
        citation_index: 0,
        turn_number: turn.turn_number,
        time: unix_seconds(turn.start_time_unix_nano),
        stage: stage.as_str().to_owned(),
        document_id: document.id.clone(),
        title: document.title.clone(),
        url: document.url.clone(),
        score: document.score,
        snippet: document.content.chars().take(SNIPPET_CHARS).collect(),
        trace_id: span.trace_id.to_hex(),
        span_id: span.span_id.to_hex(),
    }
}

/// A question as it is grouped: lower case, words only, single spaces ("What are your
/// opening hours?" and "what are your  opening hours" are one question).
pub fn question_key(question: &str) -> String {
    question
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::question_key;

    #[test]
    fn questions_group_by_their_words() {
        assert_eq!(
            question_key("  What are your opening-hours?? "),
            "what are your opening hours"
        );
        assert_eq!(question_key("Où est ma COMMANDE ?"), "où est ma commande");
        assert_eq!(question_key("?!"), "");
    }
}
