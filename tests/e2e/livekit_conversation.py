#!/usr/bin/env python3
"""Run a real LiveKit AgentSession offline with scripted services and export its traces.

The session, the agent, function tools, the chat context, turn detection, interruption,
the transcript synchronizer and the telemetry are LiveKit's own; only the services are
scripted (fixed texts, tool calls and delays). Two modes:

- `text`: `AgentSession.run(user_input=...)`, LiveKit's own test mode, with a scripted LLM.
- `voice`: audio in and out through the session's io interfaces, no LiveKit server. A
  scripted caller drives a VAD and a streaming STT (speech start and end, the final
  transcript a fixed delay after the speech ends), the scripted LLM answers, a scripted TTS
  returns silence of a fixed length per word after a fixed delay, and a speaker plays it at
  real time and reports how far it got, from which LiveKit's transcript synchronizer takes
  the part of an interrupted reply that was heard. The caller talks over the story reply.

    livekit_conversation.py --endpoint http://127.0.0.1:4318 --session-id lk-1 --mode voice

It prints two JSON documents to stdout, one per line: before the conversation, the script
(what convolog should show); after it, what LiveKit reported per turn (stage latencies in
ms from its spans, and what it recorded as heard of each interrupted reply). Exit status 0
when the run and the export succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

LLM_TTFT_S = 0.2
TOOL_S = 0.05
# Voice mode: the caller's speech, the final transcript's delay after it ends, the silence
# the VAD needs to call the speech ended, and LiveKit's endpointing wait after it.
SPEECH_S = 0.4
STT_DELAY_S = 0.08
VAD_SILENCE_S = 0.15
ENDPOINTING_S = 0.25
TTS_TTFB_S = 0.12
AUDIO_PER_WORD_S = 0.1
SAMPLE_RATE = 16000
# The caller talks over the story once this much of it has played.
BARGE_IN_AFTER_S = 1.0

WEATHER = {"temperature": 20, "conditions": "sunny"}
CHECKING = "Let me check the weather for you."
STORY = (
    "Once upon a time a lighthouse keeper counted the ships passing his rock. "
    "Every night he wrote their names in a blue book. "
    "One winter a ship came by that had no name at all, and he followed its light until dawn."
)

# Each user line and what the LLM streams for each request it causes: a text, tool calls
# (name, arguments), or both (the text spoken before the call).
WEATHER_TURN = {
    "user": "What's the weather in Paris?",
    "llm": [(CHECKING, [("get_weather", {"city": "Paris"})]), ("It is 20 degrees and sunny in Paris.", [])],
}
FORECAST_TURN = {
    "user": "And the forecast for London?",
    "llm": [("", [("get_forecast", {"city": "London"})]), ("Sorry, the forecast service is down.", [])],
}
GOODBYE_TURN = {"user": "Okay, thanks.", "llm": [("You're welcome, goodbye.", [])]}
# The caller speaks the next turn's line while this reply plays.
STORY_TURN = {"user": "Tell me a story.", "llm": [(STORY, [])], "barged_in": True}

SCRIPTS = {
    "text": [WEATHER_TURN, FORECAST_TURN, GOODBYE_TURN],
    "voice": [WEATHER_TURN, FORECAST_TURN, STORY_TURN, GOODBYE_TURN],
}

TOOL_CALLS = {
    "get_weather": {
        "name": "get_weather",
        "arguments": {"city": "Paris"},
        # LiveKit records a tool's output as Python's str() of the value.
        "result": str(WEATHER),
        "is_error": False,
    },
    "get_forecast": {
        "name": "get_forecast",
        "arguments": {"city": "London"},
        "result": None,
        "is_error": True,
        # What LiveKit tells the LLM of an exception that is not a `ToolError`.
        "error_message": "An internal error occurred",
    },
}


def expected(mode: str) -> dict:
    turns = []
    for turn in SCRIPTS[mode]:
        turns.append(
            {
                "user_text": turn["user"],
                "replies": [text for text, _ in turn["llm"] if text],
                "interrupted": turn.get("barged_in", False),
                "tool_calls": [TOOL_CALLS[name] for _, calls in turn["llm"] for name, _ in calls],
            }
        )
    script = {"mode": mode, "llm_ttft_ms": LLM_TTFT_S * 1000, "turns": turns}
    if mode == "voice":
        script["stt_ms"] = STT_DELAY_S * 1000
        script["end_of_utterance_ms"] = ENDPOINTING_S * 1000
        script["tts_ttfb_ms"] = TTS_TTFB_S * 1000
        script["voice_to_voice_ms"] = (ENDPOINTING_S + LLM_TTFT_S + TTS_TTFB_S) * 1000
        script["providers"] = {"stt": "scripted-stt", "llm": "scripted-llm", "tts": "scripted-tts"}
    return script


def scripted_llm(responses: list):
    from livekit.agents import llm
    from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS

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
            return "scripted-llm"

        def chat(self, *, chat_ctx, tools=None, conn_options=DEFAULT_API_CONNECT_OPTIONS, **_):
            return ScriptedStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)

    return ScriptedLLM()


def weather_agent():
    from livekit.agents import Agent, function_tool

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

    return WeatherAgent()


def responses(mode: str) -> list:
    return [response for turn in SCRIPTS[mode] for response in turn["llm"]]


async def run_text() -> list[str]:
    from livekit.agents import AgentSession

    async with AgentSession(llm=scripted_llm(responses("text"))) as session:
        await session.start(weather_agent())
        for turn in SCRIPTS["text"]:
            await session.run(user_input=turn["user"])
    return []


def silence(seconds: float):
    from livekit import rtc

    samples = int(SAMPLE_RATE * seconds)
    return rtc.AudioFrame(
        data=b"\x00\x00" * samples, sample_rate=SAMPLE_RATE, num_channels=1, samples_per_channel=samples
    )


class Caller:
    """The person on the line: says each scripted line through the VAD and the STT streams
    the session opened, the way a VAD and a streaming STT report real speech."""

    def __init__(self) -> None:
        self.vad_streams: list = []
        self.stt_streams: list = []

    async def say(self, text: str) -> None:
        from livekit.agents import stt, vad

        vad_stream, stt_stream = self.vad_streams[-1], self.stt_streams[-1]
        started = time.monotonic()

        def vad_event(kind, *, speech: float, silence: float = 0.0) -> None:
            vad_stream._event_ch.send_nowait(
                vad.VADEvent(
                    type=kind,
                    samples_index=0,
                    timestamp=time.monotonic() - started,
                    speech_duration=speech,
                    silence_duration=silence,
                    speaking=kind != vad.VADEventType.END_OF_SPEECH,
                    raw_accumulated_speech=speech if kind != vad.VADEventType.END_OF_SPEECH else 0.0,
                    raw_accumulated_silence=silence,
                    probability=1.0 if kind != vad.VADEventType.END_OF_SPEECH else 0.0,
                )
            )

        vad_event(vad.VADEventType.START_OF_SPEECH, speech=0.0)
        stt_stream._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH))
        # VAD inference results while the caller talks: these are what a barge-in is measured on.
        while (spoken := time.monotonic() - started) < SPEECH_S:
            await asyncio.sleep(0.05)
            vad_event(vad.VADEventType.INFERENCE_DONE, speech=min(spoken, SPEECH_S))
        ended = started + SPEECH_S
        await asyncio.sleep(max(0.0, ended + STT_DELAY_S - time.monotonic()))
        stt_stream._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                alternatives=[stt.SpeechData(text=text, language="en")],
            )
        )
        await asyncio.sleep(max(0.0, ended + VAD_SILENCE_S - time.monotonic()))
        vad_event(vad.VADEventType.END_OF_SPEECH, speech=SPEECH_S, silence=time.monotonic() - ended)
        stt_stream._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.END_OF_SPEECH))


def scripted_vad(caller: Caller):
    from livekit.agents import vad

    class CallerVADStream(vad.VADStream):
        async def _main_task(self) -> None:
            async for _ in self._input_ch:
                pass

    class CallerVAD(vad.VAD):
        def __init__(self) -> None:
            super().__init__(capabilities=vad.VADCapabilities(update_interval=0.05))

        def stream(self):
            stream = CallerVADStream(self)
            caller.vad_streams.append(stream)
            return stream

    return CallerVAD()


def scripted_stt(caller: Caller):
    from livekit.agents import stt
    from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS

    class CallerSTTStream(stt.RecognizeStream):
        async def _run(self) -> None:
            async for _ in self._input_ch:
                pass

    class CallerSTT(stt.STT):
        def __init__(self) -> None:
            super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=False))

        @property
        def model(self) -> str:
            return "scripted-ears-1"

        @property
        def provider(self) -> str:
            return "scripted-stt"

        async def _recognize_impl(self, buffer, *, language, conn_options):
            raise NotImplementedError("the caller only speaks through the stream")

        def stream(self, *, language=None, conn_options=DEFAULT_API_CONNECT_OPTIONS):
            stream = CallerSTTStream(stt=self, conn_options=conn_options)
            caller.stt_streams.append(stream)
            return stream

    return CallerSTT()


def scripted_tts():
    """A non-streaming TTS: LiveKit feeds it a sentence at a time, and each comes back as
    silence of a fixed length per word after a fixed delay."""
    from livekit.agents import tts, utils
    from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS

    class Synthesis(tts.ChunkedStream):
        async def _run(self, output_emitter) -> None:
            output_emitter.initialize(
                request_id=utils.shortuuid("tts_"),
                sample_rate=SAMPLE_RATE,
                num_channels=1,
                mime_type="audio/pcm",
            )
            await asyncio.sleep(TTS_TTFB_S)
            words = len(self._input_text.split())
            output_emitter.push(silence(words * AUDIO_PER_WORD_S).data.tobytes())
            output_emitter.flush()

    class ScriptedTTS(tts.TTS):
        def __init__(self) -> None:
            super().__init__(
                capabilities=tts.TTSCapabilities(streaming=False), sample_rate=SAMPLE_RATE, num_channels=1
            )

        @property
        def model(self) -> str:
            return "scripted-voice-1"

        @property
        def provider(self) -> str:
            return "scripted-tts"

        def synthesize(self, text, *, conn_options=DEFAULT_API_CONNECT_OPTIONS):
            return Synthesis(tts=self, input_text=text, conn_options=conn_options)

    return ScriptedTTS()


def microphone():
    """The caller's audio: silence at real time (the scripted VAD and STT say when it is
    speech), so the session's audio pipeline runs as it does on a call."""
    from livekit.agents.voice.io import AudioInput

    class Microphone(AudioInput):
        def __init__(self) -> None:
            super().__init__(label="scripted-microphone")

        async def __anext__(self):
            await asyncio.sleep(0.02)
            return silence(0.02)

    return Microphone()


def speaker():
    """Plays the agent's audio at real time and reports how far it got, as a room does."""
    from livekit.agents.voice.io import AudioOutput, AudioOutputCapabilities

    class Speaker(AudioOutput):
        def __init__(self) -> None:
            super().__init__(
                label="scripted-speaker",
                next_in_chain=None,
                sample_rate=SAMPLE_RATE,
                capabilities=AudioOutputCapabilities(pause=False),
            )
            self.queued: asyncio.Queue = asyncio.Queue()
            # The segment being played: when its first frame started, and how much audio it
            # has (0 when there is none).
            self.started_at: float | None = None
            self.captured_s = 0.0
            self.player = asyncio.get_running_loop().create_task(self.play())

        async def capture_frame(self, frame) -> None:
            await super().capture_frame(frame)
            self.captured_s += frame.duration
            self.queued.put_nowait(frame)

        def flush(self) -> None:
            super().flush()
            self.queued.put_nowait(None)

        def clear_buffer(self) -> None:
            while not self.queued.empty():
                self.queued.get_nowait()
            self.player.cancel()
            self.finish(interrupted=True)
            self.player = asyncio.get_running_loop().create_task(self.play())

        def finish(self, *, interrupted: bool) -> None:
            if not self.captured_s:
                return
            played = 0.0 if self.started_at is None else time.time() - self.started_at
            self.on_playback_finished(
                playback_position=min(played, self.captured_s),
                interrupted=interrupted,
                synchronized_transcript=None,
            )
            self.started_at = None
            self.captured_s = 0.0

        async def play(self) -> None:
            while True:
                frame = await self.queued.get()
                if frame is None:
                    self.finish(interrupted=False)
                    continue
                if self.started_at is None:
                    self.started_at = time.time()
                    self.on_playback_started(created_at=self.started_at)
                await asyncio.sleep(frame.duration)

    return Speaker()


async def run_voice() -> list[str]:
    """Runs the voice script; returns what LiveKit recorded as heard of each interrupted reply."""
    from livekit.agents import AgentSession
    from livekit.agents.voice.transcription.synchronizer import TranscriptSynchronizer

    caller = Caller()
    session = AgentSession(
        vad=scripted_vad(caller),
        stt=scripted_stt(caller),
        llm=scripted_llm(responses("voice")),
        tts=scripted_tts(),
        turn_handling={
            "turn_detection": "vad",
            "endpointing": {"min_delay": ENDPOINTING_S, "max_delay": 3.0},
            "interruption": {
                "mode": "vad",
                "min_duration": SPEECH_S / 2,
                "resume_false_interruption": False,
                "false_interruption_timeout": None,
            },
            "preemptive_generation": {"enabled": False},
        },
        # The caller has said everything when the session closes: no transcript to wait for.
        session_close_transcript_timeout=0.1,
    )
    states: asyncio.Queue = asyncio.Queue()
    session.on("agent_state_changed", lambda ev: states.put_nowait(ev.new_state))
    playing: asyncio.Queue = asyncio.Queue()

    output = speaker()
    output.on("playback_started", lambda ev: playing.put_nowait(ev))
    synchronizer = TranscriptSynchronizer(next_in_chain_audio=output, next_in_chain_text=None)
    session.input.audio = microphone()
    session.output.audio = synchronizer.audio_output
    session.output.transcription = synchronizer.text_output

    async def until(state: str) -> None:
        while await states.get() != state:
            pass

    await session.start(weather_agent())
    await until("listening")
    for turn in SCRIPTS["voice"]:
        while not states.empty():
            states.get_nowait()
        await caller.say(turn["user"])
        await until("speaking")
        if turn.get("barged_in", False):
            # The caller talks over this reply (the next line) once part of it has played.
            await playing.get()
            await asyncio.sleep(BARGE_IN_AFTER_S)
        else:
            # The reply (and any after a tool) is over when the agent listens again.
            await until("listening")
        while not playing.empty():
            playing.get_nowait()
    await session.aclose()
    await synchronizer.aclose()
    return [
        item.text_content
        for item in session.history.items
        if item.type == "message" and item.role == "assistant" and item.interrupted
    ]


class Reported(SpanExporter):
    """Keeps what LiveKit reported on its own spans."""

    def __init__(self):
        self.spans = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def per_turn(self) -> list[dict]:
        """Each `agent_turn` that answers a user, in order: the TTFT of its first generation,
        the TTFB of its first speech, the time from the end of the user's speech to the
        agent's, and the user turn's figures before it."""
        spans = sorted(self.spans, key=lambda s: s.start_time)
        reported = []
        for turn in (span for span in spans if span.name == "agent_turn"):
            below = [
                span for span in spans if span.parent and span.parent.span_id == turn.context.span_id
            ]
            llm = next((span for span in below if span.name == "llm_node"), None)
            if llm is None:
                continue
            figures = {"llm_ttft_ms": ms(llm, "lk.response.ttft")}
            tts = next((span for span in below if span.name == "tts_node"), None)
            if tts is not None:
                figures["tts_ttfb_ms"] = ms(tts, "lk.response.ttfb")
            if "lk.e2e_latency" in turn.attributes:
                figures["voice_to_voice_ms"] = ms(turn, "lk.e2e_latency")
            user = [
                span for span in spans if span.name == "user_turn" and span.start_time < turn.start_time
            ]
            if user and "lk.end_of_turn_delay" in user[-1].attributes:
                figures["end_of_utterance_ms"] = ms(user[-1], "lk.end_of_turn_delay")
                figures["stt_ms"] = ms(user[-1], "lk.transcription_delay")
            reported.append(figures)
        return reported


def ms(span, key: str):
    value = span.attributes.get(key)
    return None if value is None else value * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--session-id", required=True)
    parser.add_argument("--mode", choices=sorted(SCRIPTS), default="text")
    args = parser.parse_args()

    print(json.dumps(expected(args.mode)), flush=True)

    from livekit.agents.telemetry import set_tracer_provider

    provider = TracerProvider(
        resource=Resource.create({"service.name": "livekit-e2e", "session.id": args.session_id})
    )
    exporter = OTLPSpanExporter(endpoint=args.endpoint.rstrip("/") + "/v1/traces", timeout=5)
    # Exported from a background thread, as in production: a synchronous export on each
    # span's end would stall the event loop in the middle of LiveKit's own timing (the end
    # of the user's speech is stamped after its `user_speaking` span ends).
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    reported = Reported()
    provider.add_span_processor(SimpleSpanProcessor(reported))
    set_tracer_provider(provider, allow_pii=True)

    heard = asyncio.run(run_voice() if args.mode == "voice" else run_text())
    provider.shutdown()
    print(json.dumps({"reported": reported.per_turn(), "heard": heard}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
