#!/usr/bin/env python3
"""Run a real LiveKit AgentSession offline with a scripted LLM and export its traces.

The session, the agent, function tools, the chat context and the telemetry are LiveKit's
own; only the LLM is scripted (fixed texts, tool calls and time to first token). The
session runs in text mode (`AgentSession.run(user_input=...)`), LiveKit's own test mode, so
there is no audio: no STT, TTS or barge-in here (the Pipecat test covers those).

    livekit_conversation.py --endpoint http://127.0.0.1:4318 --session-id lk-1

It prints two JSON documents to stdout, one per line: before the conversation, the script
(what convolog should show); after it, what LiveKit reported per turn (the
`lk.response.ttft` of its first `llm_node`, in ms). Exit status 0 when the run and the export
succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

LLM_TTFT_S = 0.2
TOOL_S = 0.05

WEATHER = {"temperature": 20, "conditions": "sunny"}
CHECKING = "Let me check the weather for you."

# Each user line and what the LLM streams for each request it causes: a text, tool calls
# (name, arguments), or both (the text spoken before the call).
SCRIPT = [
    {
        "user": "What's the weather in Paris?",
        "llm": [(CHECKING, [("get_weather", {"city": "Paris"})]), ("It is 20 degrees and sunny in Paris.", [])],
    },
    {
        "user": "And the forecast for London?",
        "llm": [("", [("get_forecast", {"city": "London"})]), ("Sorry, the forecast service is down.", [])],
    },
    {"user": "Okay, thanks.", "llm": [("You're welcome, goodbye.", [])]},
]


def expected() -> dict:
    return {
        "llm_ttft_ms": LLM_TTFT_S * 1000,
        "turns": [
            {
                "user_text": "What's the weather in Paris?",
                "replies": [CHECKING, "It is 20 degrees and sunny in Paris."],
                "tool_calls": [
                    {
                        "name": "get_weather",
                        "arguments": {"city": "Paris"},
                        # LiveKit records a tool's output as Python's str() of the value.
                        "result": str(WEATHER),
                        "is_error": False,
                    }
                ],
            },
            {
                "user_text": "And the forecast for London?",
                "replies": ["Sorry, the forecast service is down."],
                "tool_calls": [
                    {
                        "name": "get_forecast",
                        "arguments": {"city": "London"},
                        "result": None,
                        "is_error": True,
                    }
                ],
            },
            {
                "user_text": "Okay, thanks.",
                "replies": ["You're welcome, goodbye."],
                "tool_calls": [],
            },
        ],
    }


async def run() -> None:
    from livekit.agents import Agent, AgentSession, function_tool, llm
    from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS

    responses = [response for turn in SCRIPT for response in turn["llm"]]

    class ScriptedStream(llm.LLMStream):
        async def _run(self) -> None:
            text, calls = responses.pop(0)
            await asyncio.sleep(LLM_TTFT_S)
            if text:
                for i, word in enumerate(text.split(" ")):
                    content = word if i == 0 else " " + word
                    self._event_ch.send_nowait(
                        llm.ChatChunk(
                            id="chunk", delta=llm.ChoiceDelta(role="assistant", content=content)
                        )
                    )
                    await asyncio.sleep(0.01)
            if calls:
                self._event_ch.send_nowait(
                    llm.ChatChunk(
                        id="chunk",
                        delta=llm.ChoiceDelta(
                            role="assistant",
                            tool_calls=[
                                llm.FunctionToolCall(
                                    name=name, arguments=json.dumps(arguments), call_id=f"call_{name}"
                                )
                                for name, arguments in calls
                            ],
                        ),
                    )
                )

    class ScriptedLLM(llm.LLM):
        @property
        def model(self) -> str:
            return "scripted-1"

        @property
        def provider(self) -> str:
            return "scripted"

        def chat(self, *, chat_ctx, tools=None, conn_options=DEFAULT_API_CONNECT_OPTIONS, **_):
            return ScriptedStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)

    class WeatherAgent(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="You are a weather assistant.")

        @function_tool
        async def get_weather(self, city: str) -> dict:
            """Current weather in a city."""
            await asyncio.sleep(TOOL_S)
            return WEATHER

        @function_tool
        async def get_forecast(self, city: str) -> dict:
            """Forecast for a city."""
            await asyncio.sleep(TOOL_S)
            raise RuntimeError("forecast service unavailable")

    async with AgentSession(llm=ScriptedLLM()) as session:
        await session.start(WeatherAgent())
        for turn in SCRIPT:
            await session.run(user_input=turn["user"])


class Reported(SpanExporter):
    """Keeps what LiveKit reported on its own spans."""

    def __init__(self):
        self.spans = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def per_turn(self) -> list[dict]:
        """Each `agent_turn` in order, with the TTFT of its first generation."""
        spans = sorted(self.spans, key=lambda s: s.start_time)
        turns = [span for span in spans if span.name == "agent_turn"]
        reported = []
        for turn in turns:
            first = next(
                span
                for span in spans
                if span.name == "llm_node" and span.parent.span_id == turn.context.span_id
            )
            reported.append({"llm_ttft_ms": first.attributes["lk.response.ttft"] * 1000})
        return reported


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--session-id", required=True)
    args = parser.parse_args()

    print(json.dumps(expected()), flush=True)

    from livekit.agents.telemetry import set_tracer_provider

    provider = TracerProvider(
        resource=Resource.create({"service.name": "livekit-e2e", "session.id": args.session_id})
    )
    exporter = OTLPSpanExporter(endpoint=args.endpoint.rstrip("/") + "/v1/traces", timeout=5)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reported = Reported()
    provider.add_span_processor(SimpleSpanProcessor(reported))
    set_tracer_provider(provider, allow_pii=True)

    asyncio.run(run())
    provider.shutdown()
    print(json.dumps({"reported": reported.per_turn()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
