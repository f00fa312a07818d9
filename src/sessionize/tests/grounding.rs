//! Citations, confidence and feedback per answer.

use crate::conventions::fixtures::span;
use crate::model::conversation::DerivedSession;
use crate::model::Span;
use crate::sessionize::{sessionize, Rules};

fn derive(spans: &[Span]) -> DerivedSession {
    sessionize("s", spans, 1, 0, &Rules::default())
}

/// A retrieval-augmented turn in the OpenInference conventions: an agent span holding a
/// retriever, a reranker that keeps one document, and the LLM call.
fn rag_turn() -> Vec<Span> {
    vec![
        span("agent")
            .id(1)
            .at(0, 2000)
            .attr("openinference.span.kind", "AGENT")
            .attr("input.value", "What are your opening hours?")
            .attr("output.value", "We open at 9.")
            .attr("convolog.answer.confidence", "0.82")
            .build(),
        span("retrieve")
            .id(2)
            .parent(1)
            .at(10, 200)
            .attr("openinference.span.kind", "RETRIEVER")
            .attr("retrieval.documents.0.document.id", "kb-hours")
            .attr("retrieval.documents.0.document.score", "0.91")
            .attr("retrieval.documents.1.document.id", "kb-parking")
            .attr("retrieval.documents.1.document.score", "0.40")
            .build(),
        span("rerank")
            .id(3)
            .parent(1)
            .at(200, 300)
            .attr("openinference.span.kind", "RERANKER")
            .attr("reranker.output_documents.0.document.id", "kb-hours")
            .attr("reranker.output_documents.0.document.score", "0.97")
            .attr(
                "reranker.output_documents.0.document.metadata",
                r#"{"title":"Opening hours","url":"https://kb.example/hours"}"#,
            )
            .build(),
        span("llm")
            .id(4)
            .parent(1)
            .at(300, 1900)
            .attr("openinference.span.kind", "LLM")
            .attr("output.value", "We open at 9.")
            .build(),
    ]
}

#[test]
fn the_reranked_documents_are_the_answers_citations() {
    let derived = derive(&rag_turn());
    assert_eq!(derived.answers.len(), 1);
    let answer = &derived.answers[0];
    assert_eq!(answer.question, "What are your opening hours?");
    assert_eq!(answer.question_key, "what are your opening hours");
    assert_eq!(answer.confidence, Some(0.82));
    assert_eq!(answer.citation_count, 1);
    assert_eq!(derived.citations.len(), 1);
    let c = &derived.citations[0];
    assert_eq!(
        (
            c.stage.as_str(),
            c.document_id.as_str(),
            c.title.as_str(),
            c.score
        ),
        ("reranked", "kb-hours", "Opening hours", Some(0.97))
    );
    assert_eq!(c.url, "https://kb.example/hours");
}

#[test]
fn feedback_on_a_turn_rates_its_answer() {
    let mut spans = rag_turn();
    spans.push(
        span("feedback")
            .id(5)
            .parent(1)
            .at(1950, 1960)
            .attr("convolog.feedback", "thumbs_down")
            .build(),
    );
    let derived = derive(&spans);
    assert_eq!(derived.answers[0].feedback, "down");
}

/// A plain chat app: no turn span, the retrieval runs just before the LLM call it feeds.
/// The retrieval belongs to the answer it leads to, not to the previous one.
#[test]
fn a_retrieval_before_the_llm_call_grounds_that_call() {
    let llm = |id: u8, at: u64, question: &str, answer: &str| {
        span("chat")
            .id(id)
            .at(at, at + 500)
            .attr("gen_ai.operation.name", "chat")
            .attr(
                "gen_ai.input.messages",
                &format!(
                    r#"[{{"role":"user","parts":[{{"type":"text","content":"{question}"}}]}}]"#
                ),
            )
            .attr(
                "gen_ai.output.messages",
                &format!(
                    r#"[{{"role":"assistant","parts":[{{"type":"text","content":"{answer}"}}]}}]"#
                ),
            )
            .build()
    };
    let spans = vec![
        llm(1, 0, "hi", "Hello!"),
        span("retrieval kb")
            .id(2)
            .at(5000, 5100)
            .attr("gen_ai.operation.name", "retrieval")
            .attr(
                "gen_ai.retrieval.documents",
                r#"[{"id":"kb-refunds","score":0.7}]"#,
            )
            .build(),
        llm(3, 5200, "How do refunds work?", "Refunds take 5 days."),
    ];
    let derived = derive(&spans);
    assert_eq!(derived.answers.len(), 2);
    assert_eq!(derived.answers[0].citation_count, 0);
    assert_eq!(derived.answers[1].citation_count, 1);
    assert_eq!(derived.citations[0].turn_number, 2);
    assert_eq!(derived.citations[0].stage, "retrieved");
}

#[test]
fn cited_documents_win_over_retrieved_ones() {
    let mut spans = rag_turn();
    spans[3] = span("llm")
        .id(4)
        .parent(1)
        .at(300, 1900)
        .attr("openinference.span.kind", "LLM")
        .attr("output.value", "We open at 9.")
        .attr("convolog.citations.0.id", "kb-hours")
        .attr("convolog.citations.0.title", "Hours page")
        .attr("convolog.citations.1.url", "https://kb.example/holidays")
        .build();
    let derived = derive(&spans);
    let stages: Vec<&str> = derived.citations.iter().map(|c| c.stage.as_str()).collect();
    assert_eq!(stages, ["cited", "cited"]);
    assert_eq!(derived.citations[0].title, "Hours page");
    assert_eq!(derived.citations[1].url, "https://kb.example/holidays");
}
