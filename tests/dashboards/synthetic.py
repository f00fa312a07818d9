"""Synthetic conversations for developing the dashboards without `convolog-simulate`.

`pytest --seed-synthetic` creates a fresh database, applies the migrations and writes what the
sessionizer would write for a few voice conversations: raw spans (some sent twice, as OTLP
retries do), sessions at more than one revision, one deleted session, and the turns, messages,
tool calls and interruptions of each session's current revision. The numbers are plausible,
not measured; the point is that every panel has rows of the right shape to read.
"""

import json
import random

FRAMEWORKS = [
    # framework, scope name, service, agent, which latencies the framework reports
    ("pipecat", "pipecat.turn", "support-voice", "support", {"stt", "llm_ttft", "tts_ttfb", "voice_to_voice"}),
    ("livekit", "livekit-agents", "booking-voice", "booking", {"end_of_utterance", "llm_ttft", "tts_ttfb", "voice_to_voice"}),
]
LLMS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-haiku"), ("groq", "llama-3.1-8b-instant")]
STTS = [("deepgram", "nova-3"), ("assemblyai", "universal-streaming")]
TTSS = [("cartesia", "sonic-english"), ("elevenlabs", "rachel")]
TOOLS = ["lookup_order", "check_availability", "book_appointment", "transfer_to_human"]
USER_LINES = [
    "Hi, I'd like to check on my order",
    "It's order 4471, placed last Tuesday",
    "Can I book a table for two tomorrow at 7?",
    "Actually, make that eight people",
    "What's the weather going to be like?",
    "No wait, I said \"Thursday\", not Tuesday",
    "Can I talk to a person please",
    "My account is ACME\\42, with a backslash",
    "Thanks, that's all",
]
AGENT_LINES = [
    "Sure, let me look that up for you.",
    "Your order shipped yesterday and should arrive on Friday.",
    "I have a table for two at 7 pm tomorrow. Shall I book it?",
    "Done, you're booked. Anything else?",
    "I'm sorry, I didn't catch that. Could you repeat it?",
    "Let me transfer you to a colleague.",
]


def _hex(rng, nbytes):
    return "".join(f"{rng.randrange(256):02x}" for _ in range(nbytes))


def _nested(attributes):
    return [str(k) for k in attributes], [str(v) for v in attributes.values()]


class _Writer:
    def __init__(self):
        self.rows = {name: [] for name in ["spans", "sessions", "turns", "messages", "tool_calls", "interruptions"]}

    def span(self, rng, *, trace_id, parent, name, start_ns, duration_ns, service, scope, attributes,
             status="UNSET", message="", events=(), kind="INTERNAL", resend=False):
        span_id = _hex(rng, 8)
        keys, values = _nested(attributes)
        resource_keys, resource_values = _nested({"service.name": service, "deployment.environment": "synthetic"})
        row = {
            "trace_id": trace_id,
            "span_id": span_id,
            "parent_span_id": parent,
            "trace_state": "",
            "flags": 1,
            "name": name,
            "kind": kind,
            "start_time": start_ns // 1_000_000_000,
            "start_time_unix_nano": start_ns,
            "end_time_unix_nano": start_ns + duration_ns,
            "duration_ns": duration_ns,
            "status_code": status,
            "status_message": message,
            "service_name": service,
            "scope_name": scope,
            "scope_version": "1.0.0",
            "attributes.key": keys,
            "attributes.value": values,
            "resource_attributes.key": resource_keys,
            "resource_attributes.value": resource_values,
            "events.time_unix_nano": [e[0] for e in events],
            "events.name": [e[1] for e in events],
            "events.attributes": [json.dumps(e[2]) for e in events],
            "links.trace_id": [],
            "links.span_id": [],
            "links.attributes": [],
            "dropped_attributes_count": 0,
            "dropped_events_count": 0,
            "dropped_links_count": 0,
            "ingested_at_unix_nano": start_ns + duration_ns + 1_000_000_000,
        }
        self.rows["spans"].append(row)
        if resend:
            self.rows["spans"].append(dict(row, ingested_at_unix_nano=row["ingested_at_unix_nano"] + 5_000_000_000))
        return span_id


def _latency(rng, low, high):
    return round(rng.uniform(low, high) * (1 + rng.random() ** 6 * 2), 1)


def _session(writer, rng, index, start_s):
    framework, scope, service, agent, reported = FRAMEWORKS[index % len(FRAMEWORKS)]
    session_id = f"conv-{index:03d}-{_hex(rng, 4)}"
    environment = "production" if index % 4 else "staging"
    channel = ["phone", "web", "phone", "sip"][index % 4]
    llm_provider, llm_model = LLMS[index % len(LLMS)]
    stt_provider, stt_model = STTS[index % len(STTS)]
    tts_provider, tts_voice = TTSS[(index // 2) % len(TTSS)]
    turn_total = 3 + rng.randrange(6)
    trace_ids = [_hex(rng, 16)]
    if framework == "pipecat" and index % 3 == 0:
        trace_ids.append(_hex(rng, 16))  # a conversation continued in a second trace

    start_ns = start_s * 1_000_000_000
    root = writer.span(rng, trace_id=trace_ids[0], parent="", name="conversation", start_ns=start_ns,
                       duration_ns=0, service=service, scope=scope,
                       attributes={"conversation.id": session_id, "conversation.type": "voice"}, kind="SERVER")
    turns, messages, tools, interruptions = [], [], [], []
    now_ns = start_ns + 500_000_000
    totals = dict(error_spans=0, input_tokens=0, output_tokens=0, spans=1)
    for number in range(1, turn_total + 1):
        trace_id = trace_ids[-1] if number > turn_total // 2 else trace_ids[0]
        parent = root if trace_id == trace_ids[0] else ""
        turn_start = now_ns
        eou = _latency(rng, 180, 700)
        stt = _latency(rng, 120, 450)
        ttft = _latency(rng, 220, 900) * (1.6 if llm_model == "claude-3-5-haiku" else 1.0)
        ttfb = _latency(rng, 90, 380)
        calls_tool = rng.random() < 0.35
        tool_ms = _latency(rng, 80, 1200) if calls_tool else None
        v2v = round(eou + stt + ttft + ttfb + (tool_ms or 0) + rng.uniform(40, 160), 1)
        interrupted = rng.random() < (0.12 + 0.04 * number)
        llm_error = rng.random() < 0.06
        tts_error = rng.random() < 0.04
        turn_ns = int((v2v + 2500 + rng.uniform(0, 4000)) * 1_000_000)
        turn_span = writer.span(rng, trace_id=trace_id, parent=parent, name="turn", start_ns=turn_start,
                                duration_ns=turn_ns, service=service, scope=scope,
                                attributes={"turn.number": number, "conversation.id": session_id,
                                            "turn.was_interrupted": str(interrupted).lower(),
                                            "turn.user_bot_latency_seconds": v2v / 1000},
                                resend=number == 1)
        cursor = turn_start
        stage_spans = [
            ("stt", int(stt * 1e6), {"gen_ai.operation.name": "stt", "gen_ai.provider.name": stt_provider,
                                     "gen_ai.request.model": stt_model, "metrics.ttfb": stt / 1000}, False),
            (f"chat {llm_model}", int((ttft + 400) * 1e6),
             {"gen_ai.operation.name": "chat", "gen_ai.provider.name": llm_provider,
              "gen_ai.request.model": llm_model, "gen_ai.usage.input_tokens": 800 + number * 120,
              "input": json.dumps([{"role": "user", "content": USER_LINES[(index + number) % len(USER_LINES)]}]),
              "output": AGENT_LINES[(index * 3 + number) % len(AGENT_LINES)] + "\n\t(end)",
              "gen_ai.usage.output_tokens": 40 + rng.randrange(80), "metrics.ttfb": ttft / 1000}, llm_error),
            ("tts", int((ttfb + 900) * 1e6), {"gen_ai.operation.name": "tts", "gen_ai.provider.name": tts_provider,
                                              "voice_id": tts_voice, "metrics.ttfb": ttfb / 1000}, tts_error),
        ]
        for name, duration, attributes, failed in stage_spans:
            events = [(cursor + duration, "exception", {"exception.type": "TimeoutError",
                                                        "exception.message": "upstream timed out after 10s"})] if failed else []
            writer.span(rng, trace_id=trace_id, parent=turn_span, name=name, start_ns=cursor, duration_ns=duration,
                        service=service, scope=scope, attributes=attributes, kind="CLIENT",
                        status="ERROR" if failed else "OK", message="upstream timed out" if failed else "",
                        events=events)
            totals["spans"] += 1
            totals["error_spans"] += int(failed)
            cursor += duration
        tool_count = tool_errors = 0
        if calls_tool:
            tool = TOOLS[(index + number) % len(TOOLS)]
            failed = rng.random() < 0.25
            writer.span(rng, trace_id=trace_id, parent=turn_span, name=f"execute_tool {tool}", start_ns=cursor,
                        duration_ns=int(tool_ms * 1e6), service=service, scope=scope,
                        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool},
                        status="ERROR" if failed else "OK")
            totals["spans"] += 1
            totals["error_spans"] += int(failed)
            tools.append({
                "session_id": session_id, "call_index": len(tools), "turn_number": number,
                "start_time": cursor // 1_000_000_000, "start_time_unix_nano": cursor, "duration_ms": tool_ms,
                "name": tool, "call_id": f"call_{_hex(rng, 6)}", "arguments": json.dumps({"order_id": 4471}),
                "result": "" if failed else json.dumps({"status": "ok"}), "is_error": int(failed),
                "error_message": "service unavailable (503)" if failed else "", "trace_id": trace_id, "span_id": "",
            })
            tool_count, tool_errors = 1, int(failed)
        totals["spans"] += 1
        input_tokens, output_tokens = 800 + number * 120, 40 + rng.randrange(80)
        totals["input_tokens"] += input_tokens
        totals["output_tokens"] += output_tokens
        user_text = USER_LINES[(index + number) % len(USER_LINES)]
        agent_text = AGENT_LINES[(index * 3 + number) % len(AGENT_LINES)]
        spoken = agent_text[: len(agent_text) // 2] if interrupted else None

        def value(stage, ms):
            # *_source is "reported:<attribute>" or "derived:<method>", as the sessionizer writes it.
            if stage in reported:
                return ms, "reported:metrics.ttfb"
            return (ms, "derived:span_timing") if rng.random() < 0.7 else (None, "")

        eou_v, eou_s = value("end_of_utterance", eou)
        stt_v, stt_s = value("stt", stt)
        ttft_v, ttft_s = value("llm_ttft", round(ttft, 1))
        ttfb_v, ttfb_s = value("tts_ttfb", ttfb)
        turns.append({
            "session_id": session_id, "turn_number": number, "trace_id": trace_id, "span_id": turn_span,
            "start_time": turn_start // 1_000_000_000, "start_time_unix_nano": turn_start,
            "end_time_unix_nano": turn_start + turn_ns, "framework": framework, "user_text": user_text,
            "agent_text": agent_text, "agent_spoken_text": spoken, "interrupted": int(interrupted),
            "llm_provider": llm_provider, "llm_model": llm_model, "stt_provider": stt_provider,
            "stt_model": stt_model, "tts_provider": tts_provider, "tts_voice": tts_voice,
            "end_of_utterance_ms": eou_v, "end_of_utterance_source": eou_s, "stt_ms": stt_v, "stt_source": stt_s,
            "llm_ttft_ms": ttft_v, "llm_ttft_source": ttft_s, "tts_ttfb_ms": ttfb_v, "tts_ttfb_source": ttfb_s,
            "tool_ms": tool_ms, "tool_source": "derived:tool_span" if calls_tool else "",
            "voice_to_voice_ms": v2v,
            "voice_to_voice_source": "reported:turn.user_bot_latency_seconds" if "voice_to_voice" in reported
            else "derived:speech_end_to_first_audio",
            "input_tokens": input_tokens, "output_tokens": output_tokens, "tool_call_count": tool_count,
            "tool_error_count": tool_errors, "error_count": int(llm_error) + int(tts_error) + tool_errors,
        })
        base = {"session_id": session_id, "turn_number": number, "trace_id": trace_id, "span_id": turn_span}
        messages.append(dict(base, time=turn_start // 1_000_000_000, time_unix_nano=turn_start, speaker="user",
                             text=user_text, interrupted=0, spoken_text=None, tool_name=""))
        if calls_tool:
            messages.append(dict(base, time=cursor // 1_000_000_000, time_unix_nano=cursor, speaker="tool",
                                 text=tools[-1]["result"] or tools[-1]["error_message"], interrupted=0,
                                 spoken_text=None, tool_name=tools[-1]["name"]))
        reply_ns = turn_start + int(v2v * 1e6)
        messages.append(dict(base, time=reply_ns // 1_000_000_000, time_unix_nano=reply_ns, speaker="agent",
                             text=agent_text, interrupted=int(interrupted), spoken_text=spoken, tool_name=""))
        if interrupted:
            at = reply_ns + 800_000_000
            interruptions.append({
                "session_id": session_id, "interruption_index": len(interruptions), "turn_number": number,
                "time": at // 1_000_000_000, "time_unix_nano": at, "agent_text": agent_text, "spoken_text": spoken,
                "signal": "turn.was_interrupted" if framework == "pipecat" else "lk.interrupted",
                "trace_id": trace_id, "span_id": turn_span,
            })
        now_ns = turn_start + turn_ns + int(rng.uniform(0.3, 2.0) * 1e9)

    for span in writer.rows["spans"]:
        if span["span_id"] == root:  # the conversation span lasts as long as the session
            span["end_time_unix_nano"] = now_ns
            span["duration_ns"] = now_ns - start_ns
            span["ingested_at_unix_nano"] = now_ns + 1_000_000_000
    for i, message in enumerate(messages):
        message["message_index"] = i
    v2vs = sorted(t["voice_to_voice_ms"] for t in turns)
    ttfts = sorted(t["llm_ttft_ms"] for t in turns if t["llm_ttft_ms"] is not None)
    session = {
        "session_id": session_id, "deleted": 0, "start_time": start_s, "start_time_unix_nano": start_ns,
        "end_time_unix_nano": now_ns, "duration_ms": (now_ns - start_ns) / 1e6, "trace_ids": trace_ids,
        "framework": framework, "service_name": service, "agent_name": agent, "environment": environment,
        "channel": channel, "direction": "inbound" if index % 5 else "outbound", "preview": turns[0]["user_text"],
        "turn_count": len(turns), "message_count": len(messages), "interruption_count": len(interruptions),
        "tool_call_count": len(tools), "tool_error_count": sum(t["is_error"] for t in tools),
        "span_count": totals["spans"], "error_span_count": totals["error_spans"],
        "input_tokens": totals["input_tokens"], "output_tokens": totals["output_tokens"], "models": [llm_model],
        "voice_to_voice_p50_ms": v2vs[len(v2vs) // 2], "voice_to_voice_p95_ms": v2vs[-1],
        "llm_ttft_p50_ms": ttfts[len(ttfts) // 2] if ttfts else None, "updated_at": now_ns // 1_000_000_000 + 5,
    }
    session.update(_semantics(rng, index, session, tools, now_ns))
    return session, turns, messages, tools, interruptions


OUTCOMES = ["Success", "Success", "Success", "Handoff", "To Agent", "Skill Error", "Rate Limited", "None"]
ISSUES = ["slow_turn", "tool_error", "frequent_interruptions", "long_silence"]
INTENTS = ["order_status", "booking", "billing", ""]


def _semantics(rng, index, session, tools, end_ns):
    """The session-semantics columns (migration 0003), as the sessionizer stores them: the
    sessions_current view finishes state and outcome from them. Every fourth session is still
    going (ACTIVE, expiring an hour after its last span), the others have ended."""
    ended = index % 4 != 0
    voice = session["channel"] == "voice"
    outcome = OUTCOMES[index % len(OUTCOMES)]
    handed_off = outcome in ("Handoff", "To Agent")
    llm, stt, tts = round(rng.uniform(0.001, 0.02), 6), round(rng.uniform(0, 0.01), 6), round(rng.uniform(0, 0.01), 6)
    return {
        "derived_state": "RESOLVED" if ended else "ACTIVE",
        "ended": int(ended),
        "last_activity_unix_nano": end_ns,
        "expires_at": end_ns // 1_000_000_000 + 3600,
        "ended_outcome": outcome,
        "outcome_explicit": 0,
        "derived_call_status": ("Completed" if ended else "Active") if voice else "",
        "derived_ended_reason": ("transfer" if handed_off else "user_hangup") if voice and ended else "",
        "intent": INTENTS[index % len(INTENTS)],
        "skills": sorted({t["name"] for t in tools}),
        "agents": [session["agent_name"]] + (["human-desk"] if handed_off else []),
        "detected_issues": sorted({ISSUES[index % len(ISSUES)], ISSUES[index % 3]}) if index % 2 else [],
        "cost_usd": llm + stt + tts, "llm_cost_usd": llm, "stt_cost_usd": stt, "tts_cost_usd": tts,
        "user_name": f"user-{index % 7}",
        "feedback": ["", "positive", "negative"][index % 3],
    }


def seed(server, sessions=30, seed=7, end_s=None):
    """Writes `sessions` synthetic conversations ending before `end_s` (unix seconds)."""
    import time

    rng = random.Random(seed)
    end_s = int(end_s or time.time()) // 60 * 60
    first_s = end_s - 6 * 3600
    writer = _Writer()
    for index in range(sessions):
        start_s = first_s + int((index + rng.random()) * (5.5 * 3600) / sessions)
        session, turns, messages, tools, interruptions = _session(writer, rng, index, start_s)
        revisions = [1, 2] if index % 3 == 0 else [1]
        for revision in revisions:
            final = revision == revisions[-1]
            keep = len(turns) if final else max(1, len(turns) - 2)  # an earlier, shorter pass
            writer.rows["sessions"].append(dict(session, revision=revision, turn_count=keep))
            for table, rows in (("turns", turns), ("messages", messages), ("tool_calls", tools),
                                ("interruptions", interruptions)):
                for row in rows:
                    if row["turn_number"] <= keep:
                        writer.rows[table].append(dict(row, revision=revision))
        if index == sessions - 1:
            # A session the sessionizer later folded into another one: deleted at a new revision.
            writer.rows["sessions"].append(dict(session, revision=revisions[-1] + 1, deleted=1))
    for table, rows in writer.rows.items():
        body = "\n".join(json.dumps(row) for row in rows)
        server.insert(table, "JSONEachRow", body)
    return {table: len(rows) for table, rows in writer.rows.items()}
