#!/usr/bin/env python3
"""Run a real Pipecat pipeline offline with scripted services and export its traces.

The pipeline is Pipecat's own: its STT and TTS base classes, its OpenAI LLM service (the
chat completion stream is scripted instead of fetched), its context aggregators, function
calling, turn tracking and output transport pacing. Only what would come from outside is
scripted: when the user speaks (VAD events), what the STT hears, what the LLM streams, and
the audio the TTS makes. Fixed delays stand in for the services' latencies.

    pipecat_conversation.py --endpoint http://127.0.0.1:4318 --session-id pc-1 \
        --tracing pipecat|openinference

It prints two JSON documents to stdout, one per line: before the conversation, the script
(what convolog should show, delays in ms); after it, what Pipecat itself reported per turn
(its voice-to-voice and each stage's first time to first byte, in ms), read from
the same spans in process. Exit status 0 when the run and the export succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from openai.types.chat import ChatCompletionChunk
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

# Latencies the scripted services add, in seconds.
STT_DELAY_S = 0.15  # from VAD's end of speech to the final transcript
LLM_TTFT_S = 0.20  # from the request to the first streamed chunk
TTS_TTFB_S = 0.10  # from the text to the first audio
TOOL_S = 0.05  # each function handler
USER_SPEECH_S = 0.4
VAD_STOP_S = 0.2  # how long VAD waits in silence before it says the user stopped
SAMPLE_RATE = 16000
# Pipecat closes a turn this long after the bot stopped speaking (its default 2.5 s), plus margin.
TURN_END_S = 3.0
# Audio per spoken word, so a reply plays for a predictable time.
WORD_S = 0.12

WEATHER = {"temperature": 20, "conditions": "sunny"}
FORECAST_REPLY_PLAYED = "Sorry, the forecast service is down."
FORECAST_REPLY = FORECAST_REPLY_PLAYED + " Please try again in a few minutes, or ask me about today."

# Each user line, and what the LLM streams for each request of that turn: a list of tool
# calls (name, arguments) or a text. `barge_in_s`: the user speaks again this long after
# the first sentence of the reply has played.
SCRIPT = [
    {
        "user": "What's the weather in Paris?",
        "llm": [[("get_weather", {"city": "Paris"})], "It is 20 degrees and sunny in Paris."],
    },
    {
        "user": "And the forecast for London?",
        "llm": [[("get_forecast", {"city": "London"})], FORECAST_REPLY],
        "barge_in_s": 0.4,
    },
    {"user": "Okay, thanks.", "llm": ["You're welcome, goodbye."]},
]


def expected() -> dict:
    """The conversation as convolog should show it."""
    return {
        # Pipecat times STT from the end of speech, VAD_STOP_S before VAD reports it.
        "stt_ms": (VAD_STOP_S + STT_DELAY_S) * 1000,
        "llm_ttft_ms": LLM_TTFT_S * 1000,
        "tts_ttfb_ms": TTS_TTFB_S * 1000,
        "turns": [
            {
                "user_text": "What's the weather in Paris?",
                "agent_text": "It is 20 degrees and sunny in Paris.",
                "interrupted": False,
                "spoken_text": None,
                "tool_calls": [
                    {
                        "name": "get_weather",
                        "arguments": {"city": "Paris"},
                        "result": WEATHER,
                        "is_error": False,
                    }
                ],
            },
            {
                "user_text": "And the forecast for London?",
                "agent_text": FORECAST_REPLY,
                "interrupted": True,
                "spoken_text": FORECAST_REPLY_PLAYED,
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
                "agent_text": "You're welcome, goodbye.",
                "interrupted": False,
                "spoken_text": None,
                "tool_calls": [],
            },
        ],
    }


async def run(session_id: str, tracing: str) -> None:
    # Imported here: the tracer provider must be set before Pipecat creates its tracers.
    from pipecat.frames.frames import (
        BotStartedSpeakingFrame,
        EndFrame,
        Frame,
        StartFrame,
        TranscriptionFrame,
        TTSAudioRawFrame,
        VADUserStartedSpeakingFrame,
        VADUserStoppedSpeakingFrame,
    )
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.runner import PipelineRunner
    from pipecat.pipeline.task import PipelineParams, PipelineTask
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import (
        LLMContextAggregatorPair,
        LLMUserAggregatorParams,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.services.openai.llm import OpenAILLMService
    from pipecat.services.stt_service import STTService
    from pipecat.services.tts_service import TTSService
    from pipecat.transports.base_output import BaseOutputTransport
    from pipecat.transports.base_transport import TransportParams
    from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
        SpeechTimeoutUserTurnStopStrategy,
    )
    from pipecat.turns.user_turn_strategies import UserTurnStrategies
    from pipecat.turns.user_start import VADUserTurnStartStrategy
    from pipecat.utils.tracing.service_decorators import traced_stt, traced_tts
    from pipecat.adapters.schemas.function_schema import FunctionSchema
    from pipecat.adapters.schemas.tools_schema import ToolsSchema

    bot_started = asyncio.Event()
    # Set when the output has played a whole sentence of the reply (its TTSTextFrame passes).
    sentence_played = asyncio.Event()

    class ScriptedSTT(STTService):
        """Hears the next scripted line, STT_DELAY_S after the user stops speaking."""

        def __init__(self):
            super().__init__()
            self._lines = [turn["user"] for turn in SCRIPT]

        def can_generate_metrics(self) -> bool:
            return True

        async def run_stt(self, audio: bytes):
            yield None

        @traced_stt
        async def _handle_transcription(self, transcript: str, is_final: bool, language=None):
            pass

        async def process_frame(self, frame: Frame, direction: FrameDirection):
            await super().process_frame(frame, direction)
            if isinstance(frame, VADUserStoppedSpeakingFrame):
                self.create_task(self._transcribe())

        async def _transcribe(self):
            await asyncio.sleep(STT_DELAY_S)
            text = self._lines.pop(0)
            # As a provider that confirms the end of an utterance: the transcript is final.
            self.request_finalize()
            self.confirm_finalize()
            await self._handle_transcription(text, True)
            await self.push_frame(TranscriptionFrame(text, "caller", time_now_iso()))

    class ScriptedLLM(OpenAILLMService):
        """OpenAI's service with the chat completion stream scripted per request."""

        def __init__(self):
            super().__init__(api_key="offline", model="gpt-4o")
            self._responses = [response for turn in SCRIPT for response in turn["llm"]]

        async def get_chat_completions(self, context):
            response = self._responses.pop(0)
            return scripted_stream(response)

    class ScriptedTTS(TTSService):
        """Silence of WORD_S per word, its first audio TTS_TTFB_S after the text."""

        def __init__(self):
            super().__init__(sample_rate=SAMPLE_RATE, push_start_frame=True, push_stop_frames=True)

        def can_generate_metrics(self) -> bool:
            return True

        @traced_tts
        async def run_tts(self, text: str, context_id: str):
            await asyncio.sleep(TTS_TTFB_S)
            await self.start_tts_usage_metrics(text)
            samples = int(len(text.split()) * WORD_S * SAMPLE_RATE)
            chunk = SAMPLE_RATE // 50  # 20 ms
            for at in range(0, samples, chunk):
                n = min(chunk, samples - at)
                yield TTSAudioRawFrame(b"\0\0" * n, SAMPLE_RATE, 1, context_id=context_id)

    class SpeakerOutput(BaseOutputTransport):
        """Plays audio in real time to nowhere."""

        async def write_audio_frame(self, frame) -> bool:
            await asyncio.sleep(len(frame.audio) / 2 / SAMPLE_RATE)
            return True

        async def process_frame(self, frame: Frame, direction: FrameDirection):
            await super().process_frame(frame, direction)
            if isinstance(frame, StartFrame):
                await self.set_transport_ready(frame)

    class Caller(FrameProcessor):
        """Speaks the scripted lines: VAD start and stop, barging in where the script says."""

        def __init__(self):
            super().__init__()
            self._bot_speaking = asyncio.Event()
            self._bot_done = asyncio.Event()

        async def process_frame(self, frame: Frame, direction: FrameDirection):
            await super().process_frame(frame, direction)
            if isinstance(frame, StartFrame):
                await self.push_frame(frame, direction)
                self.create_task(self._converse())
                return
            await self.push_frame(frame, direction)

        async def _speak(self):
            await self.push_frame(VADUserStartedSpeakingFrame(start_secs=0.0))
            await asyncio.sleep(USER_SPEECH_S + VAD_STOP_S)
            await self.push_frame(VADUserStoppedSpeakingFrame(stop_secs=VAD_STOP_S))

        async def _converse(self):
            await asyncio.sleep(0.3)
            for turn in SCRIPT:
                bot_started.clear()
                sentence_played.clear()
                await self._speak()
                await bot_started.wait()
                if turn.get("barge_in_s"):
                    # Into the second sentence, whatever the machine's load did to playback.
                    await sentence_played.wait()
                    await asyncio.sleep(turn["barge_in_s"])
                else:
                    await wait_until_quiet()
            # The caller hangs up after the goodbye has played and Pipecat has closed the
            # turn: a turn still open when the pipeline ends is traced as interrupted.
            await asyncio.sleep(TURN_END_S)
            await task.queue_frame(EndFrame())

    quiet = {"since": time.monotonic(), "speaking": False}

    async def wait_until_quiet():
        while quiet["speaking"] or time.monotonic() - quiet["since"] < 0.5:
            await asyncio.sleep(0.05)

    class BotWatcher(FrameProcessor):
        async def process_frame(self, frame: Frame, direction: FrameDirection):
            await super().process_frame(frame, direction)
            name = type(frame).__name__
            if name == "BotStartedSpeakingFrame":
                quiet["speaking"] = True
                bot_started.set()
            elif name == "TTSTextFrame":
                sentence_played.set()
            elif name == "BotStoppedSpeakingFrame":
                quiet["speaking"] = False
                quiet["since"] = time.monotonic()
            await self.push_frame(frame, direction)

    async def get_weather(params):
        await asyncio.sleep(TOOL_S)
        await params.result_callback(WEATHER)

    async def get_forecast(params):
        await asyncio.sleep(TOOL_S)
        raise RuntimeError("forecast service unavailable")

    llm = ScriptedLLM()
    llm.register_function("get_weather", get_weather)
    llm.register_function("get_forecast", get_forecast)
    city = {"city": {"type": "string"}}
    tools = ToolsSchema(
        standard_tools=[
            FunctionSchema("get_weather", "Current weather", city, ["city"]),
            FunctionSchema("get_forecast", "Forecast", city, ["city"]),
        ]
    )
    context = LLMContext(
        [{"role": "system", "content": "You are a weather assistant."}], tools=tools
    )
    aggregators = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            user_turn_strategies=UserTurnStrategies(
                start=[VADUserTurnStartStrategy()],
                stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.05)],
            )
        ),
    )
    output = SpeakerOutput(
        TransportParams(audio_out_enabled=True, audio_out_sample_rate=SAMPLE_RATE)
    )
    pipeline = Pipeline(
        [
            Caller(),
            ScriptedSTT(),
            aggregators.user(),
            llm,
            ScriptedTTS(),
            output,
            BotWatcher(),
            aggregators.assistant(),
        ]
    )
    task = PipelineTask(
        pipeline,
        params=PipelineParams(audio_out_sample_rate=SAMPLE_RATE, enable_metrics=True),
        # OpenInference's instrumentation replaces Pipecat's own tracing.
        enable_tracing=tracing == "pipecat",
        enable_turn_tracking=True,
        conversation_id=session_id,
    )
    await PipelineRunner(handle_sigint=False).run(task)


def time_now_iso() -> str:
    from pipecat.utils.time import time_now_iso8601

    return time_now_iso8601()


async def scripted_stream(response):
    """A chat completion stream: after LLM_TTFT_S, the text word by word or the tool calls."""
    await asyncio.sleep(LLM_TTFT_S)
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o"}
    if isinstance(response, str):
        words = response.split(" ")
        for i, word in enumerate(words):
            content = word if i == 0 else " " + word
            yield ChatCompletionChunk(
                **base, choices=[{"index": 0, "delta": {"content": content}}]
            )
            await asyncio.sleep(0.01)
    else:
        for index, (name, arguments) in enumerate(response):
            yield ChatCompletionChunk(
                **base,
                choices=[
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": f"call_{name}",
                                    "type": "function",
                                    "function": {"name": name, "arguments": json.dumps(arguments)},
                                }
                            ]
                        },
                    }
                ],
            )
    yield ChatCompletionChunk(
        **base,
        choices=[],
        usage={"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
    )


class Reported(SpanExporter):
    """Keeps the figures Pipecat reported on its own spans."""

    def __init__(self):
        self.spans = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def per_turn(self, tracing: str) -> list[dict]:
        # Pipecat's names, or the OpenInference instrumentation's.
        prefix, number, latency, ttfb = {
            "pipecat": ("", "turn.number", "turn.user_bot_latency_seconds", "metrics.ttfb"),
            "openinference": (
                "pipecat.",
                "conversation.turn_number",
                "conversation.user_to_bot_latency",
                "service.ttfb_seconds",
            ),
        }[tracing]
        turn_span = "pipecat.conversation.turn" if prefix else "turn"
        turns = {}
        for span in self.spans:
            if span.name == turn_span:
                turns[span.context.span_id] = {
                    "turn_number": span.attributes.get(number),
                    "voice_to_voice_ms": ms(span.attributes.get(latency)),
                }
        for stage, key in (("stt", "stt_ms"), ("llm", "llm_ttft_ms"), ("tts", "tts_ttfb_ms")):
            for span in sorted(self.spans, key=lambda s: s.start_time):
                turn = turns.get(span.parent.span_id if span.parent else None)
                value = span.attributes.get(ttfb)
                if span.name == prefix + stage and turn is not None and key not in turn and value:
                    turn[key] = ms(value)
        return sorted(turns.values(), key=lambda t: t["turn_number"])


def ms(seconds):
    return None if seconds is None else seconds * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--session-id", required=True)
    parser.add_argument("--tracing", choices=["pipecat", "openinference"], default="pipecat")
    args = parser.parse_args()

    print(json.dumps(expected()), flush=True)

    provider = TracerProvider(resource=Resource.create({"service.name": "pipecat-e2e"}))
    exporter = OTLPSpanExporter(endpoint=args.endpoint.rstrip("/") + "/v1/traces", timeout=5)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reported = Reported()
    provider.add_span_processor(SimpleSpanProcessor(reported))
    trace.set_tracer_provider(provider)
    if args.tracing == "openinference":
        from openinference.instrumentation.pipecat import PipecatInstrumentor

        PipecatInstrumentor().instrument(tracer_provider=provider)

    asyncio.run(run(args.session_id, args.tracing))
    provider.shutdown()
    print(json.dumps({"reported": reported.per_turn(args.tracing)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
