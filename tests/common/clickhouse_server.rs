//! The ClickHouse the integration tests talk to: CONVOLOG_TEST_CLICKHOUSE_URL when it is set
//! (scripts/test.sh sets it), else a private server started here with scripts/clickhouse.sh on
//! free ports, in its own directory. Without clickhouse-server installed, the tests that need
//! it are skipped with one line (`skip`).
//!
//! Test runners start many test processes (nextest one per test), so the private server
//! belongs to the runner, the parent of this process: the first test process starts it, the
//! others find it through a directory named after the runner's pid, and a small watcher
//! stops it and removes that directory when the runner exits.

use std::fs::{self, File};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/clickhouse.sh");

pub fn clickhouse_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("CONVOLOG_TEST_CLICKHOUSE_URL") {
        Ok(url) => url,
        Err(_) => private_server(),
    })
    .clone()
}

fn private_server() -> String {
    if !installed("clickhouse-server") {
        skip(
            "clickhouse-server is not installed and CONVOLOG_TEST_CLICKHOUSE_URL is not set \
             (scripts/test.sh installs and starts one)",
        );
    }
    let runner = std::os::unix::process::parent_id();
    let dir = std::env::temp_dir().join(format!("convolog-test-clickhouse-{runner}"));
    fs::create_dir_all(&dir).expect("creating the test ClickHouse directory");
    // One process at a time decides whether to start the server; the others wait here.
    let lock = File::create(dir.join("lock")).expect("creating the lock file");
    lock.lock().expect("locking the test ClickHouse directory");
    let url_file = dir.join("url");
    if let Ok(url) = fs::read_to_string(&url_file) {
        return url;
    }
    let url = start(&dir.join("server"));
    watch(runner, &dir);
    fs::write(&url_file, &url).expect("writing the test ClickHouse URL");
    url
}

/// Ends this test process with success after one line saying why. It is written past the
/// test harness's capture so the line shows; under `cargo test` it ends the whole test binary.
pub fn skip(reason: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
    std::process::exit(0);
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Starts clickhouse-server on three free consecutive ports (HTTP, native, interserver).
fn start(dir: &Path) -> String {
    for _ in 0..5 {
        let port = free_ports(3);
        let output = Command::new(SCRIPT)
            .args(["start", &dir.to_string_lossy(), &port.to_string()])
            .stdin(Stdio::null())
            // Its own process group, so nothing that stops this test's group stops the server.
            .process_group(0)
            .output()
            .expect("running scripts/clickhouse.sh");
        assert!(
            output.status.success(),
            "scripts/clickhouse.sh start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // No pid file means another server already answered on that port: not ours to use.
        if dir.join("pid").exists() {
            return format!("http://127.0.0.1:{port}");
        }
    }
    panic!("no free ports for a test ClickHouse after 5 tries");
}

/// The first of `count` consecutive free ports.
fn free_ports(count: u16) -> u16 {
    loop {
        let base = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("binding a free port")
            .port();
        let free = (0..count).all(|i| {
            base.checked_add(i)
                .is_some_and(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        if free {
            return base;
        }
    }
}

/// Stops the server and removes `dir` once the process `runner` is gone.
fn watch(runner: u32, dir: &Path) {
    let dir = dir.to_string_lossy();
    // Put in the background by a shell that exits at once, so it outlives this process.
    let watcher = format!(
        "(while kill -0 {runner} 2>/dev/null; do sleep 1; done; \
          '{SCRIPT}' stop '{dir}/server'; rm -rf '{dir}') >/dev/null 2>&1 &"
    );
    let status = Command::new("sh")
        .args(["-c", &watcher])
        .stdin(Stdio::null())
        .process_group(0)
        .status()
        .expect("starting the test ClickHouse watcher");
    assert!(status.success(), "starting the test ClickHouse watcher");
}
