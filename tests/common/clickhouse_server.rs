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
    let url = format!("http://127.0.0.1:{}", start(&dir.join("server"), None));
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

/// Starts clickhouse-server on three free consecutive ports (HTTP, native, interserver);
/// the HTTP port.
fn start(dir: &Path, timezone: Option<&str>) -> u16 {
    for _ in 0..5 {
        let port = free_ports(3);
        run_script(dir, Some(port), timezone);
        // No pid file means another server already answered on that port: not ours to use.
        if dir.join("pid").exists() {
            return port;
        }
    }
    panic!("no free ports for a test ClickHouse after 5 tries");
}

/// `scripts/clickhouse.sh start DIR PORT [TIMEZONE]` with a port, `stop DIR` without.
fn run_script(dir: &Path, port: Option<u16>, timezone: Option<&str>) {
    let dir = dir.to_string_lossy().into_owned();
    let args: Vec<String> = match port {
        Some(port) => ["start".into(), dir, port.to_string()]
            .into_iter()
            .chain(timezone.map(str::to_owned))
            .collect(),
        None => vec!["stop".into(), dir],
    };
    let output = Command::new(SCRIPT)
        .args(&args)
        .stdin(Stdio::null())
        // Its own process group, so nothing that stops this test's group stops the server.
        .process_group(0)
        .output()
        .expect("running scripts/clickhouse.sh");
    assert!(
        output.status.success(),
        "scripts/clickhouse.sh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A ClickHouse server of one test's own, for what the shared one must not do: be stopped
/// and started again (an outage), or run in another time zone. It goes when the test process
/// does.
pub struct OwnClickHouse {
    dir: std::path::PathBuf,
    port: u16,
    timezone: Option<String>,
    pub url: String,
}

impl OwnClickHouse {
    /// `settings` go into the default profile (e.g. `("max_block_size", "1024")`).
    pub fn start(name: &str, timezone: Option<&str>, settings: &[(&str, &str)]) -> OwnClickHouse {
        if !installed("clickhouse-server") {
            skip("this test runs its own ClickHouse, and clickhouse-server is not installed");
        }
        let dir = std::env::temp_dir().join(format!(
            "convolog-test-clickhouse-{name}-{}",
            std::process::id()
        ));
        if !settings.is_empty() {
            // Merged into users.xml by the server.
            let profile: String = settings
                .iter()
                .map(|(name, value)| format!("<{name}>{value}</{name}>"))
                .collect();
            let users_d = dir.join("server/users.d");
            fs::create_dir_all(&users_d).expect("creating users.d");
            fs::write(
                users_d.join("profile.xml"),
                format!("<yandex><profiles><default>{profile}</default></profiles></yandex>"),
            )
            .expect("writing the profile settings");
        }
        let port = start(&dir.join("server"), timezone);
        watch(std::process::id(), &dir);
        OwnClickHouse {
            dir,
            port,
            timezone: timezone.map(str::to_owned),
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Stops the server; returns once it is gone.
    pub fn stop(&self) {
        run_script(&self.dir.join("server"), None, None);
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(),
            "ClickHouse still listens on {} after it was stopped",
            self.port
        );
    }

    /// Kills the server (SIGKILL: at once, where a clean stop may take a while under load);
    /// returns once it is gone.
    pub fn kill(&self) {
        let pid_file = self.dir.join("server/pid");
        let pid = fs::read_to_string(&pid_file).expect("the server's pid file");
        let pid = pid.trim();
        let signal = |args: &[&str]| {
            Command::new("kill")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        assert!(signal(&["-9", pid]), "killing ClickHouse ({pid})");
        while signal(&["-0", pid]) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        fs::remove_file(pid_file).expect("removing the pid file");
    }

    /// Starts it again on the same port, with the same data.
    pub fn restart(&self) {
        run_script(
            &self.dir.join("server"),
            Some(self.port),
            self.timezone.as_deref(),
        );
    }
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
    let server = dir.join("server");
    watch_with(runner, dir, SCRIPT, &server);
}

/// Runs `script stop stopped` and removes `dir` once the process `runner` is gone.
fn watch_with(runner: u32, dir: &Path, script: &str, stopped: &Path) {
    let dir = dir.to_string_lossy();
    let stopped = stopped.to_string_lossy();
    // Put in the background by a shell that exits at once, so it outlives this process.
    let watcher = format!(
        "(while kill -0 {runner} 2>/dev/null; do sleep 1; done; \
          '{script}' stop '{stopped}'; rm -rf '{dir}') >/dev/null 2>&1 &"
    );
    let status = Command::new("sh")
        .args(["-c", &watcher])
        .stdin(Stdio::null())
        .process_group(0)
        .status()
        .expect("starting the test ClickHouse watcher");
    assert!(status.success(), "starting the test ClickHouse watcher");
}

const CLUSTER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh");

/// How the two servers of a [`LocalCluster`] share the data.
#[derive(Clone, Copy, Debug)]
pub enum Topology {
    /// One shard of two replicas: each server holds every row.
    Replicas,
    /// Two shards of one replica: each server holds its part of the rows.
    Shards,
}

/// A ClickHouse cluster of one test's own (scripts/cluster.sh): ZooKeeper and two servers
/// in `topology`. It goes when the test process does.
pub struct LocalCluster {
    dir: std::path::PathBuf,
    /// The HTTP URL of each server.
    pub urls: [String; 2],
    ports: [u16; 2],
}

impl LocalCluster {
    /// The cluster's name in the servers' configuration.
    pub const NAME: &str = "convolog";

    pub fn start(name: &str, topology: Topology) -> LocalCluster {
        if !installed("clickhouse-server") {
            skip("this test runs a ClickHouse cluster, and clickhouse-server is not installed");
        }
        let dir = std::env::temp_dir().join(format!(
            "convolog-test-cluster-{name}-{}",
            std::process::id()
        ));
        // Clusters of tests running at once take their ports one after the other, so no two
        // choose overlapping ports before either listens.
        let lock = File::create(std::env::temp_dir().join("convolog-test-cluster.lock"))
            .expect("creating the cluster lock file");
        lock.lock().expect("locking the cluster lock file");
        // ZooKeeper, then HTTP, native and interserver ports of each server.
        let base = cluster_ports();
        let status = Command::new(CLUSTER_SCRIPT)
            .arg("start")
            .arg(&dir)
            .arg(base.to_string())
            .arg("--topology")
            .arg(match topology {
                Topology::Replicas => "replicas",
                Topology::Shards => "shards",
            })
            .stdout(Stdio::null())
            .stdin(Stdio::null())
            // Its own process group, so nothing that stops this test's group stops the servers.
            .process_group(0)
            .status()
            .expect("running scripts/cluster.sh");
        assert!(status.success(), "scripts/cluster.sh start failed");
        drop(lock);
        watch_with(std::process::id(), &dir, CLUSTER_SCRIPT, &dir);
        let ports = [base + 1, base + 4];
        LocalCluster {
            dir,
            urls: ports.map(|port| format!("http://127.0.0.1:{port}")),
            ports,
        }
    }

    fn server_dir(&self, server: usize) -> std::path::PathBuf {
        self.dir.join(format!("ch{}", server + 1))
    }

    /// Stops server `server` (0 or 1); returns once it is gone.
    pub fn stop(&self, server: usize) {
        run_script(&self.server_dir(server), None, None);
    }

    /// Starts server `server` again, with its data.
    pub fn restart(&self, server: usize) {
        run_script(&self.server_dir(server), Some(self.ports[server]), None);
    }
}

/// The first of 7 consecutive free ports below the ephemeral range (32768 and up on Linux),
/// so that no outgoing connection takes one of them before the servers listen: while they
/// start, ZooKeeper and the servers connect to each other.
fn cluster_ports() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id();
    for attempt in 0..100u32 {
        let base = 20_000 + (seed.wrapping_add(attempt.wrapping_mul(7919)) % 12_000) as u16;
        if (0..7).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no 7 free consecutive ports for a test cluster");
}
