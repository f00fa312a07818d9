//! Pipecat conversations whose tool calls and played replies are only in the LLM context.

use serde_json::{json, Value};

use crate::conventions::fixtures::{span, MS, T0};
use crate::model::conversation::DerivedSession;
use crate::model::Span;
use crate::sessionize::{sessionize, Rules};

const SYSTEM: &str = "You are a weather assistant.";
const FORECAST_REPLY: &str =
    "Sorry, the forecast service is down right now, please try again in a few minutes.";
const FORECAST_PLAYED: &str = "Sorry, the forecast service is down";

fn system() -> Value {
    json!({"role": "system", "content": SYSTEM})
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn assistant(text: &str) -> Value {
    json!({"role": "assistant", "content": text})
}

/// The assistant message Pipecat adds when the LLM asks for a function.
fn asks(id: &str, name: &str, arguments: &str) -> Value {
    json!({"role": "assistant", "tool_calls": [
        {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}
    ]})
}

/// The tool message Pipecat adds: the function's return value as JSON text.
fn answers(id: &str, content: &str) -> Value {
    json!({"role": "tool", "content": content, "tool_call_id": id})
}

fn turn(id: u8, number: &str, at: (u64, u64), interrupted: bool) -> Span {
    span("turn")
        .scope("pipecat.turn")
        .id(id)
        .parent(1)
        .at(at.0, at.1)
        .attr("turn.number", number)
        .attr("conversation.id", "conv-ctx")
        .attr(
            "turn.was_interrupted",
            if interrupted { "true" } else { "false" },
        )
        .build()
}

fn stt(id: u8, parent: u8, at: (u64, u64), transcript: &str) -> Span {
    span("stt")
        .scope("pipecat")
        .id(id)
        .parent(parent)
        .at(at.0, at.1)
        .attr("gen_ai.operation.name", "stt")
        .attr("transcript", transcript)
        .build()
}

/// An `llm` span as Pipecat writes it: `input` the context, `output` only when it spoke.
fn llm(id: u8, parent: u8, at: (u64, u64), input: &[Value], output: Option<&str>) -> Span {
    let mut builder = span("llm")
        .scope("pipecat")
        .id(id)
        .parent(parent)
        .at(at.0, at.1)
        .attr("gen_ai.operation.name", "chat")
        .attr("input", &Value::Array(input.to_vec()).to_string());
    if let Some(output) = output {
        builder = builder.attr("output", output);
    }
    builder.build()
}

fn tts(id: u8, parent: u8, at: (u64, u64), text: &str, interrupted: bool) -> Span {
    span("tts")
        .scope("pipecat")
        .id(id)
        .parent(parent)
        .at(at.0, at.1)
        .attr("gen_ai.operation.name", "tts")
        .attr("text", text)
        .attr(
            "tts.interrupted",
            if interrupted { "true" } else { "false" },
        )
        .build()
}

/// Three turns: a tool call, a failing tool call whose reply is cut off by the caller, and a
/// last exchange whose context repeats both calls and holds the reply as played.
fn conversation() -> Vec<Span> {
    let weather = r#"{"city": "Paris"}"#;
    let forecast = r#"{"city": "London"}"#;
    let turn_one = [
        system(),
        user("What's the weather in Paris?"),
        asks("call_1", "get_weather", weather),
        answers("call_1", r#"{"temperature": 20, "conditions": "sunny"}"#),
        assistant("It is 20 degrees and sunny in Paris."),
    ];
    let mut turn_two: Vec<Value> = turn_one.to_vec();
    turn_two.push(user("And the forecast for London?"));
    let turn_two_asked = turn_two.clone();
    turn_two.push(asks("call_2", "get_forecast", forecast));
    turn_two.push(answers(
        "call_2",
        r#"{"error": "forecast service unavailable"}"#,
    ));
    let turn_two_reply_context = turn_two.clone();
    turn_two.push(assistant(FORECAST_PLAYED));
    turn_two.push(user("Okay, thanks."));
    vec![
        span("conversation")
            .scope("pipecat.turn")
            .id(1)
            .at(0, 14_000)
            .attr("conversation.id", "conv-ctx")
            .attr("conversation.type", "voice")
            .build(),
        turn(2, "1", (0, 6000), false),
        stt(3, 2, (0, 900), "What's the weather in Paris?"),
        llm(4, 2, (1000, 1500), &turn_one[..2], None),
        llm(
            5,
            2,
            (2300, 2900),
            &turn_one[..4],
            Some("It is 20 degrees and sunny in Paris."),
        ),
        tts(
            6,
            2,
            (2950, 3500),
            "It is 20 degrees and sunny in Paris.",
            false,
        ),
        turn(10, "2", (6000, 10_000), true),
        stt(11, 10, (6000, 6800), "And the forecast for London?"),
        llm(12, 10, (7000, 7400), &turn_two_asked, None),
        llm(
            13,
            10,
            (7900, 8300),
            &turn_two_reply_context,
            Some(FORECAST_REPLY),
        ),
        tts(14, 10, (8350, 8900), FORECAST_REPLY, true),
        turn(20, "3", (10_500, 14_000), false),
        stt(21, 20, (10_500, 11_000), "Okay, thanks."),
        llm(22, 20, (11_100, 11_500), &turn_two, Some("You're welcome!")),
        tts(23, 20, (11_550, 12_000), "You're welcome!", false),
    ]
}

fn derive(spans: &[Span]) -> DerivedSession {
    sessionize("s", spans, 1, 0, &Rules::default())
}

#[test]
fn tool_calls_come_from_the_next_llm_context_once_each() {
    let derived = derive(&conversation());
    let calls = &derived.tool_calls;
    assert_eq!(calls.len(), 2, "{calls:#?}");

    let weather = &calls[0];
    assert_eq!(
        (
            weather.turn_number,
            weather.name.as_str(),
            weather.call_id.as_str()
        ),
        (1, "get_weather", "call_1")
    );
    assert_eq!(weather.arguments, r#"{"city": "Paris"}"#);
    assert_eq!(
        weather.result,
        r#"{"temperature": 20, "conditions": "sunny"}"#
    );
    assert_eq!(weather.is_error, 0);
    // From the end of the asking `llm` span (1500 ms) to the start of the next (2300 ms).
    assert_eq!(weather.start_time_unix_nano, T0 + 1500 * MS);
    assert_eq!(weather.duration_ms, 800.0);
    assert_eq!(weather.span_id, "0000000000000004");

    let forecast = &calls[1];
    assert_eq!(
        (forecast.turn_number, forecast.name.as_str()),
        (2, "get_forecast")
    );
    assert_eq!(forecast.is_error, 1);
    assert_eq!(forecast.error_message, "forecast service unavailable");
    assert_eq!(forecast.duration_ms, 500.0);

    let counts: Vec<(u32, u32)> = derived
        .turns
        .iter()
        .map(|t| (t.tool_call_count, t.tool_error_count))
        .collect();
    assert_eq!(counts, [(1, 0), (1, 1), (0, 0)]);
    assert_eq!(derived.turns[0].tool_ms, Some(800.0));
    assert_eq!(
        (
            derived.session.tool_call_count,
            derived.session.tool_error_count
        ),
        (2, 1)
    );
    let tool_messages: Vec<(&str, &str)> = derived
        .messages
        .iter()
        .filter(|m| m.speaker == "tool")
        .map(|m| (m.tool_name.as_str(), m.text.as_str()))
        .collect();
    assert_eq!(
        tool_messages,
        [
            (
                "get_weather",
                r#"{"temperature": 20, "conditions": "sunny"}"#
            ),
            ("get_forecast", "error: forecast service unavailable"),
        ]
    );
}

#[test]
fn an_interrupted_reply_is_heard_as_the_next_context_records_it() {
    let derived = derive(&conversation());
    let interrupted = &derived.turns[1];
    assert_eq!(interrupted.interrupted, 1);
    assert_eq!(interrupted.agent_text, FORECAST_REPLY);
    assert_eq!(
        interrupted.agent_spoken_text.as_deref(),
        Some(FORECAST_PLAYED)
    );
    assert_eq!(derived.turns[0].agent_spoken_text, None);
    assert_eq!(
        derived.interruptions[0].spoken_text.as_deref(),
        Some(FORECAST_PLAYED)
    );
    let agent = derived
        .messages
        .iter()
        .find(|m| m.turn_number == 2 && m.speaker == "agent")
        .expect("the agent's reply");
    assert_eq!(agent.spoken_text.as_deref(), Some(FORECAST_PLAYED));
}

#[test]
fn without_a_later_llm_call_the_part_heard_stays_unknown() {
    // The caller hung up during the reply: no `llm` span after it.
    let spans: Vec<Span> = conversation()
        .into_iter()
        .filter(|s| s.start_unix_nano < T0 + 10_000 * MS)
        .collect();
    let derived = derive(&spans);
    assert_eq!(derived.turns[1].interrupted, 1);
    assert_eq!(derived.turns[1].agent_spoken_text, None);
    // The failing call is known only from the reply's own context, so it is still found.
    assert_eq!(derived.tool_calls.len(), 2);
}

#[test]
fn a_reply_played_in_full_has_no_separate_spoken_part() {
    let mut spans = conversation();
    for span in spans.iter_mut().filter(|s| s.name == "llm") {
        for (key, value) in span.attributes.0.iter_mut() {
            if key == "input" {
                *value = value.replace(FORECAST_PLAYED, FORECAST_REPLY);
            }
        }
    }
    assert_eq!(derive(&spans).turns[1].agent_spoken_text, None);
}

#[test]
fn a_call_still_running_takes_its_result_from_a_later_context() {
    let asked = [system(), user("Book a table")];
    let mut running = asked.to_vec();
    running.push(asks("call_9", "book_table", "{}"));
    running.push(answers("call_9", "IN_PROGRESS"));
    let mut done = running.clone();
    done[3] = answers("call_9", r#"{"booked": true}"#);
    done.push(user("Is it done?"));
    let spans = vec![
        span("conversation")
            .scope("pipecat.turn")
            .id(1)
            .at(0, 9000)
            .attr("conversation.id", "conv-async")
            .build(),
        turn(2, "1", (0, 4000), false),
        llm(3, 2, (100, 500), &asked, None),
        llm(4, 2, (800, 1200), &running, Some("I'm booking it.")),
        turn(5, "2", (5000, 9000), false),
        llm(6, 5, (5500, 6000), &done, Some("Yes, booked.")),
    ];
    let calls = derive(&spans).tool_calls;
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(
        (calls[0].turn_number, calls[0].result.as_str()),
        (1, r#"{"booked": true}"#)
    );
    assert_eq!(calls[0].start_time_unix_nano, T0 + 500 * MS);
    assert_eq!(calls[0].duration_ms, 5000.0);
}

#[test]
fn a_call_traced_by_its_own_span_is_not_counted_again() {
    let asked = [system(), user("Book a table")];
    let mut answered = asked.to_vec();
    answered.push(asks("call_7", "book_table", "{}"));
    answered.push(answers("call_7", r#"{"booked": true}"#));
    let spans = vec![
        span("conversation")
            .scope("pipecat.turn")
            .id(1)
            .at(0, 9000)
            .attr("conversation.id", "conv-traced")
            .build(),
        turn(2, "1", (0, 4000), false),
        llm(3, 2, (100, 500), &asked, None),
        span("llm_tool_call")
            .scope("pipecat")
            .id(4)
            .parent(2)
            .at(500, 700)
            .attr("tool.function_name", "book_table")
            .attr("tool.call_id", "call_7")
            .build(),
        llm(5, 2, (800, 1200), &answered, Some("Booked.")),
    ];
    let calls = derive(&spans).tool_calls;
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].span_id, "0000000000000004");
}

#[test]
fn anthropic_contexts_give_the_same_calls() {
    // Pipecat logs the context in the provider's format: Anthropic has no system message in
    // the list, `tool_use` blocks in the assistant message and `tool_result` blocks in a
    // user message.
    let asked = [json!({"role": "user", "content": "Book a table"})];
    let mut answered = asked.to_vec();
    answered.push(json!({"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "book_table", "input": {"people": 2}}
    ]}));
    answered.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "{\"error\": \"fully booked\"}"}
    ]}));
    let spans = vec![
        span("conversation")
            .scope("pipecat.turn")
            .id(1)
            .at(0, 9000)
            .attr("conversation.id", "conv-anthropic")
            .build(),
        turn(2, "1", (0, 4000), false),
        llm(3, 2, (100, 500), &asked, None),
        llm(
            4,
            2,
            (900, 1200),
            &answered,
            Some("Sorry, it is fully booked."),
        ),
    ];
    let calls = derive(&spans).tool_calls;
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(
        (
            calls[0].name.as_str(),
            calls[0].arguments.as_str(),
            calls[0].error_message.as_str()
        ),
        ("book_table", r#"{"people":2}"#, "fully booked")
    );
    assert_eq!(calls[0].duration_ms, 400.0);
}

#[test]
fn a_call_asked_for_while_speaking_is_timed_from_that_llm_call() {
    // The LLM says a few words and asks for the tool in the same response.
    let earlier = [system(), user("Hi"), assistant("Hello! How can I help?")];
    let mut asked = earlier.to_vec();
    asked.push(user("Book a table"));
    let mut answered = asked.clone();
    answered.push(assistant("Let me check."));
    answered.push(asks("call_5", "book_table", "{}"));
    answered.push(answers("call_5", r#"{"booked": true}"#));
    let spans = vec![
        span("conversation")
            .scope("pipecat.turn")
            .id(1)
            .at(0, 9000)
            .attr("conversation.id", "conv-speaking")
            .build(),
        turn(2, "1", (0, 2000), false),
        // An earlier call that produced no text must not be taken for the asking one.
        llm(3, 2, (100, 500), &earlier[..2], None),
        turn(4, "2", (3000, 9000), false),
        llm(5, 4, (3100, 3600), &asked, Some("Let me check.")),
        llm(6, 4, (4000, 4500), &answered, Some("Booked for two.")),
    ];
    let calls = derive(&spans).tool_calls;
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].turn_number, 2);
    assert_eq!(calls[0].start_time_unix_nano, T0 + 3600 * MS);
    assert_eq!(calls[0].duration_ms, 400.0);
}

#[test]
fn gemini_contexts_give_the_same_calls() {
    // Pipecat with Google's LLM logs `Content`s: `parts` with `function_call` in a model
    // message and `function_response` in a user message (non-object results wrapped as
    // `{"value": ...}`). The second call carries no id, as Gemini's API allows.
    let asked =
        [json!({"role": "user", "parts": [{"text": "Book a table and check the weather"}]})];
    let mut answered = asked.to_vec();
    answered.push(json!({"role": "model", "parts": [
        {"function_call": {"id": "g1", "name": "book_table", "args": {"people": 2}}},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    ]}));
    answered.push(json!({"role": "user", "parts": [
        {"function_response": {"id": "g1", "name": "book_table", "response": {"error": "fully booked"}}},
        {"functionResponse": {"name": "get_weather", "response": {"value": "sunny"}}}
    ]}));
    let mut later = answered.clone();
    later.push(json!({"role": "model", "parts": [{"text": "It is fully booked, but sunny."}]}));
    later.push(json!({"role": "user", "parts": [{"text": "Thanks"}]}));
    let spans = vec![
        span("conversation")
            .scope("pipecat.turn")
            .id(1)
            .at(0, 9000)
            .attr("conversation.id", "conv-gemini")
            .build(),
        turn(2, "1", (0, 4000), false),
        llm(3, 2, (100, 500), &asked, None),
        llm(
            4,
            2,
            (900, 1200),
            &answered,
            Some("It is fully booked, but sunny."),
        ),
        turn(5, "2", (5000, 9000), false),
        llm(6, 5, (5100, 5500), &later, Some("You're welcome.")),
    ];
    let derived = derive(&spans);
    let calls: Vec<(&str, &str, &str, &str, u8)> = derived
        .tool_calls
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.arguments.as_str(),
                c.result.as_str(),
                c.error_message.as_str(),
                c.is_error,
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            (
                "book_table",
                r#"{"people":2}"#,
                r#"{"error":"fully booked"}"#,
                "fully booked",
                1
            ),
            ("get_weather", r#"{"city":"Paris"}"#, "sunny", "", 0),
        ]
    );
    assert!(derived.tool_calls.iter().all(|c| c.turn_number == 1));
    assert_eq!(derived.tool_calls[0].duration_ms, 400.0);
}

#[test]
fn a_function_that_raised_is_a_failed_call() {
    // When a handler raises, Pipecat settles the call with a sentence of its own as the
    // result (JSON-encoded, like every result); so it does for a function nobody registered.
    let raised = "\"The function `get_forecast` failed and returned no result.\"";
    let missing = "\"The function `book_table` is not currently available.\"";
    let asked = [system(), user("Forecast, and book a table")];
    let mut answered = asked.to_vec();
    answered.push(json!({"role": "assistant", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_forecast", "arguments": "{}"}},
        {"id": "call_2", "type": "function", "function": {"name": "book_table", "arguments": "{}"}}
    ]}));
    answered.push(answers("call_1", raised));
    answered.push(answers("call_2", missing));
    answered.push(answers("call_3", "\"The function `x` returned fine.\""));
    let spans = vec![
        span("conversation")
            .scope("pipecat.turn")
            .id(1)
            .at(0, 9000)
            .attr("conversation.id", "conv-raised")
            .build(),
        turn(2, "1", (0, 4000), false),
        llm(3, 2, (100, 500), &asked, None),
        llm(4, 2, (900, 1200), &answered, Some("Sorry, neither worked.")),
    ];
    let calls = derive(&spans).tool_calls;
    let errors: Vec<(&str, u8, &str)> = calls
        .iter()
        .map(|c| (c.name.as_str(), c.is_error, c.error_message.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (
                "get_forecast",
                1,
                "The function `get_forecast` failed and returned no result."
            ),
            (
                "book_table",
                1,
                "The function `book_table` is not currently available."
            ),
        ]
    );
}
