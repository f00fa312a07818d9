//! `convolog doctor`: checks a configuration against the machine and the ClickHouse it will
//! run with (server reachable and recent enough, each tenant's schema, listen ports free, keys
//! and tenants' databases sound) and says what is wrong in plain words. It changes nothing.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use crate::config::Config;
use crate::store::{ClusterLayout, Store, MIGRATIONS};
use crate::tenants::{hash_key, Scope};

/// The oldest ClickHouse the schema and queries are written for (Debian's).
const OLDEST_CLICKHOUSE: (u32, u32) = (18, 16);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    /// Works, but probably not what was meant, or needs a step first.
    Warning,
    /// convolog will not work like this.
    Problem,
}

/// One thing checked and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub verdict: Verdict,
    /// What was checked: a configuration field or a part of the world.
    pub subject: String,
    pub detail: String,
}

impl Finding {
    fn new(verdict: Verdict, subject: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            verdict,
            subject: subject.into(),
            detail: detail.into(),
        }
    }
}

/// Everything doctor found, in the order checked.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn count(&self, verdict: Verdict) -> usize {
        self.findings
            .iter()
            .filter(|f| f.verdict == verdict)
            .count()
    }

    pub fn has_problems(&self) -> bool {
        self.count(Verdict::Problem) > 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .findings
            .iter()
            .map(|x| x.subject.len())
            .max()
            .unwrap_or(0);
        for finding in &self.findings {
            let verdict = match finding.verdict {
                Verdict::Ok => "ok",
                Verdict::Warning => "warning",
                Verdict::Problem => "PROBLEM",
            };
            writeln!(
                f,
                "{verdict:<8} {:<width$}  {}",
                finding.subject, finding.detail
            )?;
        }
        let (problems, warnings) = (self.count(Verdict::Problem), self.count(Verdict::Warning));
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        writeln!(
            f,
            "{problems} problem{}, {warnings} warning{}",
            plural(problems),
            plural(warnings)
        )
    }
}

/// Loads the configuration (the file, then `CONVOLOG_*` variables, as `serve` does) and, if
/// it is valid, checks it.
pub async fn run(file: Option<&Path>) -> Report {
    let source = file.map_or("defaults and CONVOLOG_* variables".into(), |p| {
        p.display().to_string()
    });
    match Config::load(file) {
        Ok(config) => {
            let mut report = check(&config).await;
            let loaded = Finding::new(Verdict::Ok, "configuration", format!("{source} is valid"));
            report.findings.insert(0, loaded);
            report
        }
        Err(err) => Report {
            findings: vec![Finding::new(
                Verdict::Problem,
                "configuration",
                err.to_string(),
            )],
        },
    }
}

/// Runs every check on a configuration that loaded and validated.
pub async fn check(config: &Config) -> Report {
    let mut findings = Vec::new();
    findings.extend(check_tenants(config));
    findings.extend(check_listeners(config));
    findings.extend(check_clickhouse(config).await);
    Report { findings }
}

/// Keys and databases: what validation at start lets through but is still wrong.
pub fn check_tenants(config: &Config) -> Vec<Finding> {
    let mut findings = Vec::new();
    if config.tenants.is_empty() {
        findings.push(Finding::new(
            Verdict::Ok,
            "tenants",
            format!(
                "none configured: one tenant (database {}) serves clients on this machine only, without keys",
                config.clickhouse.database
            ),
        ));
        return findings;
    }
    let empty_key = hash_key("");
    let mut by_database: HashMap<String, Vec<&str>> = HashMap::new();
    for tenant in &config.tenants {
        let subject = format!("tenant {}", tenant.name);
        let database = tenant.database(&config.clickhouse.database);
        by_database
            .entry(database.clone())
            .or_default()
            .push(&tenant.name);
        if tenant
            .keys
            .iter()
            .any(|k| k.sha256.eq_ignore_ascii_case(&empty_key))
        {
            findings.push(Finding::new(
                Verdict::Problem,
                &subject,
                "a key's sha256 is the hash of an empty key: hash the key itself (echo -n KEY | convolog hash-key)",
            ));
        }
        let has = |scope: Scope| tenant.keys.iter().any(|k| k.scope == scope);
        let mut missing = Vec::new();
        if !has(Scope::Ingest) {
            missing.push("no ingest key: nobody can send it spans");
        }
        if !has(Scope::Read) && !has(Scope::Admin) {
            missing.push("no read or admin key: nobody can read its conversations");
        }
        if missing.is_empty() {
            findings.push(Finding::new(
                Verdict::Ok,
                &subject,
                format!("{} key(s), database {database}", tenant.keys.len()),
            ));
        } else {
            findings.push(Finding::new(Verdict::Warning, &subject, missing.join("; ")));
        }
    }
    let mut shared: Vec<(String, Vec<&str>)> = by_database
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .collect();
    shared.sort();
    for (database, names) in shared {
        findings.push(Finding::new(
            Verdict::Problem,
            "tenants",
            format!(
                "tenants {} share database {database}: each would read and delete the others' conversations; give each its own `database`",
                names.join(", ")
            ),
        ));
    }
    findings
}

/// Each listen address: free, distinct, and reachable by the clients it will let in.
pub fn check_listeners(config: &Config) -> Vec<Finding> {
    let listen = &config.listen;
    let all = [
        ("listen.grpc", "OTLP/gRPC", listen.grpc),
        ("listen.http", "OTLP/HTTP", listen.http),
        ("listen.api", "API", listen.api),
    ];
    let mut findings = Vec::new();
    for (i, (field, what, addr)) in all.iter().enumerate() {
        if let Some((other, _, _)) = all[..i]
            .iter()
            .find(|(_, _, earlier)| same_port(*earlier, *addr))
        {
            findings.push(Finding::new(
                Verdict::Problem,
                *field,
                format!("{addr} is also {other}: each listener needs a port of its own"),
            ));
            continue;
        }
        findings.push(match std::net::TcpListener::bind(addr) {
            Ok(_) if config.tenants.is_empty() && !addr.ip().is_loopback() => Finding::new(
                Verdict::Warning,
                *field,
                format!(
                    "{what} on {addr} is free, but with no tenants configured only clients on this machine are let in; configure [[tenants]] keys for others"
                ),
            ),
            Ok(_) => Finding::new(Verdict::Ok, *field, format!("{what} on {addr} is free")),
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => Finding::new(
                Verdict::Problem,
                *field,
                format!("{addr} is in use by another program (a convolog already running?)"),
            ),
            Err(err) if err.kind() == std::io::ErrorKind::AddrNotAvailable => Finding::new(
                Verdict::Problem,
                *field,
                format!("{addr} is not an address of this machine"),
            ),
            Err(err) => Finding::new(
                Verdict::Problem,
                *field,
                format!("cannot listen on {addr}: {err}"),
            ),
        });
    }
    findings
}

/// Two addresses that cannot both be bound: the same port on the same or a wildcard address.
fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The server answers, is recent enough, and each tenant's schema matches this convolog.
async fn check_clickhouse(config: &Config) -> Vec<Finding> {
    let url = &config.clickhouse.url;
    let tenants = match config.tenant_clickhouse(None) {
        Ok(tenants) => tenants,
        Err(err) => return vec![Finding::new(Verdict::Problem, "tenants", err.to_string())],
    };
    let server = Store::new(&config.clickhouse);
    let version = match server.server_version().await {
        Ok(version) => version,
        Err(err) => {
            return vec![Finding::new(
                Verdict::Problem,
                "clickhouse",
                format!("cannot reach ClickHouse at {url} (is it running, and are clickhouse.url, user and password right?): {err}"),
            )]
        }
    };
    let mut findings = vec![version_finding(url, &version)];
    if let Some(cluster) = server.cluster() {
        findings.push(match server.cluster_layout(cluster).await {
            Ok(layout) => cluster_finding(cluster, layout),
            Err(err) => Finding::new(
                Verdict::Problem,
                "clickhouse.cluster",
                format!("cannot read the cluster {cluster}: {err}"),
            ),
        });
    }
    for clickhouse in tenants {
        let store = Store::new(&clickhouse);
        let subject = format!("schema {}", clickhouse.database);
        findings.push(match store.applied_migrations().await {
            Ok(applied) => schema_finding(subject, &clickhouse.database, applied.as_deref()),
            Err(err) => Finding::new(
                Verdict::Problem,
                subject,
                format!("cannot read its schema version: {err}"),
            ),
        });
    }
    findings
}

/// The cluster is defined on the server convolog talks to, with the macros its tables need.
fn cluster_finding(cluster: &str, layout: Option<ClusterLayout>) -> Finding {
    let subject = "clickhouse.cluster";
    let Some(layout) = layout else {
        return Finding::new(
            Verdict::Problem,
            subject,
            format!("the server has no cluster {cluster} in its remote_servers"),
        );
    };
    if layout.shard.is_empty() || layout.replica.is_empty() {
        return Finding::new(
            Verdict::Problem,
            subject,
            format!("the server defines no `shard` and `replica` macros, which the Replicated tables of cluster {cluster} need"),
        );
    }
    Finding::new(
        Verdict::Ok,
        subject,
        format!(
            "cluster {cluster}: {} shard(s), {} server(s); this one is shard {} replica {}",
            layout.shards, layout.servers, layout.shard, layout.replica
        ),
    )
}

fn version_finding(url: &str, version: &str) -> Finding {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let major_minor = match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => Some((major, minor)),
        _ => None,
    };
    match major_minor {
        Some(found) if found < OLDEST_CLICKHOUSE => Finding::new(
            Verdict::Problem,
            "clickhouse",
            format!(
                "ClickHouse {version} at {url} is older than {}.{}, the oldest convolog works with",
                OLDEST_CLICKHOUSE.0, OLDEST_CLICKHOUSE.1
            ),
        ),
        Some(_) => Finding::new(
            Verdict::Ok,
            "clickhouse",
            format!("ClickHouse {version} answers at {url}"),
        ),
        None => Finding::new(
            Verdict::Warning,
            "clickhouse",
            format!("ClickHouse at {url} answers with a version convolog cannot read: {version:?}"),
        ),
    }
}

/// Compares the migrations a database has (None: no schema yet) with this convolog's.
fn schema_finding(subject: String, database: &str, applied: Option<&[u32]>) -> Finding {
    let current = MIGRATIONS.last().map_or(0, |m| m.0);
    let Some(applied) = applied else {
        return Finding::new(
            Verdict::Warning,
            subject,
            format!(
                "database {database} has no convolog schema yet; `convolog serve` or `convolog migrate` creates it"
            ),
        );
    };
    let unknown: Vec<String> = applied
        .iter()
        .filter(|v| !MIGRATIONS.iter().any(|m| m.0 == **v))
        .map(u32::to_string)
        .collect();
    if !unknown.is_empty() {
        return Finding::new(
            Verdict::Problem,
            subject,
            format!(
                "has schema version(s) {} that this convolog does not know (it knows up to {current}): a newer convolog wrote it; upgrade this one",
                unknown.join(", ")
            ),
        );
    }
    let missing: Vec<String> = MIGRATIONS
        .iter()
        .filter(|m| !applied.contains(&m.0))
        .map(|m| m.0.to_string())
        .collect();
    if missing.is_empty() {
        Finding::new(
            Verdict::Ok,
            subject,
            format!("schema version {current}, current"),
        )
    } else {
        Finding::new(
            Verdict::Warning,
            subject,
            format!(
                "schema lacks version(s) {}; `convolog serve` or `convolog migrate` applies them",
                missing.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KeyConfig, TenantConfig};

    fn tenant(name: &str, database: Option<&str>, keys: &[(&str, Scope)]) -> TenantConfig {
        TenantConfig {
            name: name.into(),
            database: database.map(str::to_owned),
            keys: keys
                .iter()
                .map(|(key, scope)| KeyConfig {
                    sha256: hash_key(key),
                    scope: *scope,
                })
                .collect(),
        }
    }

    fn verdicts(findings: &[Finding]) -> Vec<(Verdict, &str)> {
        findings
            .iter()
            .map(|f| (f.verdict, f.subject.as_str()))
            .collect()
    }

    #[test]
    fn tenants_sharing_a_database_are_a_problem() {
        let config = Config {
            tenants: vec![
                tenant(
                    "acme",
                    Some("shared"),
                    &[("a", Scope::Ingest), ("b", Scope::Read)],
                ),
                tenant(
                    "bolt",
                    Some("shared"),
                    &[("c", Scope::Ingest), ("d", Scope::Admin)],
                ),
                tenant("core", None, &[("e", Scope::Ingest), ("f", Scope::Read)]),
            ],
            ..Config::default()
        };
        let findings = check_tenants(&config);
        assert_eq!(
            verdicts(&findings),
            [
                (Verdict::Ok, "tenant acme"),
                (Verdict::Ok, "tenant bolt"),
                (Verdict::Ok, "tenant core"),
                (Verdict::Problem, "tenants"),
            ]
        );
        assert!(findings[3]
            .detail
            .contains("acme, bolt share database shared"));
    }

    #[test]
    fn keys_missing_a_scope_or_hashing_nothing_are_named() {
        let config = Config {
            tenants: vec![tenant("acme", None, &[("", Scope::Ingest)])],
            ..Config::default()
        };
        let findings = check_tenants(&config);
        assert_eq!(
            verdicts(&findings),
            [
                (Verdict::Problem, "tenant acme"),
                (Verdict::Warning, "tenant acme")
            ]
        );
        assert!(findings[0].detail.contains("empty key"));
        assert!(findings[1].detail.contains("no read or admin key"));
    }

    #[test]
    fn listeners_on_one_port_or_a_busy_one_are_problems() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut config = Config::default();
        config.listen.grpc = busy.local_addr().expect("addr");
        config.listen.http = "127.0.0.1:0".parse().expect("addr");
        config.listen.api = "0.0.0.0:0".parse().expect("addr");
        let findings = check_listeners(&config);
        assert_eq!(
            verdicts(&findings),
            [
                (Verdict::Problem, "listen.grpc"),
                (Verdict::Ok, "listen.http"),
                (Verdict::Warning, "listen.api"),
            ]
        );
        assert!(findings[0].detail.contains("in use"));

        config.listen.grpc = "0.0.0.0:14317".parse().expect("addr");
        config.listen.http = "127.0.0.1:14317".parse().expect("addr");
        let findings = check_listeners(&config);
        assert_eq!(findings[1].verdict, Verdict::Problem);
        assert!(findings[1].detail.contains("also listen.grpc"));
    }

    #[test]
    fn versions_and_schemas_are_judged() {
        assert_eq!(version_finding("u", "18.16.1").verdict, Verdict::Ok);
        assert_eq!(version_finding("u", "24.8.4.13").verdict, Verdict::Ok);
        assert_eq!(version_finding("u", "1.1.54390").verdict, Verdict::Problem);
        assert_eq!(version_finding("u", "banana").verdict, Verdict::Warning);

        let all: Vec<u32> = MIGRATIONS.iter().map(|m| m.0).collect();
        let schema = |applied: Option<&[u32]>| schema_finding("s".into(), "db", applied).verdict;
        assert_eq!(schema(None), Verdict::Warning);
        assert_eq!(schema(Some(&all)), Verdict::Ok);
        assert_eq!(schema(Some(&all[..1])), Verdict::Warning);
        let newer = [all.clone(), vec![9999]].concat();
        assert_eq!(schema(Some(&newer)), Verdict::Problem);
    }

    #[test]
    fn report_counts_and_renders() {
        let report = Report {
            findings: vec![
                Finding::new(Verdict::Ok, "clickhouse", "fine"),
                Finding::new(Verdict::Problem, "listen.api", "busy"),
            ],
        };
        assert!(report.has_problems());
        let text = report.to_string();
        assert!(text.contains("PROBLEM  listen.api  busy"), "{text}");
        assert!(text.ends_with("1 problem, 0 warnings\n"), "{text}");
    }
}
