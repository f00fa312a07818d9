//! Plan and emitter tests; no network.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use opentelemetry::logs::{AnyValue, Severity};
use opentelemetry::trace::{SpanId, Status};
use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::plan::{ConversationPlan, PlannedSpan};
use super::*;

const SHAPES: [Shape; 3] = [Shape::Pipecat, Shape::Livekit, Shape::Genai];

fn plan(shape: Shape, seed: u64) -> ConversationPlan {
    plan_with(shape, seed, &PlanOptions::default())
}

fn plan_with(shape: Shape, seed: u64, options: &PlanOptions) -> ConversationPlan {
    plan_conversation(shape, seed, format!("test-{seed}"), options)
}

fn all_spans(plan: &ConversationPlan) -> Vec<(&PlannedSpan, Option<&PlannedSpan>)> {
    let mut out = Vec::new();
    for root in &plan.traces {
        root.walk(&mut |span, parent| out.push((span, parent)));
    }
    out
}

fn str_attr<'a>(span: &'a PlannedSpan, key: &str) -> Option<&'a str> {
    match span.get(key) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn f64_attr(span: &PlannedSpan, key: &str) -> f64 {
    match span.get(key) {
        Some(Value::F64(v)) => *v,
        other => panic!("{} has no float {key}: {other:?}", span.name),
    }
}

fn data_attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[test]
fn same_seed_gives_same_plan() {
    for shape in SHAPES.into_iter().chain([Shape::Mixed]) {
        assert_eq!(plan(shape, 42), plan(shape, 42));
        assert_ne!(plan(shape, 42), plan(shape, 43));
    }
}

#[test]
fn conversation_seeds_differ_per_index() {
    let seeds: HashSet<u64> = (0..1000).map(|i| conversation_seed(7, i)).collect();
    assert_eq!(seeds.len(), 1000);
}

#[test]
fn mixed_uses_every_shape() {
    let shapes: HashSet<_> = (0..60)
        .map(|seed| format!("{:?}", plan(Shape::Mixed, seed).shape))
        .collect();
    assert_eq!(shapes.len(), 3, "{shapes:?}");
}

#[test]
fn children_lie_within_their_parents() {
    for shape in SHAPES {
        for seed in 0..200 {
            let plan = plan(shape, seed);
            for (span, parent) in all_spans(&plan) {
                assert!(
                    span.start <= span.end,
                    "{} ends before it starts",
                    span.name
                );
                if let Some(parent) = parent {
                    assert!(
                        parent.start <= span.start && span.end <= parent.end,
                        "{shape:?} seed {seed}: {} [{:?}, {:?}] outside {} [{:?}, {:?}]",
                        span.name,
                        span.start,
                        span.end,
                        parent.name,
                        parent.start,
                        parent.end
                    );
                }
            }
        }
    }
}

#[test]
fn emitted_children_end_before_parents() {
    let cases = SHAPES
        .into_iter()
        .map(|shape| (shape, 5))
        .chain((0..60).map(|seed| (Shape::Mixed, seed)));
    for (shape, seed) in cases {
        let plan = plan(shape, seed);
        let now = SystemTime::now();
        let recorded = emit::record(&plan, now, emit::Logs::Record);
        assert_eq!(recorded.spans.len() as u64, plan.span_count());

        let position: HashMap<SpanId, usize> = recorded
            .spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_context.span_id(), i))
            .collect();
        let by_id: HashMap<SpanId, &SpanData> = recorded
            .spans
            .iter()
            .map(|s| (s.span_context.span_id(), s))
            .collect();
        for (i, span) in recorded.spans.iter().enumerate() {
            assert!(span.start_time <= span.end_time);
            if span.parent_span_id == SpanId::INVALID {
                continue;
            }
            let parent = by_id[&span.parent_span_id];
            assert!(
                position[&span.parent_span_id] > i,
                "{} ended after its parent",
                span.name
            );
            assert_eq!(parent.span_context.trace_id(), span.span_context.trace_id());
            assert!(parent.start_time <= span.start_time && span.end_time <= parent.end_time);
        }

        // The conversation just ended: the latest end is "now".
        let latest = recorded.spans.iter().map(|s| s.end_time).max();
        assert_eq!(latest, Some(now));
        let earliest = recorded.spans.iter().map(|s| s.start_time).min();
        assert_eq!(earliest, now.checked_sub(plan.length()));
        if shape != Shape::Mixed {
            assert!(plan.length() > Duration::from_secs(5));
        }
    }
}

#[test]
fn resource_carries_service_and_environment() {
    for shape in SHAPES {
        let recorded = emit::record(&plan(shape, 9), SystemTime::now(), emit::Logs::Record);
        let get = |key: &'static str| {
            recorded
                .resource
                .get(&opentelemetry::Key::from_static_str(key))
        };
        assert!(
            matches!(get("service.name"), Some(Value::String(s)) if s.as_str().starts_with("support") || s.as_str().starts_with("livekit"))
        );
        assert_eq!(
            get("deployment.environment.name"),
            Some(Value::from("demo"))
        );
    }
}

#[test]
fn pipecat_is_one_trace_with_numbered_turns() {
    let plan = plan(Shape::Pipecat, 11);
    assert_eq!(plan.traces.len(), 1);
    let root = &plan.traces[0];
    assert_eq!(root.name, "conversation");
    assert_eq!(root.scope, "pipecat.turn");
    assert_eq!(str_attr(root, "conversation.id"), Some("test-11"));
    assert_eq!(str_attr(root, "conversation.type"), Some("voice"));
    assert_eq!(str_attr(root, "convolog.channel"), Some("voice"));
    assert!(matches!(
        str_attr(root, "convolog.direction"),
        Some("inbound" | "outbound")
    ));

    let turns: Vec<_> = root.children.iter().filter(|c| c.name == "turn").collect();
    assert!((3..=8).contains(&turns.len()));
    for (i, turn) in turns.iter().enumerate() {
        assert_eq!(turn.get("turn.number"), Some(&Value::I64(i as i64 + 1)));
        assert_eq!(str_attr(turn, "conversation.id"), Some("test-11"));
        assert!(matches!(
            turn.get("turn.was_interrupted"),
            Some(Value::Bool(_))
        ));
        let latency = f64_attr(turn, "turn.user_bot_latency_seconds");
        assert!(latency > 0.5 && latency < 12.0);
        let names: Vec<&str> = turn.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.first(), Some(&"stt"));
        assert_eq!(names.last(), Some(&"tts"));
        assert!(names.contains(&"llm"));
        for child in turn.children.iter().filter(|c| c.name != "retrieve") {
            assert_eq!(child.scope, "pipecat");
            // Children inherit the session through the trace, as in Pipecat.
            assert!(child.get("conversation.id").is_none());
        }
        let stt = &turn.children[0];
        assert_eq!(str_attr(stt, "gen_ai.operation.name"), Some("stt"));
        assert_eq!(stt.get("is_final"), Some(&Value::Bool(true)));
        // Mostly quick, with the occasional slow call.
        assert!((0.15..=1.6).contains(&f64_attr(stt, "metrics.ttfb")));
        let tts = turn.children.last().expect("tts");
        assert!((0.15..=1.8).contains(&f64_attr(tts, "metrics.ttfb")));
        assert_eq!(tts.get("tts.interrupted"), turn.get("turn.was_interrupted"));
        for llm in turn.children.iter().filter(|c| c.name == "llm") {
            assert_eq!(str_attr(llm, "gen_ai.operation.name"), Some("chat"));
            let input: serde_json::Value =
                serde_json::from_str(str_attr(llm, "input").expect("input")).expect("JSON");
            assert_eq!(input[0]["role"], "system");
            let ttft = f64_attr(llm, "metrics.ttfb");
            assert!((0.3..=4.0).contains(&ttft));
        }
    }
}

#[test]
fn livekit_stamps_session_id_on_every_span() {
    let options = PlanOptions {
        interrupt_rate: 0.5,
        incident_rate: 0.0,
        ..PlanOptions::default()
    };
    let mut saw_interruption = false;
    for seed in 0..20 {
        let plan = plan_with(Shape::Livekit, seed, &options);
        assert_eq!(plan.traces.len(), 1);
        let root = &plan.traces[0];
        assert_eq!(root.name, "agent_session");
        assert_eq!(
            str_attr(root, "lk.pii.room_name"),
            Some(plan.session_id.as_str())
        );
        for (span, _) in all_spans(&plan) {
            assert_eq!(str_attr(span, "session.id"), Some(plan.session_id.as_str()));
            assert_eq!(span.scope, "livekit-agents");
            for key in ["lk.interrupted", "lk.is_interruption"] {
                if let Some(value) = span.get(key) {
                    assert!(
                        matches!(value, Value::String(s) if s.as_str() == "true" || s.as_str() == "false")
                    );
                }
            }
        }

        // A barge-in: user speech marked as interruption starts while the
        // agent is still speaking.
        let speaking: Vec<_> = root
            .children
            .iter()
            .filter(|c| c.name == "agent_speaking")
            .collect();
        let users: Vec<_> = root
            .children
            .iter()
            .filter(|c| c.name == "user_speaking")
            .collect();
        for (i, agent) in speaking.iter().enumerate() {
            if str_attr(agent, "lk.is_interruption") == Some("true") {
                saw_interruption = true;
                let next = users[i + 1];
                assert_eq!(str_attr(next, "lk.is_interruption"), Some("true"));
                assert!(agent.start < next.start && next.start < agent.end);
            }
        }
        for turn in root.children.iter().filter(|c| c.name == "agent_turn") {
            let names: Vec<&str> = turn.children.iter().map(|c| c.name.as_str()).collect();
            assert!(
                names.contains(&"llm_node") && names.contains(&"tts_node"),
                "{names:?}"
            );
            let llm = turn
                .children
                .iter()
                .find(|c| c.name == "llm_node")
                .expect("llm_node");
            assert_eq!(llm.children[0].name, "llm_request");
            assert_eq!(llm.children[0].children[0].name, "llm_request_run");
        }
    }
    assert!(saw_interruption);
}

#[test]
fn genai_sends_one_trace_per_turn() {
    let plan = plan(Shape::Genai, 13);
    let recorded = emit::record(&plan, SystemTime::now(), emit::Logs::Record);
    let roots: Vec<_> = recorded
        .spans
        .iter()
        .filter(|s| s.parent_span_id == SpanId::INVALID)
        .collect();
    let traces: HashSet<_> = recorded
        .spans
        .iter()
        .map(|s| s.span_context.trace_id())
        .collect();
    assert_eq!(roots.len(), plan.traces.len());
    assert_eq!(traces.len(), plan.traces.len());
    assert!(plan.traces.len() >= 3);
    assert_eq!(
        recorded
            .resource
            .get(&opentelemetry::Key::from_static_str("convolog.channel")),
        Some(Value::from("web_chat"))
    );
    for root in roots {
        assert_eq!(root.name, "invoke_agent support-agent");
        assert_eq!(
            data_attr(root, "gen_ai.conversation.id"),
            Some(&Value::from("test-13"))
        );
        let Some(Value::String(input)) = data_attr(root, "gen_ai.input.messages") else {
            panic!("no input messages");
        };
        let input: serde_json::Value = serde_json::from_str(input.as_str()).expect("JSON");
        assert_eq!(input[0]["role"], "user");
        assert_eq!(input[0]["parts"][0]["type"], "text");
        let Some(Value::String(output)) = data_attr(root, "gen_ai.output.messages") else {
            panic!("no output messages");
        };
        let output: serde_json::Value = serde_json::from_str(output.as_str()).expect("JSON");
        assert_eq!(output[0]["role"], "assistant");
    }
    assert!(recorded.spans.iter().any(|s| s.name == "chat gpt-4o-mini"));
}

#[test]
fn failed_tools_are_recorded_as_errors() {
    let options = PlanOptions {
        tool_error_rate: 1.0,
        ..PlanOptions::default()
    };
    for shape in SHAPES {
        let recorded = emit::record(
            &plan_with(shape, 17, &options),
            SystemTime::now(),
            emit::Logs::Record,
        );
        let tools: Vec<_> = recorded
            .spans
            .iter()
            .filter(|s| {
                matches!(s.name.as_ref(), "llm_tool_call" | "function_tool")
                    || s.name.starts_with("execute_tool")
            })
            .collect();
        assert!(!tools.is_empty(), "{shape:?} has no tool calls");
        for tool in tools {
            assert!(matches!(tool.status, Status::Error { .. }), "{}", tool.name);
            assert!(tool.events.iter().any(|e| e.name == "exception"));
            match shape {
                Shape::Pipecat => assert_eq!(
                    data_attr(tool, "tool.result_status"),
                    Some(&Value::from("error"))
                ),
                Shape::Livekit => assert_eq!(
                    data_attr(tool, "lk.function_tool.is_error"),
                    Some(&Value::Bool(true))
                ),
                _ => assert_eq!(
                    data_attr(tool, "error.type"),
                    Some(&Value::from("tool_error"))
                ),
            }
        }
    }
}

#[test]
fn handoff_ends_the_conversation() {
    let options = PlanOptions {
        handoff_rate: 1.0,
        ..PlanOptions::default()
    };
    for shape in SHAPES {
        let plan = plan_with(shape, 19, &options);
        let handoffs: Vec<_> = all_spans(&plan)
            .into_iter()
            .filter(|(s, _)| s.name == "handoff")
            .collect();
        assert_eq!(handoffs.len(), 1, "{shape:?}");
        let (span, parent) = handoffs[0];
        assert_eq!(str_attr(span, "convolog.handoff.target"), Some("human"));
        assert!(str_attr(span, "convolog.handoff.reason").is_some());
        let parent = parent.expect("handoff has a parent");
        match shape {
            Shape::Pipecat => assert_eq!(parent.name, "conversation"),
            Shape::Livekit => assert_eq!(parent.name, "agent_session"),
            _ => assert!(std::ptr::eq(parent, plan.traces.last().expect("a turn"))),
        }
        // The transfer follows the agent's last words.
        let last_reply = all_spans(&plan)
            .into_iter()
            .filter(|(s, _)| {
                matches!(
                    s.name.as_str(),
                    "tts" | "agent_speaking" | "chat gpt-4o-mini"
                )
            })
            .map(|(s, _)| s.start)
            .max()
            .expect("a reply");
        assert!(span.start > last_reply, "{shape:?}");
    }
}

#[test]
fn event_rates_match_the_options() {
    // Incidents replace the normal ending, handoffs included.
    let options = PlanOptions {
        incident_rate: 0.0,
        ..PlanOptions::default()
    };
    let mut rng = StdRng::seed_from_u64(23);
    let (mut replies, mut interrupted, mut tools, mut failed, mut handoffs) = (0, 0, 0, 0, 0);
    let conversations = 3000;
    for _ in 0..conversations {
        let script = script::build(&mut rng, &options, script::Medium::Voice);
        // The last reply can never be interrupted.
        let eligible = &script.turns[..script.turns.len() - 1];
        replies += eligible.len();
        interrupted += eligible.iter().filter(|t| t.interrupted).count();
        for call in script.turns.iter().filter_map(|t| t.tool.as_ref()) {
            tools += 1;
            failed += usize::from(call.failed);
        }
        handoffs += usize::from(script.handoff.is_some());
    }
    let share = |n: usize, of: usize| n as f64 / of as f64;
    // One caller in 2 / interrupt_rate is impatient and barges in 60% of the time:
    // 0.075 * 0.6 + 0.925 * 0.15 = 0.184.
    assert!((0.16..0.21).contains(&share(interrupted, replies)));
    assert!((0.13..0.17).contains(&share(failed, tools)));
    assert!((0.08..0.12).contains(&share(handoffs, conversations)));
}

#[test]
fn turn_ranges_parse() {
    assert_eq!(parse_turns("3..8"), Ok(TurnRange { min: 3, max: 8 }));
    assert_eq!(parse_turns("3..=8"), Ok(TurnRange { min: 3, max: 8 }));
    assert_eq!(parse_turns("5"), Ok(TurnRange { min: 5, max: 5 }));
    assert!(parse_turns("0..3").is_err());
    assert!(parse_turns("8..3").is_err());
    assert!(parse_turns("a..3").is_err());
}

#[test]
fn http_endpoint_gets_the_signal_path() {
    let url = |endpoint, signal| http_signal_url(endpoint, signal).ok();
    for base in ["http://127.0.0.1:4318", "http://127.0.0.1:4318/"] {
        assert_eq!(
            url(base, Signal::Traces).as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            url(base, Signal::Logs).as_deref(),
            Some("http://127.0.0.1:4318/v1/logs")
        );
    }
    let custom = "https://otel.example/custom/traces";
    assert_eq!(url(custom, Signal::Traces).as_deref(), Some(custom));
    assert_eq!(
        url(custom, Signal::Logs).as_deref(),
        Some("https://otel.example/custom/logs")
    );
    // A path that names no traces URL gives no logs URL; the error says what to do.
    let other = "https://otel.example/ingest";
    assert_eq!(url(other, Signal::Traces).as_deref(), Some(other));
    assert!(matches!(
        http_signal_url(other, Signal::Logs),
        Err(SimulateError::InvalidArgs(message)) if message.contains("--no-logs")
    ));
}

#[test]
fn bad_arguments_are_rejected() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }
    let parse = |extra: &[&str]| {
        Cli::try_parse_from(std::iter::once("sim").chain(extra.iter().copied()))
            .expect("clap accepts the syntax")
            .args
    };
    assert!(validate(&parse(&[])).is_ok());
    for bad in [
        &["--rate=-1"][..],
        &["--concurrency", "0"],
        &["--handoff-rate", "1.5"],
        &["--tool-error-rate=-0.1"],
    ] {
        assert!(
            matches!(validate(&parse(bad)), Err(SimulateError::InvalidArgs(_))),
            "{bad:?}"
        );
    }
}

fn bool_attr(span: &PlannedSpan, key: &str) -> bool {
    matches!(span.get(key), Some(Value::Bool(true)))
}

fn exception_type(span: &PlannedSpan) -> Option<String> {
    span.events
        .iter()
        .filter(|e| e.name == "exception")
        .flat_map(|e| &e.attributes)
        .find(|kv| kv.key.as_str() == "exception.type")
        .map(|kv| kv.value.as_str().into_owned())
}

fn is_stage(span: &PlannedSpan) -> bool {
    matches!(
        span.name.as_str(),
        "stt" | "llm" | "tts" | "llm_request" | "tts_request"
    ) || span.name.starts_with("chat ")
}

fn is_tool(span: &PlannedSpan) -> bool {
    matches!(span.name.as_str(), "llm_tool_call" | "function_tool")
        || span.name.starts_with("execute_tool")
}

/// What the session rules key on, seen in one plan; the tags name the outcome,
/// state, call status or issue each signal leads to.
fn signals(plan: &ConversationPlan) -> HashSet<String> {
    let spans = all_spans(plan);
    let mut out = HashSet::new();
    let mut add = |tag: &str| {
        out.insert(tag.to_string());
    };
    let carrier = match plan.shape {
        Shape::Genai => plan.traces.last(),
        _ => plan.traces.first(),
    };
    let Some(carrier) = carrier else {
        return out;
    };
    let voice = plan.shape != Shape::Genai;
    let mut saw_tool = false;
    for (span, _) in &spans {
        match str_attr(span, "error.type") {
            Some("rate_limit_exceeded") => {
                assert_eq!(
                    span.get("http.response.status_code"),
                    Some(&Value::I64(429))
                );
                assert!(span.error.is_some());
                add("Rate Limited");
            }
            Some("session_busy") => add("Session Busy"),
            _ => {}
        }
        if is_tool(span) && span.error.is_some() {
            let message = span.error.as_deref().unwrap_or_default();
            if message.contains("tool_not_found") {
                add("Skill Retired");
            } else {
                add("Skill Error");
            }
        }
        if is_tool(span) {
            saw_tool = true;
        }
        if span.name == "handoff" {
            add(if saw_tool { "Handoff" } else { "To Agent" });
        }
        if is_stage(span)
            && matches!(
                exception_type(span).as_deref(),
                Some("WebSocketException" | "APITimeoutError" | "TTSError")
            )
        {
            add("Partial Flow Failure");
        }
        let confidence = match span.get("lk.transcript_confidence") {
            Some(Value::F64(c)) => Some(*c),
            _ => match span.get("convolog.transcript.confidence") {
                Some(Value::F64(c)) => Some(*c),
                _ => None,
            },
        };
        if confidence.is_some_and(|c| c < 0.6) {
            add("low_transcription_confidence");
        }
        for key in ["output", "lk.pii.response.text"] {
            if str_attr(span, key).is_some_and(|t| t.starts_with("I'm sorry, I didn't understand"))
            {
                add("fallback_reply");
            }
        }
        for (key, limit) in [
            ("turn.user_bot_latency_seconds", 2.0),
            ("lk.e2e_latency", 2.0),
        ] {
            if matches!(span.get(key), Some(Value::F64(v)) if *v > limit) {
                add("slow_turn");
            }
        }
        if span.name == "stt" && f64_attr(span, "metrics.ttfb") > 0.8 {
            add("slow_stt");
        }
        if matches!(span.get("lk.transcription_delay"), Some(Value::F64(v)) if *v > 0.8) {
            add("slow_stt");
        }
        if matches!(span.get("metrics.ttfb"), Some(Value::F64(v)) if *v > 0.8 && span.name == "tts")
            || matches!(span.get("lk.response.ttfb"), Some(Value::F64(v)) if *v > 0.8)
        {
            add("slow_tts");
        }
    }
    if bool_attr(carrier, "convolog.budget.exceeded") {
        add("Budget Exceeded");
    }
    if bool_attr(carrier, "convolog.verification.required") {
        add("Verification Required");
    }
    if str_attr(carrier, "convolog.outcome").is_some() {
        add("explicit outcome");
    }
    if carrier.events.iter().any(|e| e.name == "convolog.feedback") {
        add("feedback");
    }
    for key in ["convolog.call.status", "convolog.call.ended_reason"] {
        if let Some(value) = str_attr(carrier, key) {
            add(value);
        }
    }
    for key in [
        "convolog.intent",
        "convolog.flow",
        "convolog.node",
        "convolog.summary",
    ] {
        assert!(str_attr(carrier, key).is_some(), "{key} missing");
    }
    if voice {
        assert!(str_attr(carrier, "convolog.contact").is_some_and(|c| c.starts_with("+1555")));
        assert!(str_attr(carrier, "convolog.recording_url").is_some());
        if carrier.children.is_empty() {
            add(if carrier.error.is_some() {
                "Session Busy"
            } else {
                "Dispatch Orphaned"
            });
        }
    } else if carrier.name.starts_with("create_agent") {
        add("OPEN");
    } else if bool_attr(carrier, "convolog.session.ended") {
        add("chat ended");
    } else {
        add("chat open");
    }
    // The last turn got no reply: no reply text on the last turn's spans.
    let last_turn_unanswered = match plan.shape {
        Shape::Pipecat => carrier
            .children
            .iter()
            .rfind(|c| c.name == "turn")
            .is_some_and(|t| !t.children.iter().any(|c| c.name == "tts")),
        Shape::Livekit => carrier
            .children
            .iter()
            .rfind(|c| c.name == "agent_turn")
            .is_some_and(|t| t.get("lk.pii.response.text").is_none()),
        _ => carrier.get("gen_ai.output.messages").is_none(),
    };
    if last_turn_unanswered {
        add("unanswered");
        if !voice && carrier.children.iter().any(is_tool) {
            add("PROCESSING");
        }
    }
    // Consecutive user lines that repeat, and long silences between voice turns.
    let users: Vec<&str> = spans
        .iter()
        .filter_map(|(s, _)| {
            str_attr(s, "transcript").or_else(|| str_attr(s, "lk.pii.user_transcript"))
        })
        .collect();
    if users.windows(2).any(|w| w[0] == w[1]) {
        add("repeated_user_utterance");
    }
    let interruptions = spans
        .iter()
        .filter(|(s, _)| {
            s.get("turn.was_interrupted") == Some(&Value::Bool(true))
                || (s.name == "agent_turn" && str_attr(s, "lk.interrupted") == Some("true"))
        })
        .count();
    if voice && interruptions >= 3 {
        add("frequent_interruptions");
    }
    let turns: Vec<&PlannedSpan> = carrier
        .children
        .iter()
        .filter(|c| c.name == "turn" || c.name == "agent_turn")
        .collect();
    if turns
        .windows(2)
        .any(|w| w[1].start.saturating_sub(w[0].end) > Duration::from_secs(15))
    {
        add("long_silence");
    }
    out
}

#[test]
fn every_outcome_trigger_appears_in_a_realistic_mix() {
    let options = PlanOptions::default();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let conversations = 500;
    for index in 0..conversations {
        let plan = plan_conversation(
            Shape::Mixed,
            conversation_seed(11, index),
            format!("mix-{index}"),
            &options,
        );
        for tag in signals(&plan) {
            *counts.entry(tag).or_default() += 1;
        }
    }
    let expected = [
        "Rate Limited",
        "Budget Exceeded",
        "Session Busy",
        "Verification Required",
        "Handoff",
        "To Agent",
        "Skill Retired",
        "Skill Error",
        "Partial Flow Failure",
        "Dispatch Orphaned",
        "unanswered",
        "explicit outcome",
        "feedback",
        "chat ended",
        "chat open",
        "PROCESSING",
        "OPEN",
        "Completed",
        "Missed",
        "Failed",
        "user_hangup",
        "agent_hangup",
        "transfer",
        "max_duration",
        "voicemail",
        "inactivity",
        "error",
        "slow_turn",
        "slow_stt",
        "slow_tts",
        "repeated_user_utterance",
        "frequent_interruptions",
        "long_silence",
        "fallback_reply",
        "low_transcription_confidence",
    ];
    let missing: Vec<_> = expected
        .iter()
        .filter(|tag| !counts.contains_key(**tag))
        .collect();
    assert!(missing.is_empty(), "missing {missing:?} in {counts:?}");
    // Mostly plain successful conversations: incidents stay a minority.
    let incidents = [
        "Rate Limited",
        "Budget Exceeded",
        "Session Busy",
        "Dispatch Orphaned",
    ]
    .iter()
    .map(|t| counts.get(*t).copied().unwrap_or(0))
    .sum::<usize>();
    assert!(incidents < conversations as usize / 5, "{counts:?}");
}

fn body(record: &opentelemetry_sdk::logs::SdkLogRecord) -> String {
    match record.body() {
        Some(AnyValue::String(s)) => s.to_string(),
        other => panic!("a log record without a text body: {other:?}"),
    }
}

#[test]
fn log_records_are_written_inside_their_spans() {
    for seed in 0..40 {
        let plan = plan(Shape::Mixed, seed);
        let now = SystemTime::now();
        let recorded = emit::record(&plan, now, emit::Logs::Record);
        let planned: usize = all_spans(&plan).iter().map(|(s, _)| s.logs.len()).sum();
        assert_eq!(recorded.logs.len(), planned);
        if plan.traces.iter().any(|t| !t.children.is_empty()) {
            assert!(planned > 0, "seed {seed}: a conversation with steps logs");
        }
        let by_id: HashMap<SpanId, &SpanData> = recorded
            .spans
            .iter()
            .map(|s| (s.span_context.span_id(), s))
            .collect();
        for (record, scope) in &recorded.logs {
            let context = record.trace_context().expect("written inside a span");
            let span = by_id[&context.span_id];
            assert_eq!(context.trace_id, span.span_context.trace_id());
            assert_eq!(scope.name(), span.instrumentation_scope.name());
            let at = record.timestamp().expect("a time");
            assert!(
                span.start_time <= at && at <= span.end_time,
                "{:?} outside {}",
                body(record),
                span.name
            );
            let severity = record.severity_number().expect("a severity");
            assert!(matches!(
                severity,
                Severity::Info | Severity::Warn | Severity::Error
            ));
            assert_eq!(record.severity_text(), Some(severity.name()));
        }
        assert!(emit::record(&plan, now, emit::Logs::Skip).logs.is_empty());
    }
}

#[test]
fn failing_steps_log_errors_and_only_they_do() {
    let options = PlanOptions {
        tool_error_rate: 0.5,
        stage_error_rate: 0.3,
        ..PlanOptions::default()
    };
    let mut seen = HashSet::new();
    for shape in SHAPES {
        for seed in 0..20 {
            let plan = plan_with(shape, seed, &options);
            for (span, _) in all_spans(&plan) {
                let errors: Vec<&str> = span
                    .logs
                    .iter()
                    .filter(|l| l.severity == Severity::Error)
                    .map(|l| l.body.as_str())
                    .collect();
                // A step that failed (the span, or the LiveKit node whose request failed)
                // logs an error, and only such a step does, except LiveKit's user turn:
                // LiveKit traces no STT request, so its STT failure shows only in the log.
                let failed =
                    span.error.is_some() || span.children.iter().any(|c| c.error.is_some());
                if !span.logs.is_empty() && span.name != "user_turn" {
                    assert_eq!(!errors.is_empty(), failed, "{}: {errors:?}", span.name);
                }
                if is_tool(span) && span.error.is_some() {
                    assert!(errors[0].contains("failed"), "{errors:?}");
                    seen.insert("tool");
                } else if !errors.is_empty() {
                    seen.insert("stage");
                }
                if span.logs.iter().any(|l| l.severity == Severity::Warn) {
                    seen.insert("warn");
                }
            }
        }
    }
    assert_eq!(seen, HashSet::from(["tool", "stage", "warn"]));
}
