//! The session page in a real browser (headless Chromium from Debian's `chromium` package):
//! what a person sees, and a screenshot at laptop size. Skipped only when Chromium is missing
//! outside CI; in CI (`CI` set) a missing Chromium is a failure.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("CONVOLOG_TEST_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

async fn run_chromium(binary: &PathBuf, args: &[String]) -> std::process::Output {
    let profile = std::env::temp_dir().join(format!(
        "convolog-chromium-{}-{}",
        std::process::id(),
        args.len()
    ));
    let mut command = tokio::process::Command::new(binary);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("chromium finishes within 90 s")
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    out
}

/// A PNG of `url` at laptop size, kept in the target directory for people to look at.
async fn screenshot(browser: &PathBuf, url: String, file: &str) -> Vec<u8> {
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(file);
    let _ = std::fs::remove_file(&shot);
    let out = run_chromium(
        browser,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1366,900".into(),
            url,
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{file} is not a PNG");
    eprintln!("screenshot: {}", shot.display());
    png
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_page_reads_well_in_a_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but Chromium is missing: apt-get install -y chromium"
        );
        eprintln!("SKIPPED: no chromium on PATH (apt-get install -y chromium)");
        return;
    };
    let t = TestApp::start("page").await;
    let specs = pipecat_conversation("page-1", 1);
    t.send_grpc(&specs, anchor(), 100).await;
    t.transcript_when("page-1", |v| v["turns"].as_array().map(Vec::len) == Some(3))
        .await;
    let client = reqwest::Client::new();
    for path in [
        "/v1/sessions/page-1/labels/vip",
        "/v1/sessions/page-1/labels/%3Cscript%3Ealert(1)",
    ] {
        let r = client.put(t.api_url(path)).send().await.expect("label");
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = client
        .put(t.api_url("/v1/sessions/page-1/flag"))
        .body(r#"{"reason": "tool failed <twice>"}"#)
        .send()
        .await
        .expect("flag");
    assert_eq!(r.status(), 200);

    let url = t.api_url("/sessions/page-1");
    let out = run_chromium(&browser, &["--dump-dom".into(), url.clone()]).await;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed: {}\n{dom}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What a person sees: who said what, when, how fast, what failed, what was cut off.
    for expected in [
        "<title>Session page-1 · convolog</title>",
        "Hello, I need help with my booking.",
        "Booking BK42 is confirmed for Friday.",
        "Turn 1",
        "Turn 3",
        "voice-to-voice <b>1400 ms</b>",
        "Tool lookup_booking — failed",
        "error: booking service timed out",
        "arguments: {\"ref\":\"BK42\"}",
        ">interrupted<",
        "Channel: <b>voice</b>",
        "Outcome: <b>Skill Error</b>",
        "State: <b>RESOLVED</b>",
        "Detected issues: <b>tool_error (<a href=\"#turn-2\">turn 2</a>)",
        "<span class=\"label\">vip</span>",
        "Flagged: tool failed &lt;twice&gt;",
        "<span class=\"label\">&lt;script&gt;alert(1)</span>",
        "href=\"/v1/sessions/page-1/transcript?format=vtt\"",
    ] {
        assert!(dom.contains(expected), "page lacks {expected:?}:\n{dom}");
    }
    assert!(
        !dom.contains("<script>alert"),
        "an injected tag became markup:\n{dom}"
    );
    let users = dom.matches("class=\"msg user\"").count();
    let agents = dom.matches("class=\"msg agent\"").count();
    assert_eq!((users, agents), (3, 3), "{dom}");
    assert_eq!(dom.matches("class=\"bars\"").count(), 3);

    // A screenshot at laptop size, kept for people to look at.
    let png = screenshot(&browser, url, "session-page.png").await;
    assert!(
        png.len() > 20_000,
        "suspiciously small screenshot: {} bytes",
        png.len()
    );

    // The list page links here, and keeps its filters on the next page.
    let list = t.api_url("/sessions?channel=voice&q=booking&sort=duration&limit=1&environment=");
    let out = run_chromium(&browser, &["--dump-dom".into(), list.clone()]).await;
    let dom = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "<title>Conversations · convolog</title>",
        "<a href=\"/sessions/page-1\">Hello, I need help with my booking.</a>",
        "<span class=\"label\">vip</span>",
        "1 interrupted",
        "1 tool errors",
        "value=\"booking\"",
    ] {
        assert!(
            dom.contains(expected),
            "list page lacks {expected:?}:\n{dom}"
        );
    }
    assert!(
        !dom.contains("<script>alert"),
        "an injected tag became markup:\n{dom}"
    );
    assert_eq!(t.status_of("/sessions?limit=0").await, 400);
    screenshot(&browser, list, "session-list.png").await;

    // Unknown sessions get a page too.
    let (status, _, page) = text_of(&t, "/sessions/nope").await;
    assert_eq!(status, 404);
    assert!(page.contains("No session <code>nope</code>"), "{page}");
    t.stop().await;
}
