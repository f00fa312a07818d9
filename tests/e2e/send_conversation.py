#!/usr/bin/env python3
"""Send one scripted voice conversation to an OTLP endpoint with the real OpenTelemetry SDK.

The spans copy what Pipecat 1.x or LiveKit Agents 1.7+ emit (see shared span conventions).
Before sending, the script prints ONE JSON document to stdout: the conversation as convolog
should reconstruct it, with the latencies the framework itself reported (in ms).

    send_conversation.py --shape pipecat|livekit --protocol grpc|http \
        --endpoint http://127.0.0.1:4317 --session-id e2e-1

For --protocol http the endpoint may be a base URL (http://127.0.0.1:4318); /v1/traces is
added when it has no path. Exit status: 0 when every export succeeded, 1 when one failed.

With --logs (Pipecat shape), the agent also writes log lines through Python's `logging` and
the SDK's LoggingHandler, each inside the STT, LLM or tool span it is about, exported over
the same protocol (/v1/logs); the printed JSON lists them under "logs".
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span, Status, StatusCode, set_span_in_context, use_span

# Give up on an unreachable endpoint quickly: the SDK's exporters retry until this runs out.
EXPORT_TIMEOUT_S = 5
NS_PER_S = 1_000_000_000


# ---------------------------------------------------------------------------------------------
# The script: four turns, the same content for both shapes.


@dataclass
class Tool:
    name: str
    arguments: dict
    result: str
    is_error: bool
    duration_ms: int


@dataclass
class Turn:
    user_text: str
    agent_text: str
    # How long the user talks and how long the agent's reply would play if not cut off.
    user_speech_ms: int
    agent_speech_ms: int
    # Framework-reported latencies: these are what the expected JSON promises.
    stt_ms: int
    llm_ttft_ms: int
    tts_ttfb_ms: int
    voice_to_voice_ms: int
    # When set, the user barges in this long after the agent starts speaking.
    interrupted_after_ms: int | None = None
    tools: list[Tool] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def interrupted(self) -> bool:
        return self.interrupted_after_ms is not None

    @property
    def spoken_text(self) -> str:
        """What played before the barge-in: the reply's words in proportion to the time heard."""
        if self.interrupted_after_ms is None:
            return self.agent_text
        words = self.agent_text.split()
        heard = len(words) * self.interrupted_after_ms // self.agent_speech_ms
        return " ".join(words[:max(1, heard)])


TURNS = [
    Turn(
        user_text="Hi, I'd like to check on an order I placed last week.",
        agent_text="Of course. Could you tell me the order number?",
        user_speech_ms=2300, agent_speech_ms=2100,
        stt_ms=180, llm_ttft_ms=420, tts_ttfb_ms=210, voice_to_voice_ms=812,
        input_tokens=212, output_tokens=11,
    ),
    Turn(
        user_text="Sure, it's A as in apple, one zero four two.",
        agent_text="Thanks. Order A1042 shipped yesterday and should arrive on Thursday.",
        user_speech_ms=2600, agent_speech_ms=3200,
        stt_ms=200, llm_ttft_ms=950, tts_ttfb_ms=230, voice_to_voice_ms=1310,
        tools=[Tool("lookup_order", {"order_id": "A1042"},
                    '{"status": "shipped", "eta": "Thursday"}', False, 350)],
        input_tokens=265, output_tokens=17,
    ),
    Turn(
        user_text="Great. And what is your return policy if it doesn't fit?",
        agent_text="You can return any item within thirty days of delivery, as long as it is "
                   "unused and in its original packaging. Refunds go back to the original "
                   "payment method within five business days.",
        user_speech_ms=2800, agent_speech_ms=7400,
        stt_ms=160, llm_ttft_ms=450, tts_ttfb_ms=220, voice_to_voice_ms=880,
        interrupted_after_ms=1900,
        input_tokens=301, output_tokens=38,
    ),
    Turn(
        user_text="Actually, can someone just call me back tomorrow morning?",
        agent_text="I'm sorry, I couldn't schedule a callback right now. "
                   "Please try again in a little while.",
        user_speech_ms=2700, agent_speech_ms=3600,
        stt_ms=170, llm_ttft_ms=900, tts_ttfb_ms=260, voice_to_voice_ms=1190,
        tools=[Tool("schedule_callback", {"when": "tomorrow 09:00"},
                    "callback service unavailable", True, 300)],
        input_tokens=340, output_tokens=19,
    ),
]

# Silence between the agent finishing and the user speaking again.
GAP_MS = 700
# Pipecat closes the last turn this long after the bot stops speaking.
PIPECAT_TURN_TIMEOUT_MS = 2500


def expected(session_id: str, shape: str) -> dict:
    """The conversation convolog should build from the spans."""
    turns = []
    for number, turn in enumerate(TURNS, start=1):
        turns.append({
            "turn_number": number,
            "user_text": turn.user_text,
            "agent_text": turn.agent_text,
            "interrupted": turn.interrupted,
            "voice_to_voice_ms": float(turn.voice_to_voice_ms),
            "llm_ttft_ms": float(turn.llm_ttft_ms),
            "tts_ttfb_ms": float(turn.tts_ttfb_ms),
            "stt_ms": float(turn.stt_ms),
            "tool_calls": [{"name": t.name, "is_error": t.is_error} for t in turn.tools],
            # LiveKit records what actually played of an interrupted reply; Pipecat does not.
            "agent_spoken_text": turn.spoken_text if shape == "livekit" and turn.interrupted else None,
        })
    logs = [line for number, turn in enumerate(TURNS, start=1) for line in log_lines(number, turn)]
    return {"session_id": session_id, "turns": turns, "logs": logs}


def log_lines(number: int, turn: Turn) -> list[dict]:
    """What the agent logs in a turn, in the span each line is written in, in time order."""
    lines = [{"span_name": "stt", "severity": "INFO", "turn_number": number,
              "body": f"final transcript: {turn.user_text}"}]
    for tool in turn.tools:
        if tool.is_error:
            lines.append({"span_name": "llm_tool_call", "severity": "ERROR",
                          "turn_number": number, "body": f"{tool.name} failed: {tool.result}"})
        else:
            lines.append({"span_name": "llm_tool_call", "severity": "INFO",
                          "turn_number": number, "body": f"{tool.name} returned"})
    lines.append({"span_name": "llm", "severity": "WARN", "turn_number": number,
                  "body": f"first token after {turn.llm_ttft_ms} ms"})
    return lines


def seconds(ms: int) -> float:
    value = ms / 1000
    # The expected JSON says ms; whoever multiplies the attribute back must get the same number.
    assert value * 1000 == ms, ms
    return value


# ---------------------------------------------------------------------------------------------
# Span building. Spans are created with explicit start times and only ended at the very end,
# in end-time order with children before parents, as a live pipeline would end them.


class Recorder:
    def __init__(self, provider: TracerProvider, logger: logging.Logger | None = None):
        self.provider = provider
        self.pending: list[tuple[int, int, Span]] = []  # (end_ns, depth, span)
        self.logger = logger

    def log(self, span: Span, at_ns: int, line: dict) -> None:
        """Writes `line` through `logging` with `span` current, as code running in it would.
        The record is dated `at_ns` (see `Backdate`): the conversation is replayed after the fact."""
        if self.logger is None:
            return
        level = {"INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}
        with use_span(span, end_on_exit=False):
            self.logger.log(level[line["severity"]], line["body"], extra={"at_ns": at_ns})

    def span(self, scope: str, name: str, parent: tuple[Span, int] | None,
             start_ns: int, end_ns: int, attributes: dict) -> tuple[Span, int]:
        tracer = self.provider.get_tracer(scope)
        context = set_span_in_context(parent[0]) if parent else None
        depth = parent[1] + 1 if parent else 0
        span = tracer.start_span(name, context=context, start_time=start_ns, attributes=attributes)
        self.pending.append((end_ns, depth, span))
        return span, depth

    def end_all(self) -> None:
        for end_ns, _depth, span in sorted(self.pending, key=lambda p: (p[0], -p[1])):
            span.end(end_time=end_ns)


@dataclass
class Timeline:
    """Absolute times (ns) of one turn, derived from its reported latencies."""
    start: int            # user starts speaking
    speech_end: int       # user stops speaking
    bot_start: int        # first agent audio plays
    bot_end: int          # agent audio stops (finished, or cut off by barge-in)
    end: int              # turn ends: next user speech, barge-in, or timeout


def timelines(anchor_ns: int, last_timeout_ms: int) -> list[Timeline]:
    ms = 1_000_000
    out = []
    t = anchor_ns
    for i, turn in enumerate(TURNS):
        speech_end = t + turn.user_speech_ms * ms
        bot_start = speech_end + turn.voice_to_voice_ms * ms
        if turn.interrupted:
            bot_end = bot_start + turn.interrupted_after_ms * ms
            end = bot_end  # the barge-in starts the next turn
        else:
            bot_end = bot_start + turn.agent_speech_ms * ms
            last = i == len(TURNS) - 1
            end = bot_end + (last_timeout_ms if last else GAP_MS) * ms
        out.append(Timeline(t, speech_end, bot_start, bot_end, end))
        t = end
    return out


def tool_window(turn: Turn, llm_start: int) -> list[tuple[Tool, int, int]]:
    """Tools run one after another right after the LLM call starts, before its first token."""
    ms = 1_000_000
    out = []
    t = llm_start + 120 * ms
    for tool in turn.tools:
        out.append((tool, t, t + tool.duration_ms * ms))
        t += (tool.duration_ms + 20) * ms
    return out


def pipecat(rec: Recorder, session_id: str, anchor_ns: int) -> None:
    ms = 1_000_000
    lines = timelines(anchor_ns, PIPECAT_TURN_TIMEOUT_MS)
    conv_start = anchor_ns - 400 * ms  # the pipeline starts a moment before the user speaks
    conv_end = lines[-1].end + 50 * ms
    conversation = rec.span("pipecat.turn", "conversation", None, conv_start, conv_end,
                            {"conversation.id": session_id, "conversation.type": "voice"})
    for number, (turn, tl) in enumerate(zip(TURNS, lines), start=1):
        turn_span = rec.span("pipecat.turn", "turn", conversation, tl.start, tl.end, {
            "turn.number": number,
            "turn.type": "conversation",
            "conversation.id": session_id,
            "turn.duration_seconds": (tl.end - tl.start) / NS_PER_S,
            "turn.was_interrupted": turn.interrupted,
            "turn.ended_by_conversation_end": False,
            "turn.user_bot_latency_seconds": seconds(turn.voice_to_voice_ms),
        })
        lines = iter(log_lines(number, turn))
        # STT: its start is moved back to VAD speech start; ttfb = speech end -> final transcript.
        stt_end = tl.speech_end + turn.stt_ms * ms
        stt, _ = rec.span("pipecat", "stt", turn_span, tl.start, stt_end, {
            "gen_ai.operation.name": "stt",
            "gen_ai.provider.name": "deepgram",
            "gen_ai.request.model": "nova-3",
            "transcript": turn.user_text,
            "is_final": True,
            "language": "en-US",
            "vad_enabled": True,
            "metrics.ttfb": seconds(turn.stt_ms),
            "metrics.audio_seconds": turn.user_speech_ms / 1000,
        })
        rec.log(stt, stt_end - ms, next(lines))
        llm_start = stt_end
        tts_start = tl.bot_start - turn.tts_ttfb_ms * ms
        llm_end = tts_start + 600 * ms  # streaming goes on a little after the first sentence
        llm, _ = rec.span("pipecat", "llm", turn_span, llm_start, llm_end, {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "input": json.dumps([{"role": "user", "content": turn.user_text}]),
            "output": turn.agent_text,
            "gen_ai.usage.input_tokens": turn.input_tokens,
            "gen_ai.usage.output_tokens": turn.output_tokens,
            "metrics.ttfb": seconds(turn.llm_ttft_ms),
        })
        rec.span("pipecat", "tts", turn_span, tts_start, tl.bot_end, {
            "gen_ai.operation.name": "tts",
            "gen_ai.provider.name": "cartesia",
            "voice_id": "71a7ad14-091c-4e8e-a314-022ece01c121",
            "text": turn.agent_text,
            "metrics.character_count": len(turn.agent_text),
            "metrics.ttfb": seconds(turn.tts_ttfb_ms),
            "tts.interrupted": turn.interrupted,
        })
        for i, (tool, start, end) in enumerate(tool_window(turn, llm_start), start=1):
            span, _ = rec.span("pipecat", "llm_tool_call", turn_span, start, end, {
                "tool.function_name": tool.name,
                "tool.call_id": f"call_{number}_{i}",
                "tool.arguments": json.dumps(tool.arguments),
                "tool.result": tool.result,
                "tool.result_status": "error" if tool.is_error else "success",
            })
            rec.log(span, end - ms, next(lines))
            if tool.is_error:
                # Default OTel exception recording: an `exception` event plus status ERROR.
                span.record_exception(RuntimeError(tool.result), timestamp=end)
                span.set_status(Status(StatusCode.ERROR, tool.result))
        rec.log(llm, llm_start + turn.llm_ttft_ms * ms, next(lines))


def livekit(rec: Recorder, session_id: str, anchor_ns: int) -> None:
    ms = 1_000_000
    # LiveKit has no turn timeout: the session just continues until it is closed.
    lines = timelines(anchor_ns, GAP_MS)
    sid = {"session.id": session_id}
    session = rec.span("livekit-agents", "agent_session", None, anchor_ns - 900 * ms,
                       lines[-1].end + 300 * ms, {
                           **sid,
                           "lk.agent_name": "support-agent",
                           "lk.job_id": "AJ_e2eTestJob01",
                           "lk.pii.room_name": f"room-{session_id}",
                       })
    for number, (turn, tl) in enumerate(zip(TURNS, lines), start=1):
        # End of turn is detected a little after the final transcript arrives.
        eot_delay_ms = turn.stt_ms + 150
        eot = tl.speech_end + eot_delay_ms * ms
        rec.span("livekit-agents", "user_turn", session, tl.start, eot, {
            **sid,
            "lk.pii.user_transcript": turn.user_text,
            "lk.transcript_confidence": 0.97,
            "lk.transcription_delay": seconds(turn.stt_ms),
            "lk.end_of_turn_delay": seconds(eot_delay_ms),
        })
        agent_turn = rec.span("livekit-agents", "agent_turn", session, eot, tl.bot_end, {
            **sid,
            "lk.speech_id": f"speech_{number:04d}",
            "lk.generation_id": f"gen_{number:04d}",
            "lk.pii.user_input": turn.user_text,
            "lk.interrupted": "true" if turn.interrupted else "false",
            "lk.e2e_latency": seconds(turn.voice_to_voice_ms),
            # LiveKit puts what actually played on the turn, the generated text on llm_node.
            "lk.pii.response.text": turn.spoken_text,
        })
        tts_start = tl.bot_start - turn.tts_ttfb_ms * ms
        llm_end = tts_start + 600 * ms
        llm_node = rec.span("livekit-agents", "llm_node", agent_turn, eot, llm_end, {
            **sid,
            "lk.pii.response.text": turn.agent_text,
        })
        rec.span("livekit-agents", "llm_request", llm_node, eot + 2 * ms, llm_end - 2 * ms, {
            **sid,
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": turn.input_tokens,
            "gen_ai.usage.output_tokens": turn.output_tokens,
            "lk.response.ttft": seconds(turn.llm_ttft_ms),
        })
        tts_node = rec.span("livekit-agents", "tts_node", agent_turn, tts_start, tl.bot_end, sid)
        rec.span("livekit-agents", "tts_request", tts_node, tts_start + 1 * ms, tl.bot_end, {
            **sid,
            "lk.pii.input_text": turn.agent_text,
            "lk.tts.streaming": True,
            "lk.response.ttfb": seconds(turn.tts_ttfb_ms),
        })
        for i, (tool, start, end) in enumerate(tool_window(turn, eot), start=1):
            # LiveKit marks a failed tool with the attribute only; the span status stays unset.
            rec.span("livekit-agents", "function_tool", agent_turn, start, end, {
                **sid,
                "lk.function_tool.id": f"call_{number}_{i}",
                "lk.function_tool.name": tool.name,
                "lk.pii.function_tool.arguments": json.dumps(tool.arguments),
                "lk.pii.function_tool.output": tool.result,
                "lk.function_tool.is_error": tool.is_error,
            })


# ---------------------------------------------------------------------------------------------
# Export.


class RecordingExporter(SpanExporter):
    """Passes batches to the real OTLP exporter and remembers whether every export succeeded:
    the batch processor itself swallows failures."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.lock = threading.Lock()
        self.exported = 0
        self.failed = 0

    def export(self, spans):
        try:
            result = self.inner.export(spans)
        except Exception as error:  # an exporter bug must not look like success
            print(f"export raised: {error!r}", file=sys.stderr)
            result = SpanExportResult.FAILURE
        with self.lock:
            if result == SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def make_exporter(protocol: str, endpoint: str) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        # An http:// URL makes the gRPC exporter use a plaintext channel.
        return OTLPSpanExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    if urlparse(endpoint).path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S)


class Backdate(logging.Filter):
    """Dates a record at its `at_ns` (the LoggingHandler takes the time from `created`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        at_ns = getattr(record, "at_ns", None)
        if at_ns is not None:
            record.created = at_ns / NS_PER_S
            del record.at_ns
        return True


def make_log_exporter(protocol: str, endpoint: str):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        return OTLPLogExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    if urlparse(endpoint).path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/logs"
    return OTLPLogExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S)


class RecordingLogExporter:
    """Passes batches to the real OTLP log exporter and counts what it accepted."""

    def __init__(self, inner):
        self.inner = inner
        self.exported = 0
        self.failed = 0

    def export(self, batch):
        from opentelemetry.sdk._logs.export import LogRecordExportResult
        try:
            result = self.inner.export(batch)
        except Exception as error:  # an exporter bug must not look like success
            print(f"log export raised: {error!r}", file=sys.stderr)
            result = LogRecordExportResult.FAILURE
        if result == LogRecordExportResult.SUCCESS:
            self.exported += len(batch)
        else:
            self.failed += len(batch)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def agent_logger(protocol: str, endpoint: str, resource: Resource):
    """A `logging` logger whose records go to the endpoint through the SDK's LoggingHandler."""
    import warnings
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    provider = LoggerProvider(resource=resource)
    exporter = RecordingLogExporter(make_log_exporter(protocol, endpoint))
    provider.add_log_record_processor(BatchLogRecordProcessor(
        exporter, schedule_delay_millis=100, export_timeout_millis=EXPORT_TIMEOUT_S * 1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    handler.addFilter(Backdate())
    logger = logging.getLogger("agent")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    return logger, provider, exporter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=["pipecat", "livekit"], required=True)
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True,
                        help="e.g. http://127.0.0.1:4317 (grpc) or http://127.0.0.1:4318 (http)")
    parser.add_argument("--session-id", required=True)
    parser.add_argument("--logs", action="store_true",
                        help="also write log lines through logging (Pipecat shape only)")
    args = parser.parse_args()
    if args.logs and args.shape != "pipecat":
        parser.error("--logs goes with --shape pipecat")

    print(json.dumps(expected(args.session_id, args.shape)), flush=True)

    service = {"pipecat": "e2e-pipecat-bot", "livekit": "e2e-livekit-agent"}[args.shape]
    resource = Resource.create({"service.name": service})
    provider = TracerProvider(resource=resource)
    exporter = RecordingExporter(make_exporter(args.protocol, args.endpoint))
    provider.add_span_processor(BatchSpanProcessor(
        exporter, schedule_delay_millis=100, max_export_batch_size=16,
        export_timeout_millis=EXPORT_TIMEOUT_S * 1000))

    logger = log_provider = log_exporter = None
    if args.logs:
        logger, log_provider, log_exporter = agent_logger(args.protocol, args.endpoint, resource)
    recorder = Recorder(provider, logger)
    # A minute in the past, so the whole conversation (about 35 s) is over by now.
    anchor_ns = time.time_ns() - 60 * NS_PER_S
    {"pipecat": pipecat, "livekit": livekit}[args.shape](recorder, args.session_id, anchor_ns)
    recorder.end_all()
    total = len(recorder.pending)

    flushed = provider.force_flush(timeout_millis=(EXPORT_TIMEOUT_S + 5) * 1000 * 4)
    provider.shutdown()
    if log_provider is not None:
        flushed &= log_provider.force_flush(timeout_millis=(EXPORT_TIMEOUT_S + 5) * 1000 * 4)
        log_provider.shutdown()
        expected_lines = len(expected(args.session_id, args.shape)["logs"])
        if log_exporter.failed or log_exporter.exported != expected_lines:
            print(f"log export to {args.endpoint} ({args.protocol}) FAILED: "
                  f"{log_exporter.exported} of {expected_lines} records accepted", file=sys.stderr)
            return 1

    if exporter.failed or not flushed or exporter.exported != total:
        print(f"export to {args.endpoint} ({args.protocol}) FAILED: {exporter.exported} of "
              f"{total} spans accepted, {exporter.failed} failed"
              f"{'' if flushed else ', flush timed out'}", file=sys.stderr)
        return 1
    print(f"exported {total} spans to {args.endpoint} ({args.protocol})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
