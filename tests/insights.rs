//! The knowledge-gaps report over simulated traffic: the simulator plants questions its
//! knowledge base answers badly (low confidence, a thumbs-down, no citation), and the report
//! finds them first.

mod common;

use std::collections::BTreeSet;

use clap::Parser;
use common::{get_json, wait_until, TestApp};
use convolog_simulate::{run, SimulateArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SimulateArgs,
}

const PLANTED: [&str; 3] = [
    "do you ship to iceland",
    "can i split the payment between a gift card and my credit card",
    "what does the extended warranty cover",
];

#[tokio::test]
async fn the_planted_weak_questions_come_first() {
    let t = TestApp::start("gaps").await;
    let cli = Cli::parse_from([
        "simulate",
        "--endpoint",
        &t.grpc_url(),
        "--count",
        "60",
        "--rate",
        "0",
        "--seed",
        "7",
        "--concurrency",
        "4",
        "--session-prefix",
        "gap",
        "--weak-rate",
        "0.6",
    ]);
    let report = run(&cli.args)
        .await
        .expect("the simulator sends its traffic");
    let derived = wait_until(async || {
        t.count("SELECT toUInt64(sum(span_count)) FROM sessions FINAL WHERE deleted = 0")
            .await
            == report.spans
    })
    .await;
    assert!(derived, "every span is in a derived session");

    let (status, body) = get_json(&t, "/v1/insights/gaps?limit=5&examples=2").await;
    assert_eq!(status, 200, "{body}");
    let gaps = body["gaps"].as_array().expect("gaps");
    let top: BTreeSet<&str> = gaps
        .iter()
        .take(3)
        .map(|g| g["question_key"].as_str().expect("key"))
        .collect();
    assert_eq!(top, BTreeSet::from(PLANTED), "{body:#}");
    let gap = |key: &str| {
        gaps.iter()
            .find(|g| g["question_key"] == key)
            .expect("planted gap")
    };
    let low = gap(PLANTED[0]);
    assert!(low["weak"].as_u64() > Some(1), "{low}");
    assert_eq!(low["low_confidence"], low["weak"]);
    let down = gap(PLANTED[1]);
    assert_eq!(down["thumbs_down"], down["weak"]);
    let uncited = gap(PLANTED[2]);
    assert_eq!(uncited["uncited"], uncited["weak"]);
    assert_eq!(
        uncited["question"],
        "What does the extended warranty cover?"
    );

    // Examples: the newest weak answers, linked to their conversations.
    let examples = down["examples"].as_array().expect("examples");
    assert_eq!(examples.len(), 2);
    assert!(examples[0]["time"].as_str() >= examples[1]["time"].as_str());
    let example = &examples[0];
    assert_eq!(example["reasons"], serde_json::json!(["thumbs_down"]));
    let session = example["session_id"].as_str().expect("session id");
    assert!(session.starts_with("gap-"));
    assert_eq!(
        example["links"]["page"],
        format!("/sessions/{session}").as_str()
    );

    // The transcript shows the rating and the citations under that reply.
    let (_, transcript) = get_json(&t, &format!("/v1/sessions/{session}/transcript")).await;
    let turn = example["turn_number"].clone();
    let reply = transcript["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .rfind(|m| m["turn_number"] == turn && m["speaker"] == "agent")
        .expect("the rated reply");
    assert_eq!(reply["feedback"], "down");
    assert!(!reply["citations"].as_array().expect("citations").is_empty());

    // The list's filters select the sessions the report covers.
    let (_, livekit) = get_json(&t, "/v1/insights/gaps?framework=livekit&examples=20").await;
    let sessions: BTreeSet<String> = livekit["gaps"]
        .as_array()
        .expect("gaps")
        .iter()
        .flat_map(|g| g["examples"].as_array().cloned().unwrap_or_default())
        .map(|e| e["session_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!sessions.is_empty());
    for session in &sessions {
        let (_, summary) = get_json(&t, &format!("/v1/sessions/{session}")).await;
        assert_eq!(summary["framework"], "livekit", "{session}");
    }
    let (status, _) = get_json(&t, "/v1/insights/gaps?low_confidence=7").await;
    assert_eq!(status, 400);
    t.stop().await;
}
