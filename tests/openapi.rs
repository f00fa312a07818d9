//! The served `/openapi.json` is a valid OpenAPI 3.1 document, as checked by an independent
//! validator (openapi-spec-validator, from the test venv).

mod common;

use common::*;

#[tokio::test]
async fn the_served_document_validates_as_openapi_3_1() {
    let t = TestApp::start("openapi").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi/validate.py");
    // The app runs on this test's runtime, so the validator must not block it.
    let output = tokio::process::Command::new(python())
        .args([script, &t.api_url("/openapi.json")])
        .output()
        .await
        .expect("the Python validator runs");
    assert!(
        output.status.success(),
        "validation failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "3.1.0");
    t.stop().await;
}
