//! Call status, ended reason, descriptive fields, cost and expiry of the session row.

use super::*;

#[test]
fn call_status_ended_reason_and_descriptive_fields() {
    let spans = voice(
        vec![t("hi", "hello")],
        true,
        &[
            ("convolog.call.ended_reason", "User Hangup"),
            ("convolog.contact", "+15551234567"),
            ("convolog.user.id", "user-42"),
            ("convolog.intent", "order_status"),
            ("convolog.feedback", "thumbs_down"),
            ("convolog.direction", "inbound"),
        ],
    );
    let (row, _) = semantics_of(&spans);
    assert_eq!(row.derived_call_status, "Completed");
    assert_eq!(row.derived_ended_reason, "user_hangup");
    assert_eq!(row.contact, "********4567");
    assert!(
        !row.user_name.is_empty() && !row.user_name.contains("42"),
        "{}",
        row.user_name
    );
    assert_eq!(
        (
            row.intent.as_str(),
            row.feedback.as_str(),
            row.direction.as_str()
        ),
        ("order_status", "down", "inbound")
    );
    let missed = semantics_of(&voice(vec![], true, &[])).0;
    assert_eq!(missed.derived_call_status, "Missed");
    let live = semantics_of(&voice(vec![t("hi", "hello")], false, &[])).0;
    assert_eq!(live.derived_call_status, "Active");
}

#[test]
fn cost_from_prices_unless_stated() {
    let mut rules = Rules::default();
    rules.pricing.llm.insert(
        "gpt-4o".into(),
        super::rules::LlmPrice {
            input_per_million_tokens: 2.0,
            output_per_million_tokens: 8.0,
        },
    );
    rules.pricing.tts.insert(
        "sonic".into(),
        super::rules::TtsPrice {
            per_million_characters: 100.0,
        },
    );
    let spans = vec![
        span("llm")
            .id(2)
            .attr("gen_ai.operation.name", "chat")
            .attr("gen_ai.request.model", "gpt-4o-2024-08-06")
            .attr("gen_ai.usage.input_tokens", "1000")
            .attr("gen_ai.usage.output_tokens", "100")
            .build(),
        span("llm")
            .id(3)
            .at(10, 20)
            .attr("gen_ai.operation.name", "chat")
            .attr("gen_ai.request.model", "gpt-4o")
            .attr("gen_ai.usage.input_tokens", "1000")
            .attr("convolog.cost.usd", "0.5")
            .build(),
        span("tts")
            .id(4)
            .at(20, 30)
            .attr("gen_ai.operation.name", "tts")
            .attr("voice_id", "sonic")
            .attr("text", "0123456789")
            .build(),
    ];
    let row = sessionize("s", &spans, 1, 0, &rules).session;
    let expected_llm = 1000.0 * 2.0 / 1e6 + 100.0 * 8.0 / 1e6 + 0.5;
    assert!(
        (row.llm_cost_usd - expected_llm).abs() < 1e-12,
        "{}",
        row.llm_cost_usd
    );
    assert!((row.tts_cost_usd - 10.0 * 100.0 / 1e6).abs() < 1e-12);
    assert!((row.cost_usd - row.llm_cost_usd - row.tts_cost_usd).abs() < 1e-12);
}

#[test]
fn expiry_deadline_follows_the_channel_timeout() {
    let mut rules = Rules::default();
    rules.inactivity_timeout_seconds.insert("voice".into(), 60);
    let spans = voice(vec![t("hi", "hello")], false, &[]);
    let row = sessionize("s", &spans, 1, 0, &rules).session;
    assert_eq!(
        row.expires_at,
        unix_seconds(row.last_activity_unix_nano) + 60
    );
}
