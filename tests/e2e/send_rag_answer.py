#!/usr/bin/env python3
"""Send a retrieval-augmented chat in the OpenInference conventions with the real OpenTelemetry
SDK: per turn an AGENT span holding a RETRIEVER, (on the first turn) a RERANKER and an LLM span,
their attributes named by `openinference-semantic-conventions`. Before sending, the script
prints ONE JSON document to stdout: each turn's question, answer, confidence and the documents
convolog should show as its citations.

    send_rag_answer.py --protocol grpc|http --endpoint http://127.0.0.1:4317 --session-id rag-1

Exit status: 0 when every export succeeded, 1 when one failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from openinference.semconv.trace import (
    DocumentAttributes,
    OpenInferenceSpanKindValues,
    RerankerAttributes,
    SpanAttributes,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from send_conversation import RecordingExporter, make_exporter  # noqa: E402

KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND

ARTICLES = {
    "kb-hours": ("Opening hours", "https://help.example.com/hours",
                 "The shop opens at 9:00 and closes at 18:00, Monday to Saturday."),
    "kb-holidays": ("Holiday closures", "https://help.example.com/holidays",
                    "The shop is closed on public holidays."),
    "kb-parking": ("Parking", "https://help.example.com/parking",
                   "Customers park for free behind the shop."),
}

# (question, answer, confidence, retrieved [(id, score)], reranked [(id, score)] or None)
TURNS = [
    ("When do you open on Saturday?", "We open at 9:00 on Saturdays.", 0.86,
     [("kb-hours", 0.82), ("kb-parking", 0.41), ("kb-holidays", 0.38)],
     [("kb-hours", 0.97), ("kb-holidays", 0.55)]),
    ("Can I park nearby?", "Yes, parking behind the shop is free.", 0.74,
     [("kb-parking", 0.88)], None),
]


def documents(prefix: str, scored: list) -> dict:
    attributes = {}
    for i, (doc_id, score) in enumerate(scored):
        title, url, text = ARTICLES[doc_id]
        key = f"{prefix}.{i}"
        attributes[f"{key}.{DocumentAttributes.DOCUMENT_ID}"] = doc_id
        attributes[f"{key}.{DocumentAttributes.DOCUMENT_CONTENT}"] = text
        attributes[f"{key}.{DocumentAttributes.DOCUMENT_SCORE}"] = score
        attributes[f"{key}.{DocumentAttributes.DOCUMENT_METADATA}"] = json.dumps(
            {"title": title, "url": url})
    return attributes


def expected(session_id: str) -> dict:
    turns = []
    for n, (question, answer, confidence, retrieved, reranked) in enumerate(TURNS, start=1):
        cited = reranked if reranked is not None else retrieved
        turns.append({
            "turn_number": n,
            "question": question,
            "answer": answer,
            "confidence": confidence,
            "stage": "reranked" if reranked is not None else "retrieved",
            "citations": [{"document_id": d, "score": s, "title": ARTICLES[d][0],
                           "url": ARTICLES[d][1]} for d, s in cited],
        })
    return {"session_id": session_id, "turns": turns}


def send(tracer, session_id: str) -> None:
    for question, answer, confidence, retrieved, reranked in TURNS:
        with tracer.start_as_current_span("support-agent", attributes={
            KIND: OpenInferenceSpanKindValues.AGENT.value,
            SpanAttributes.SESSION_ID: session_id,
            SpanAttributes.INPUT_VALUE: question,
            SpanAttributes.OUTPUT_VALUE: answer,
            "convolog.answer.confidence": confidence,
        }):
            with tracer.start_as_current_span("retrieve", attributes={
                KIND: OpenInferenceSpanKindValues.RETRIEVER.value,
                SpanAttributes.INPUT_VALUE: question,
                **documents(SpanAttributes.RETRIEVAL_DOCUMENTS, retrieved),
            }):
                pass
            if reranked is not None:
                with tracer.start_as_current_span("rerank", attributes={
                    KIND: OpenInferenceSpanKindValues.RERANKER.value,
                    RerankerAttributes.RERANKER_QUERY: question,
                    RerankerAttributes.RERANKER_MODEL_NAME: "cross-encoder/ms-marco-MiniLM-L-6-v2",
                    RerankerAttributes.RERANKER_TOP_K: len(reranked),
                    **documents(RerankerAttributes.RERANKER_INPUT_DOCUMENTS, retrieved),
                    **documents(RerankerAttributes.RERANKER_OUTPUT_DOCUMENTS, reranked),
                }):
                    pass
            with tracer.start_as_current_span("llm", attributes={
                KIND: OpenInferenceSpanKindValues.LLM.value,
                SpanAttributes.LLM_MODEL_NAME: "gpt-4o-mini",
                SpanAttributes.INPUT_VALUE: question,
                SpanAttributes.OUTPUT_VALUE: answer,
                SpanAttributes.LLM_TOKEN_COUNT_PROMPT: 180,
                SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: 12,
            }):
                pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--session-id", required=True)
    args = parser.parse_args()

    print(json.dumps(expected(args.session_id)), flush=True)
    provider = TracerProvider(resource=Resource.create({"service.name": "e2e-rag-agent"}))
    exporter = RecordingExporter(make_exporter(args.protocol, args.endpoint))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    send(provider.get_tracer("openinference.instrumentation.e2e"), args.session_id)
    provider.shutdown()
    if exporter.failed or exporter.exported == 0:
        print(f"export to {args.endpoint} ({args.protocol}) FAILED: {exporter.exported} spans "
              f"accepted, {exporter.failed} failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
