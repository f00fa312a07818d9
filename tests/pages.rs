//! The conversation pages: driven in Chromium through WebDriver (tests/pages/drive_pages.py,
//! Debian's `chromium` and `chromium-driver`, Python selenium from the test venv) against a
//! real convolog and ClickHouse, with a real recording made by `espeak-ng` and `sox` and
//! served from another origin; and, without a browser, the keyed mode's key cookie, CSRF
//! guard and signed share links. The browser test is skipped only when its tools are missing
//! outside CI; in CI (`CI` set) a missing tool is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::session_fixtures::load_fixtures;
use common::*;
use convolog::config::{KeyConfig, TenantConfig};
use convolog::tenants::{hash_key, Scope};

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A tool the browser test needs, or None (after saying so) when it may be skipped.
fn tool(env: &str, name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os(env)
        .map(PathBuf::from)
        .or_else(|| on_path(name));
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {name} is missing: apt-get install -y {package}"
        );
        eprintln!("SKIPPED: no {name} on PATH (apt-get install -y {package})");
    }
    found
}

fn run(command: &mut Command) {
    let out = command.output().expect("the tool runs");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A spoken call: the session's words by espeak-ng, then silence to cover the whole call.
fn recording(dir: &Path) -> Vec<u8> {
    std::fs::create_dir_all(dir).expect("audio directory");
    let speech = dir.join("speech.wav");
    let call = dir.join("call.wav");
    run(Command::new("espeak-ng").arg("-w").arg(&speech).arg(
        "Hello, I need help with my booking. Sure, what is the booking reference? \
         It is B K 4 2. Booking BK42 is confirmed for Friday.",
    ));
    run(Command::new("sox")
        .arg(&speech)
        .arg(&call)
        .args(["pad", "0", "20"]));
    std::fs::read(&call).expect("recording written")
}

/// Serves `audio` at `/call.wav` on a port of its own (another origin than the pages), with
/// byte ranges as a recording store would answer them, so the player can seek.
async fn serve_recording(audio: Vec<u8>) -> String {
    let audio = std::sync::Arc::new(audio);
    let app = axum::Router::new().route(
        "/call.wav",
        axum::routing::get(move |headers: HeaderMap| {
            let audio = audio.clone();
            async move {
                let len = audio.len();
                let range = headers
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes="))
                    .and_then(|v| v.split_once('-'))
                    .and_then(|(from, to)| {
                        let from: usize = from.parse().ok()?;
                        let to: usize = to.parse().unwrap_or(len - 1).min(len - 1);
                        (from <= to).then_some((from, to))
                    });
                match range {
                    Some((from, to)) => (
                        StatusCode::PARTIAL_CONTENT,
                        [
                            (header::CONTENT_TYPE, "audio/wav".to_owned()),
                            (header::ACCEPT_RANGES, "bytes".to_owned()),
                            (header::CONTENT_RANGE, format!("bytes {from}-{to}/{len}")),
                        ],
                        audio[from..=to].to_vec(),
                    )
                        .into_response(),
                    None => (
                        [
                            (header::CONTENT_TYPE, "audio/wav"),
                            (header::ACCEPT_RANGES, "bytes"),
                        ],
                        audio.to_vec(),
                    )
                        .into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/call.wav")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_support_lead_finds_replays_and_annotates_a_call_in_a_browser() {
    let (Some(_), Some(chromedriver), Some(_), Some(_)) = (
        tool("CONVOLOG_TEST_CHROMIUM", "chromium", "chromium"),
        tool(
            "CONVOLOG_TEST_CHROMEDRIVER",
            "chromedriver",
            "chromium-driver",
        ),
        tool("CONVOLOG_TEST_ESPEAK", "espeak-ng", "espeak-ng"),
        tool("CONVOLOG_TEST_SOX", "sox", "sox"),
    ) else {
        return;
    };
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pages");
    let _ = std::fs::remove_dir_all(&target);
    let recording_url = serve_recording(recording(&target.join("audio"))).await;

    let t = TestApp::start("pages").await;
    // Five sessions of every kind (one of them s4: Skill Error, tool_error) ...
    load_fixtures(&t, anchor() - 3_600 * 1_000_000_000).await;
    // ... and a Pipecat call with its spans and its recording.
    let mut specs = pipecat_conversation("page-1", 1);
    let root = specs
        .iter_mut()
        .find(|s| s.name == "conversation")
        .expect("the conversation span");
    root.attributes
        .push(kv("convolog.recording_url", recording_url.as_str()));
    t.send_grpc(&specs, anchor(), 100).await;
    t.transcript_when("page-1", |v| {
        v["turns"].as_array().map(Vec::len) == Some(3) && v["recording_url"] == recording_url
    })
    .await;

    let started = Instant::now();
    let out = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/pages/drive_pages.py"
        ))
        .env("CONVOLOG_PAGES_URL", t.api_url(""))
        .env("CONVOLOG_PAGES_SHOTS", target.join("screenshots"))
        .env("CONVOLOG_PAGES_DOWNLOADS", target.join("downloads"))
        .env("CONVOLOG_TEST_CHROMEDRIVER", &chromedriver)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "the browser checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "browser test: {:.1} s (screenshots in {})",
        started.elapsed().as_secs_f64(),
        target.join("screenshots").display()
    );
    for page in ["list", "session"] {
        for width in [1400, 400] {
            let shot = target.join(format!("screenshots/{page}-{width}.png"));
            let png = std::fs::read(&shot).expect("screenshot kept");
            assert!(
                png.starts_with(b"\x89PNG") && png.len() > 20_000,
                "{shot:?}"
            );
        }
    }
    t.stop().await;
}

/// A reqwest client that keeps cookies the way a browser does (enough for these pages).
struct Browser {
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, response: &reqwest::Response) -> Vec<String> {
        let set: Vec<String> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for cookie in &set {
            let pair = cookie.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(n, _)| n != name);
                if !value.is_empty() {
                    self.cookies.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        set
    }

    async fn get(&mut self, url: &str) -> (u16, String) {
        let response = self
            .client
            .get(url)
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .expect("answers");
        self.keep(&response);
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)], origin: Option<&str>) -> u16 {
        let mut request = self
            .client
            .post(url)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).expect("form"));
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        let response = request.send().await.expect("answers");
        self.keep(&response);
        response.status().as_u16()
    }

    fn csrf(&self) -> String {
        self.cookies
            .iter()
            .find(|(n, _)| n == "convolog_csrf")
            .map(|(_, v)| v.clone())
            .expect("a CSRF cookie")
    }
}

#[tokio::test]
async fn with_keys_the_pages_keep_the_key_in_a_cookie_guard_writes_and_sign_share_links() {
    let key = "reader-key";
    let t = TestApp::start_with("pagekeys", |c| {
        c.tenants = vec![TenantConfig {
            name: "acme".into(),
            database: Some(fresh_database("pagekeys_acme")),
            keys: vec![KeyConfig {
                sha256: hash_key(key),
                scope: Scope::Read,
            }],
        }]
    })
    .await;
    load_fixtures(&t, anchor()).await;
    let mut browser = Browser::new();

    // No key: the page asks for one, and gives this browser a CSRF token.
    let (status, page) = browser.get(&t.api_url("/sessions/s1")).await;
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("name=\"key\""), "{page}");
    let csrf = browser.csrf();
    // A wrong key is refused; the key form without the token is refused.
    let form_url = t.api_url("/pages/key");
    let wrong = [
        ("csrf", csrf.as_str()),
        ("key", "nope"),
        ("next", "/sessions/s1"),
    ];
    assert_eq!(browser.post(&form_url, &wrong, None).await, 401);
    let no_token = [("csrf", "0"), ("key", key), ("next", "/sessions/s1")];
    assert_eq!(browser.post(&form_url, &no_token, None).await, 403);
    // The right key is kept in an HttpOnly, SameSite cookie and the page opens.
    let good = [
        ("csrf", csrf.as_str()),
        ("key", key),
        ("next", "/sessions/s1"),
    ];
    let response = browser
        .client
        .post(&form_url)
        .header(header::COOKIE, browser.cookie_header())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(good).expect("form"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[header::LOCATION], "/sessions/s1");
    let set = browser.keep(&response);
    let kept = set
        .iter()
        .find(|c| c.starts_with("convolog_key="))
        .expect("key cookie");
    assert!(
        kept.contains("HttpOnly") && kept.contains("SameSite=Strict"),
        "{kept}"
    );
    let (status, page) = browser.get(&t.api_url("/sessions/s1")).await;
    assert_eq!(status, 200, "{page}");
    let (status, _) = browser.get(&t.api_url("/sessions?outcome=Success")).await;
    assert_eq!(status, 200);
    // The cookie is for the pages: the API still wants the key in a header.
    assert_eq!(browser.get(&t.api_url("/v1/sessions/s1")).await.0, 401);

    // Writes need this browser's token and this site.
    let labels = t.api_url("/sessions/s1/annotations");
    fn add_vip(token: &str) -> [(&str, &str); 3] {
        [("csrf", token), ("action", "add_label"), ("label", "vip")]
    }
    let stale = add_vip("0123456789abcdef0123456789abcdef");
    assert_eq!(browser.post(&labels, &stale, None).await, 403);
    let good = add_vip(&csrf);
    let foreign = Some("http://evil.example");
    assert_eq!(browser.post(&labels, &good, foreign).await, 403);
    let (_, page) = browser.get(&t.api_url("/sessions/s1")).await;
    assert!(!page.contains("<span class=\"label\">vip"), "{page}");
    assert_eq!(browser.post(&labels, &good, None).await, 303);
    let (_, page) = browser.get(&t.api_url("/sessions/s1")).await;
    assert!(page.contains("<span class=\"label\">vip"), "{page}");

    // A signed read-only link: the page and its captions without a key, nothing to edit.
    let share = t.api_url("/sessions/s1/share");
    let response = browser
        .client
        .post(&share)
        .header(header::COOKIE, browser.cookie_header())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&days=7"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("body");
    let link = page
        .split("id=\"share-link\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page shows the link")
        .replace("&amp;", "&");
    let mut stranger = Browser::new();
    let (status, shared) = stranger.get(&t.api_url(&link)).await;
    assert_eq!(status, 200, "{shared}");
    assert!(shared.contains("read-only link"), "{shared}");
    assert!(
        !shared.contains("name=\"action\""),
        "a shared page offers edits: {shared}"
    );
    let captions = link.replacen("/sessions/s1?", "/sessions/s1/captions.vtt?", 1);
    assert_eq!(stranger.get(&t.api_url(&captions)).await.0, 200);
    // The link is for that session only, and cannot be altered.
    let other = link.replacen("/sessions/s1?", "/sessions/s2?", 1);
    assert_eq!(stranger.get(&t.api_url(&other)).await.0, 403);
    let tampered = format!("{}0", &link[..link.len() - 1]);
    assert_eq!(stranger.get(&t.api_url(&tampered)).await.0, 403);
    assert_eq!(stranger.get(&t.api_url("/sessions/s1")).await.0, 401);

    // Forgetting the key.
    assert_eq!(
        browser
            .post(&form_url, &[("csrf", csrf.as_str()), ("forget", "1")], None)
            .await,
        303
    );
    assert_eq!(browser.get(&t.api_url("/sessions/s1")).await.0, 401);
    t.stop().await;
}
