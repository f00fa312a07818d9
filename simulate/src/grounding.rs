//! What an answer stood on, in the conventions that carry it: an OpenInference
//! `RETRIEVER` span, a GenAI `retrieval` span, or `convolog.citations.*`; and the answer's
//! confidence and rating as `convolog.*` facts.

use opentelemetry::KeyValue;
use serde_json::json;

use super::plan::{PlannedEvent, PlannedSpan};
use super::script::Grounding;

/// The application's own retriever, traced with OpenInference.
const RETRIEVER_SCOPE: &str = "openinference.instrumentation.retriever";
const DATA_SOURCE: &str = "help-center";

/// An OpenInference `RETRIEVER` span with `retrieval.documents.N.document.*`.
pub(crate) fn openinference_retriever(
    g: &Grounding,
    query: &str,
    start: f64,
    end: f64,
) -> PlannedSpan {
    let mut span = PlannedSpan::new("retrieve", RETRIEVER_SCOPE, start, end)
        .attr("openinference.span.kind", "RETRIEVER")
        .attr("input.value", query.to_owned());
    for (i, (article, score)) in g.documents.iter().enumerate() {
        let key = |field: &str| format!("retrieval.documents.{i}.document.{field}");
        let metadata = json!({"title": article.title, "url": article.url}).to_string();
        span.attributes.extend([
            KeyValue::new(key("id"), article.id),
            KeyValue::new(key("content"), article.text),
            KeyValue::new(key("score"), *score),
            KeyValue::new(key("metadata"), metadata),
        ]);
    }
    span
}

/// A GenAI `retrieval` span: `gen_ai.retrieval.documents` as JSON `{id, score, content}`.
pub(crate) fn genai_retrieval(
    g: &Grounding,
    query: &str,
    scope: &'static str,
    start: f64,
    end: f64,
) -> PlannedSpan {
    let documents: Vec<serde_json::Value> = g
        .documents
        .iter()
        .map(|(article, score)| json!({"id": article.id, "score": score, "content": article.text}))
        .collect();
    PlannedSpan::new(format!("retrieval {DATA_SOURCE}"), scope, start, end)
        .attr("gen_ai.operation.name", "retrieval")
        .attr("gen_ai.data_source.id", DATA_SOURCE)
        .attr("gen_ai.retrieval.query.text", query.to_owned())
        .attr(
            "gen_ai.retrieval.documents",
            serde_json::Value::from(documents).to_string(),
        )
}

/// `convolog.citations.N.*` on the span that gives the answer.
pub(crate) fn cite(mut span: PlannedSpan, g: &Grounding) -> PlannedSpan {
    for (i, (article, score)) in g.documents.iter().enumerate() {
        let key = |field: &str| format!("convolog.citations.{i}.{field}");
        span.attributes.extend([
            KeyValue::new(key("id"), article.id),
            KeyValue::new(key("title"), article.title),
            KeyValue::new(key("url"), article.url),
            KeyValue::new(key("score"), *score),
        ]);
    }
    span
}

/// The answer's confidence on the span, and the user's rating as an event at its end.
pub(crate) fn rate(mut span: PlannedSpan, g: &Grounding) -> PlannedSpan {
    span.attributes
        .push(KeyValue::new("convolog.answer.confidence", g.confidence));
    if let Some(feedback) = g.feedback {
        span.events.push(PlannedEvent {
            name: "convolog.feedback",
            at: span.end,
            attributes: vec![KeyValue::new("convolog.feedback", feedback)],
        });
    }
    span
}
