//! Contacts stay pseudonymous and can still be searched: only the masked contact and a keyed
//! pseudonym are derived, and a search by the full phone number or email address, in any
//! common spelling, finds the conversation through the pseudonym.

mod common;

use common::*;
use convolog::config::Secret;

fn with_contact(session: &str, trace: u64, contact: &str) -> Vec<SpanSpec> {
    let mut specs = pipecat_conversation(session, trace);
    specs[0]
        .attributes
        .push(kv("convolog.contact", contact.to_owned()));
    specs
}

async fn found(t: &TestApp, query: &str) -> Vec<String> {
    let (status, body) = get_json(t, &format!("/v1/sessions?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    let mut ids: Vec<String> = body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["session_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_full_phone_number_or_email_finds_its_conversation() {
    let t = TestApp::start_with("contacts", |config| {
        config.rules.contact_key = Secret::new("test-contact-key");
    })
    .await;
    let mut specs = with_contact("phone-call", 1, "+1 (555) 010-2345");
    specs.extend(with_contact("email-chat", 2, "Jane.Doe@Example.com"));
    specs.extend(with_contact("other-call", 3, "+44 20 7946 0000"));
    t.send_grpc(&specs, anchor(), 100).await;
    // Session rows are written after their contact rows.
    let derived = wait_until(async || {
        t.count("SELECT count() FROM session_contacts FINAL WHERE contact_pseudonym != ''")
            .await
            == 3
            && t.count("SELECT count() FROM sessions FINAL WHERE contact != ''")
                .await
                == 3
    })
    .await;
    assert!(derived, "three sessions with a contact pseudonym");

    // Shown masked; the number itself is in no derived table.
    let (_, summary) = get_json(&t, "/v1/sessions/phone-call").await;
    assert_eq!(summary["contact"], "*************2345");
    for sql in [
        "SELECT count() FROM sessions WHERE positionCaseInsensitive(contact, '010-2345') > 0",
        "SELECT count() FROM session_contacts WHERE positionCaseInsensitive(contact_pseudonym, '5550102345') > 0",
    ] {
        assert_eq!(t.count(sql).await, 0, "{sql}");
    }

    for query in [
        "contact=%2B15550102345",
        "contact=%2B1-555-010-2345",
        "contact=001%20555%20010%202345",
        "q=%2B1%20(555)%20010-2345",
        // Part of the masked contact still matches it.
        "contact=2345",
    ] {
        assert_eq!(found(&t, query).await, ["phone-call"], "{query}");
    }
    assert_eq!(
        found(&t, "contact=jane.doe%40example.com").await,
        ["email-chat"]
    );
    assert_eq!(found(&t, "q=JANE.DOE%40EXAMPLE.COM").await, ["email-chat"]);
    assert!(found(&t, "contact=%2B15550109999").await.is_empty());
    // Free text still searches the transcript as well.
    assert_eq!(found(&t, "q=booking").await.len(), 3);

    // A store that hashes with another key finds nothing: the pseudonym is keyed.
    let other_key =
        convolog::store::Store::new(&test_config(&t.database, &clickhouse_url()).clickhouse)
            .with_contact_key(Secret::new("rotated"));
    let mut p = convolog::query::Params::parse(Some("contact=%2B15550102345")).expect("params");
    let filter = convolog::query::session_filter(&mut p, 0).expect("filter");
    assert_eq!(other_key.count_sessions(&filter).await.expect("count"), 0);
    t.stop().await;
}
