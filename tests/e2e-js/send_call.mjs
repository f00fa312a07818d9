// Sends one voice call traced with the OpenTelemetry GenAI conventions only, with the real
// OpenTelemetry JS SDK over OTLP/HTTP (JSON): one `invoke_agent` span for the whole call with
// `speech_to_text`, `chat`, `execute_tool` and `text_to_speech` spans under it, and no
// per-turn span. Prints the script it sent as JSON, then exits once the export is done.
//
//   node send_call.mjs --endpoint http://127.0.0.1:4318 --session-id js-1

import { context, trace, SpanStatusCode } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";

function argument(name) {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0 || at + 1 >= process.argv.length) {
    throw new Error(`--${name} is required`);
  }
  return process.argv[at + 1];
}

const endpoint = argument("endpoint").replace(/\/$/, "");
const sessionId = argument("session-id");

const turns = [
  {
    user: "What's the weather in Paris?",
    agent: "It is 18 degrees and sunny in Paris.",
    tool: { name: "get_weather", id: "call_1", arguments: { city: "Paris" }, result: "18C sunny" },
  },
  { user: "Do I need an umbrella?", agent: "No, no rain is expected today." },
  { user: "Great, thanks!", agent: "You're welcome, goodbye!", ttsError: "synthesis timed out" },
];

const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": "voice-agent-js" }),
  spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` }))],
});
const tracer = provider.getTracer("voice-agent", "1.0.0");

const text = (role, content) => ({ role, parts: [{ type: "text", content }] });
const messages = (list) => JSON.stringify(list);

// The call happened over the last minute: 5 s per turn, timestamps in milliseconds.
const start = Date.now() - 60_000;
const at = (ms) => start + ms;

const root = tracer.startSpan(
  "invoke_agent voice-agent",
  {
    startTime: at(0),
    attributes: {
      "gen_ai.operation.name": "invoke_agent",
      "gen_ai.agent.name": "voice-agent",
      "gen_ai.conversation.id": sessionId,
    },
  },
  context.active(),
);
const inCall = trace.setSpan(context.active(), root);

function operation(name, operationName, from, to, attributes, error) {
  const span = tracer.startSpan(
    name,
    {
      startTime: at(from),
      attributes: {
        "gen_ai.operation.name": operationName,
        "gen_ai.conversation.id": sessionId,
        "gen_ai.provider.name": "openai",
        ...attributes,
      },
    },
    inCall,
  );
  if (error) {
    span.setAttribute("error.type", "TimeoutError");
    span.setStatus({ code: SpanStatusCode.ERROR, message: error });
  }
  span.end(at(to));
}

const history = [text("system", "You are a voice assistant.")];
turns.forEach((turn, n) => {
  const t = n * 5000;
  operation("speech_to_text whisper-1", "speech_to_text", t, t + 1200, {
    "gen_ai.request.model": "whisper-1",
    "gen_ai.output.messages": messages([text("user", turn.user)]),
  });
  history.push(text("user", turn.user));
  let answerAt = t + 1300;
  if (turn.tool) {
    const asks = {
      role: "assistant",
      parts: [{ type: "tool_call", id: turn.tool.id, name: turn.tool.name, arguments: turn.tool.arguments }],
    };
    operation("chat gpt-4o-mini", "chat", t + 1300, t + 1800, {
      "gen_ai.request.model": "gpt-4o-mini",
      "gen_ai.input.messages": messages(history),
      "gen_ai.output.messages": messages([asks]),
      "gen_ai.usage.input_tokens": 120,
      "gen_ai.usage.output_tokens": 12,
    });
    operation(`execute_tool ${turn.tool.name}`, "execute_tool", t + 1800, t + 2100, {
      "gen_ai.tool.name": turn.tool.name,
      "gen_ai.tool.call.id": turn.tool.id,
      "gen_ai.tool.call.arguments": JSON.stringify(turn.tool.arguments),
      "gen_ai.tool.call.result": turn.tool.result,
    });
    history.push(asks, {
      role: "tool",
      parts: [{ type: "tool_call_response", id: turn.tool.id, response: turn.tool.result }],
    });
    answerAt = t + 2100;
  }
  operation("chat gpt-4o-mini", "chat", answerAt, answerAt + 500, {
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.input.messages": messages(history),
    "gen_ai.output.messages": messages([text("assistant", turn.agent)]),
    "gen_ai.response.time_to_first_chunk": 0.3,
  });
  history.push(text("assistant", turn.agent));
  operation(
    "text_to_speech tts-1",
    "text_to_speech",
    answerAt + 500,
    answerAt + 1700,
    {
      "gen_ai.request.model": "tts-1",
      "gen_ai.speech.voice": "alloy",
      "gen_ai.input.messages": messages([text("assistant", turn.agent)]),
    },
    turn.ttsError,
  );
});
root.end(at(turns.length * 5000));

await provider.forceFlush();
await provider.shutdown();
process.stdout.write(JSON.stringify({ session_id: sessionId, turns }) + "\n");
