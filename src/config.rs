//! One configuration, read from a TOML file (optional) and then `CONVOLOG_*` environment
//! variables, validated once at start. The commented example at
//! `config/convolog.example.toml` documents every field.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::sessionize::Rules;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {name}={value:?}: {why}")]
    Env {
        name: &'static str,
        value: String,
        why: String,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: Listen,
    pub http: Http,
    pub clickhouse: ClickHouse,
    pub ingest: Ingest,
    pub sessionize: Sessionize,
    /// Session semantics: inactivity timeouts, detected-issue thresholds, budgets, prices.
    pub rules: Rules,
    pub retention: Retention,
    /// Tenants and their API keys. None: one tenant (database `clickhouse.database`) serving
    /// loopback clients only, without keys.
    pub tenants: Vec<TenantConfig>,
    pub log: Log,
}

/// One tenant: its own database, and the hashes of its keys.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Letters, digits and underscores.
    pub name: String,
    /// Defaults to `<clickhouse.database>_<name>`.
    #[serde(default)]
    pub database: Option<String>,
    pub keys: Vec<KeyConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Hex SHA-256 of the key (`convolog hash-key`): the key itself is never stored.
    pub sha256: String,
    /// `ingest` (send spans), `read` (read, label, flag) or `admin` (read and delete).
    pub scope: crate::tenants::Scope,
}

impl TenantConfig {
    pub fn database(&self, base: &str) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| format!("{base}_{}", self.name))
    }
}

/// How long data is kept, in days; 0 keeps it forever. Removal drops whole partitions
/// (spans by day, transcripts by month), checked hourly.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Spans, log records and the transcript (turns, messages, tool calls, interruptions,
    /// issues).
    pub transcript_days: u32,
    /// Session summaries; at least `transcript_days` when both are set.
    pub sessions_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// OTLP/gRPC receiver (TraceService/Export and LogsService/Export).
    pub grpc: SocketAddr,
    /// OTLP/HTTP receiver (`POST /v1/traces`).
    pub http: SocketAddr,
    /// Read API (`/v1/sessions/...`, `/healthz`).
    pub api: SocketAddr,
}

/// Limits of the two HTTP listeners (OTLP/HTTP and the API), so that slow or idle clients
/// cannot hold connections and memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Open connections per listener; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// A client must send a request's headers within this time (HTTP/1), and the next
    /// request's headers within this time on a kept-alive connection.
    pub header_timeout_ms: u64,
    /// A request body must arrive within this time, however steadily it trickles.
    pub body_timeout_ms: u64,
    /// A connection on which nothing is read or written for this long is closed: an idle
    /// client, or one that stopped sending a request or reading a response (an export).
    pub idle_timeout_ms: u64,
    /// With no tenants (no keys): the `Host` names requests may carry, besides loopback
    /// addresses, which are always accepted. Anything else is refused, so that a web page
    /// cannot reach convolog through a browser on this machine (DNS rebinding).
    pub open_hosts: Vec<String>,
    /// With tenants (keys): whether `/metrics` and `/readyz` answer without a key. Off, they
    /// want a key with the read or admin scope, like the rest of the API.
    pub public_status: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouse {
    /// HTTP interface of the server, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// Created by `convolog migrate` (and by `serve` at start) if missing.
    pub database: String,
    pub user: String,
    pub password: Secret,
    /// Per-request timeout for inserts and queries. ClickHouse is told the same limit
    /// (`max_execution_time`, in whole seconds), so a query convolog gave up on stops too.
    pub timeout_ms: u64,
    /// Memory one query may use on the server (`max_memory_usage`); 0 leaves the server's.
    pub max_query_memory_bytes: u64,
    /// Exports that may stream at once per tenant; one more answers 503 (retry later).
    pub max_concurrent_exports: usize,
    /// How long one export's query may run on the server.
    pub export_max_seconds: u64,
    /// A cluster named in the servers' `remote_servers`: the schema is made ON CLUSTER with
    /// Replicated tables and Distributed ones (README, "Running on a ClickHouse cluster").
    /// Empty: one server.
    pub cluster: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ingest {
    /// Largest accepted request body after decompression, in bytes (gRPC and HTTP).
    pub max_request_bytes: usize,
    /// Hard cap on spans (and log records) received but not yet stored. A request that does not fit is
    /// refused with a retryable status (gRPC UNAVAILABLE, HTTP 503 + Retry-After).
    pub max_pending_spans: usize,
    /// Hard cap on the memory those spans take, in bytes, as converted (a request's resource
    /// and scope counted once). A request is first checked against it by its size as
    /// received, before it is decoded; one larger than the cap is refused for good.
    pub max_pending_bytes: usize,
    /// How long a request may wait for room under `max_pending_spans` and
    /// `max_pending_bytes` before it is refused.
    pub queue_wait_ms: u64,
    /// A batch is written to ClickHouse at this many spans... Each insert is a part that
    /// ClickHouse writes and later merges, so few large inserts cost it far less CPU per span
    /// than many small ones (README, "Where ClickHouse's CPU goes").
    pub batch_max_spans: usize,
    /// ...or after this long, whichever comes first...
    pub batch_max_wait_ms: u64,
    /// ...or, at this many spans or more, as soon as no other request is on its way to join
    /// it: clients keep a bounded number of exports in flight and wait for the answers
    /// before sending more, so waiting on would only add latency. The minimum keeps sparse
    /// traffic from becoming an insert per request (`batch_max_spans`: always wait).
    pub batch_min_spans: usize,
    /// Span inserts running at once. While all are running, no new batch is taken, which
    /// pushes back on the receivers and lets the next batch grow: with one, the requests that
    /// arrive during an insert make the next one (README "One insert at a time").
    pub max_inserts_in_flight: usize,
    /// Longer attribute values are cut (on a character boundary) and the client told.
    pub max_attribute_value_bytes: usize,
    /// The same for attributes that hold an LLM call's whole context (Pipecat's `input`,
    /// `gen_ai.input.messages`, OpenInference's `input.value`): tool calls and the played
    /// part of interrupted replies are read from them, and only a whole context can be read.
    pub max_context_value_bytes: usize,
    /// Also the limit for each event's and each link's attributes; what is over it is
    /// dropped and the client told.
    pub max_attributes_per_span: usize,
    pub max_events_per_span: usize,
    /// Longer span and event names, attribute keys, trace states, and scope names and
    /// versions are cut and the client told.
    pub max_name_bytes: usize,
    /// Longer span status messages are cut and the client told.
    pub max_status_message_bytes: usize,
    /// A request's resource is stored with each of its spans: attributes past this many, or
    /// past this many bytes (keys and values, each value first cut to
    /// `max_attribute_value_bytes`), are dropped and the client told.
    pub max_resource_attributes: usize,
    pub max_resource_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sessionize {
    /// Changed traces are collected this long before their sessions are re-derived, so a
    /// burst of spans from one conversation costs one pass; counted from the insert of the
    /// oldest span not derived yet, and ended early once the spans held take half of
    /// `max_pending_bytes`, so the writer does not wait out the quiet period.
    pub debounce_ms: u64,
    /// Upper bound on traces re-derived in one pass (bounds memory).
    pub max_traces_per_pass: usize,
    /// Memory (bytes, per tenant) for the spans of recent conversations, kept so their
    /// sessions are derived again without reading the spans back from ClickHouse. Past it,
    /// the least recently derived conversations are forgotten and read back if they resume.
    /// What another convolog process stored is found in ClickHouse at each pass, so several
    /// processes on one database keep theirs.
    pub cache_max_bytes: usize,
    /// How often each process looks for stored spans that no pass derived (their storing
    /// process died first, or convolog restarted) and derives them.
    pub sweep_interval_ms: u64,
    /// How old such spans must be (by their stamp) before a sweep takes them: longer than
    /// `clickhouse.timeout_ms` (an insert acknowledged that late was stamped that early) plus
    /// the clock difference between the hosts running convolog.
    pub sweep_grace_ms: u64,
    /// Whether sweeps also compare each swept trace's stored span count, and its session's
    /// revision, with what derived them: what an instance reading a lagging replica missed.
    /// Always done on a cluster (`clickhouse.cluster`); on one server no read lags, and the
    /// comparisons would only cost ClickHouse work at every sweep.
    pub sweep_checks_replicas: bool,
    /// Memory (bytes, per tenant) for spans stored and not derived yet; past it the span
    /// writer waits, which holds up the receivers.
    pub max_pending_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `text` or `json`.
    pub format: String,
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub filter: String,
}

/// A value that never appears in logs or debug output.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

fn addr(text: &str) -> SocketAddr {
    // Only ever called on the literal defaults below.
    text.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            grpc: addr("127.0.0.1:4317"),
            http: addr("127.0.0.1:4318"),
            api: addr("127.0.0.1:8080"),
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            max_connections: 1024,
            header_timeout_ms: 10_000,
            body_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            open_hosts: crate::tenants::default_open_hosts(),
            public_status: false,
        }
    }
}

impl Default for ClickHouse {
    fn default() -> Self {
        ClickHouse {
            url: "http://127.0.0.1:8123".into(),
            database: "convolog".into(),
            user: "default".into(),
            password: Secret::default(),
            timeout_ms: 30_000,
            max_query_memory_bytes: 4 * 1024 * 1024 * 1024,
            max_concurrent_exports: 4,
            export_max_seconds: 600,
            cluster: String::new(),
        }
    }
}

impl Default for Ingest {
    fn default() -> Self {
        Ingest {
            max_request_bytes: 16 * 1024 * 1024,
            max_pending_spans: 65_536,
            max_pending_bytes: 64 * 1024 * 1024,
            queue_wait_ms: 2_000,
            batch_max_spans: 32768,
            batch_max_wait_ms: 200,
            batch_min_spans: 4096,
            max_inserts_in_flight: 1,
            max_attribute_value_bytes: 64 * 1024,
            max_context_value_bytes: 1024 * 1024,
            max_attributes_per_span: 1024,
            max_events_per_span: 1024,
            max_name_bytes: 1024,
            max_status_message_bytes: 8 * 1024,
            max_resource_attributes: 128,
            max_resource_bytes: 16 * 1024,
        }
    }
}

impl Default for Sessionize {
    fn default() -> Self {
        Sessionize {
            debounce_ms: 300,
            max_traces_per_pass: 5000,
            cache_max_bytes: 32 * 1024 * 1024,
            max_pending_bytes: 64 * 1024 * 1024,
            sweep_interval_ms: 15_000,
            sweep_grace_ms: 60_000,
            sweep_checks_replicas: false,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

impl Ingest {
    pub fn batch_max_wait(&self) -> Duration {
        Duration::from_millis(self.batch_max_wait_ms)
    }
    pub fn queue_wait(&self) -> Duration {
        Duration::from_millis(self.queue_wait_ms)
    }
}

impl Config {
    /// The ClickHouse settings of each tenant (its own database), in configuration order;
    /// with no tenants, the one default tenant on `clickhouse.database`.
    pub fn tenant_clickhouse(&self, only: Option<&str>) -> Result<Vec<ClickHouse>, ConfigError> {
        let with = |database: String| ClickHouse {
            database,
            ..self.clickhouse.clone()
        };
        if self.tenants.is_empty() {
            return match only {
                None => Ok(vec![self.clickhouse.clone()]),
                Some(name) => Err(ConfigError::Invalid(format!(
                    "no tenant {name:?}: none are configured"
                ))),
            };
        }
        let chosen: Vec<ClickHouse> = self
            .tenants
            .iter()
            .filter(|t| only.is_none_or(|name| t.name == name))
            .map(|t| with(t.database(&self.clickhouse.database)))
            .collect();
        if chosen.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "no tenant {:?}",
                only.unwrap_or_default()
            )));
        }
        Ok(chosen)
    }

    /// The one tenant a command such as `convolog export` works on: the named one, which must
    /// be named when tenants are configured; without tenants, the default one.
    pub fn one_tenant_clickhouse(&self, tenant: Option<&str>) -> Result<ClickHouse, ConfigError> {
        if tenant.is_none() && !self.tenants.is_empty() {
            return Err(ConfigError::Invalid(
                "--tenant is required when tenants are configured".to_owned(),
            ));
        }
        self.tenant_clickhouse(tenant)?
            .into_iter()
            .next()
            .ok_or_else(|| ConfigError::Invalid("no tenant to export".to_owned()))
    }

    /// Defaults, then the file (if given), then the environment; then validation.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: shown.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: shown,
                    source: Box::new(source),
                })?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Environment overrides, each named after what it sets.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                name,
                value,
                why: e.to_string(),
            })
        }
        macro_rules! env {
            ($name:literal, $field:expr, string) => {
                if let Some(value) = var($name) {
                    $field = value;
                }
            };
            ($name:literal, $field:expr) => {
                if let Some(value) = var($name) {
                    $field = parse($name, value)?;
                }
            };
        }
        env!("CONVOLOG_GRPC_LISTEN", self.listen.grpc);
        env!("CONVOLOG_HTTP_LISTEN", self.listen.http);
        env!("CONVOLOG_API_LISTEN", self.listen.api);
        env!("CONVOLOG_HTTP_MAX_CONNECTIONS", self.http.max_connections);
        env!(
            "CONVOLOG_HTTP_HEADER_TIMEOUT_MS",
            self.http.header_timeout_ms
        );
        env!("CONVOLOG_HTTP_BODY_TIMEOUT_MS", self.http.body_timeout_ms);
        env!("CONVOLOG_HTTP_IDLE_TIMEOUT_MS", self.http.idle_timeout_ms);
        if let Some(hosts) = var("CONVOLOG_HTTP_OPEN_HOSTS") {
            self.http.open_hosts = hosts
                .split(',')
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect();
        }
        env!("CONVOLOG_HTTP_PUBLIC_STATUS", self.http.public_status);
        env!("CONVOLOG_CLICKHOUSE_URL", self.clickhouse.url, string);
        env!(
            "CONVOLOG_CLICKHOUSE_DATABASE",
            self.clickhouse.database,
            string
        );
        env!("CONVOLOG_CLICKHOUSE_USER", self.clickhouse.user, string);
        env!(
            "CONVOLOG_CLICKHOUSE_CLUSTER",
            self.clickhouse.cluster,
            string
        );
        if let Some(password) = var("CONVOLOG_CLICKHOUSE_PASSWORD") {
            self.clickhouse.password = Secret::new(password);
        }
        if let Some(key) = var("CONVOLOG_CONTACT_KEY") {
            self.rules.contact_key = Secret::new(key);
        }
        env!("CONVOLOG_CLICKHOUSE_TIMEOUT_MS", self.clickhouse.timeout_ms);
        env!(
            "CONVOLOG_CLICKHOUSE_MAX_QUERY_MEMORY_BYTES",
            self.clickhouse.max_query_memory_bytes
        );
        env!(
            "CONVOLOG_MAX_CONCURRENT_EXPORTS",
            self.clickhouse.max_concurrent_exports
        );
        env!(
            "CONVOLOG_EXPORT_MAX_SECONDS",
            self.clickhouse.export_max_seconds
        );
        env!("CONVOLOG_MAX_REQUEST_BYTES", self.ingest.max_request_bytes);
        env!("CONVOLOG_MAX_PENDING_SPANS", self.ingest.max_pending_spans);
        env!("CONVOLOG_MAX_PENDING_BYTES", self.ingest.max_pending_bytes);
        env!("CONVOLOG_QUEUE_WAIT_MS", self.ingest.queue_wait_ms);
        env!("CONVOLOG_BATCH_MAX_SPANS", self.ingest.batch_max_spans);
        env!("CONVOLOG_BATCH_MAX_WAIT_MS", self.ingest.batch_max_wait_ms);
        env!("CONVOLOG_BATCH_MIN_SPANS", self.ingest.batch_min_spans);
        env!(
            "CONVOLOG_MAX_INSERTS_IN_FLIGHT",
            self.ingest.max_inserts_in_flight
        );
        env!(
            "CONVOLOG_SESSIONIZE_DEBOUNCE_MS",
            self.sessionize.debounce_ms
        );
        env!(
            "CONVOLOG_SESSIONIZE_MAX_PENDING_BYTES",
            self.sessionize.max_pending_bytes
        );
        env!(
            "CONVOLOG_SESSIONIZE_CACHE_MAX_BYTES",
            self.sessionize.cache_max_bytes
        );
        env!(
            "CONVOLOG_SESSIONIZE_SWEEP_INTERVAL_MS",
            self.sessionize.sweep_interval_ms
        );
        env!(
            "CONVOLOG_SESSIONIZE_SWEEP_GRACE_MS",
            self.sessionize.sweep_grace_ms
        );
        env!(
            "CONVOLOG_SESSIONIZE_SWEEP_CHECKS_REPLICAS",
            self.sessionize.sweep_checks_replicas
        );
        env!(
            "CONVOLOG_RETENTION_TRANSCRIPT_DAYS",
            self.retention.transcript_days
        );
        env!(
            "CONVOLOG_RETENTION_SESSIONS_DAYS",
            self.retention.sessions_days
        );
        env!("CONVOLOG_LOG_FORMAT", self.log.format, string);
        env!("CONVOLOG_LOG_FILTER", self.log.filter, string);
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(why));
        let db = &self.clickhouse.database;
        if db.is_empty() || !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return invalid(format!(
                "clickhouse.database {db:?} must be letters, digits and underscores"
            ));
        }
        let cluster = &self.clickhouse.cluster;
        if !cluster
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return invalid(format!(
                "clickhouse.cluster {cluster:?} must be letters, digits and underscores"
            ));
        }
        if !(self.clickhouse.url.starts_with("http://")
            || self.clickhouse.url.starts_with("https://"))
        {
            return invalid(format!(
                "clickhouse.url {:?} must start with http:// or https://",
                self.clickhouse.url
            ));
        }
        if self.ingest.batch_max_spans == 0
            || self.ingest.max_pending_spans < self.ingest.batch_max_spans
        {
            return invalid(
                "ingest.batch_max_spans must be at least 1 and at most ingest.max_pending_spans"
                    .into(),
            );
        }
        if self.ingest.batch_min_spans > self.ingest.batch_max_spans {
            return invalid(format!(
                "ingest.batch_min_spans ({}) must be at most ingest.batch_max_spans ({})",
                self.ingest.batch_min_spans, self.ingest.batch_max_spans
            ));
        }
        if self.ingest.max_inserts_in_flight == 0 {
            return invalid("ingest.max_inserts_in_flight must be at least 1".into());
        }
        if self.clickhouse.max_concurrent_exports == 0 || self.clickhouse.export_max_seconds == 0 {
            return invalid(
                "clickhouse.max_concurrent_exports and export_max_seconds must be above 0".into(),
            );
        }
        let h = &self.http;
        if h.max_connections == 0
            || h.header_timeout_ms == 0
            || h.body_timeout_ms == 0
            || h.idle_timeout_ms == 0
        {
            return invalid("http: every limit must be above 0".into());
        }
        if h.idle_timeout_ms <= self.clickhouse.timeout_ms {
            return invalid(
                "http.idle_timeout_ms must be longer than clickhouse.timeout_ms (a request waits that long for ClickHouse)".into(),
            );
        }
        let i = &self.ingest;
        let limits = [
            ("max_attribute_value_bytes", i.max_attribute_value_bytes),
            ("max_context_value_bytes", i.max_context_value_bytes),
            ("max_attributes_per_span", i.max_attributes_per_span),
            ("max_name_bytes", i.max_name_bytes),
            ("max_status_message_bytes", i.max_status_message_bytes),
            ("max_resource_attributes", i.max_resource_attributes),
            ("max_resource_bytes", i.max_resource_bytes),
        ];
        if let Some((name, _)) = limits.iter().find(|(_, value)| *value == 0) {
            return invalid(format!("ingest.{name} must be at least 1"));
        }
        if self.ingest.max_request_bytes < 1024 {
            return invalid("ingest.max_request_bytes must be at least 1024".into());
        }
        if self.ingest.max_pending_bytes < self.ingest.max_request_bytes {
            return invalid(
                "ingest.max_pending_bytes must be at least ingest.max_request_bytes".into(),
            );
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return invalid(format!(
                "log.format {:?} must be \"text\" or \"json\"",
                self.log.format
            ));
        }
        let identifier =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        // Deleting all of a tenant's conversations drops its database: it must be its own.
        let shared = |name: &str| {
            ["system", "default", "information_schema"]
                .iter()
                .any(|s| name.eq_ignore_ascii_case(s))
        };
        if shared(db) {
            return invalid(format!(
                "clickhouse.database {db:?} is ClickHouse's own: use a database of convolog's"
            ));
        }
        let mut names = std::collections::HashSet::new();
        let mut databases = std::collections::HashSet::new();
        let mut hashes = std::collections::HashSet::new();
        for tenant in &self.tenants {
            if !identifier(&tenant.name) || !names.insert(tenant.name.as_str()) {
                return invalid(format!(
                    "tenant name {:?} must be unique letters, digits and underscores",
                    tenant.name
                ));
            }
            if !identifier(&tenant.database(db)) {
                return invalid(format!(
                    "tenant {}: database must be letters, digits and underscores",
                    tenant.name
                ));
            }
            let database = tenant.database(db);
            if shared(&database) || !databases.insert(database.to_ascii_lowercase()) {
                return invalid(format!(
                    "tenant {}: database {database:?} must be the tenant's own (not another tenant's, not system or default)",
                    tenant.name
                ));
            }
            if tenant.keys.is_empty() {
                return invalid(format!("tenant {} has no keys", tenant.name));
            }
            for key in &tenant.keys {
                let hex =
                    key.sha256.len() == 64 && key.sha256.chars().all(|c| c.is_ascii_hexdigit());
                if !hex || !hashes.insert(key.sha256.to_ascii_lowercase()) {
                    return invalid(format!(
                        "tenant {}: each key's sha256 must be 64 hex digits and appear once (convolog hash-key makes one)",
                        tenant.name
                    ));
                }
            }
        }
        let r = &self.retention;
        if r.sessions_days > 0 && r.sessions_days < r.transcript_days {
            return invalid(
                "retention.sessions_days must be 0 (forever) or at least retention.transcript_days"
                    .into(),
            );
        }
        if self.sessionize.max_pending_bytes == 0 {
            return invalid("sessionize.max_pending_bytes must be at least 1".into());
        }
        if self.sessionize.max_traces_per_pass == 0 {
            return invalid("sessionize.max_traces_per_pass must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/convolog.example.toml");
        let text = std::fs::read_to_string(&path).expect("example config exists");
        let parsed: Config = toml::from_str(&text).expect("example config parses");
        parsed.validate().expect("example config is valid");
        assert_eq!(parsed.listen.grpc, Config::default().listen.grpc);
        assert_eq!(
            parsed.ingest.batch_max_spans,
            Config::default().ingest.batch_max_spans
        );
        assert_eq!(parsed.rules, Config::default().rules);
    }

    #[test]
    fn env_overrides_and_errors_name_the_variable() {
        let mut config = Config::default();
        config
            .apply_env(|name| match name {
                "CONVOLOG_CLICKHOUSE_DATABASE" => Some("other".into()),
                "CONVOLOG_BATCH_MAX_SPANS" => Some("100".into()),
                "CONVOLOG_CONTACT_KEY" => Some("k3y".into()),
                _ => None,
            })
            .expect("valid overrides");
        assert_eq!(
            (
                config.clickhouse.database.as_str(),
                config.ingest.batch_max_spans,
                config.rules.contact_key.expose()
            ),
            ("other", 100, "k3y")
        );
        // A secret never shows in debug output.
        assert!(!format!("{:?}", config.rules).contains("k3y"));
        let err = Config::default()
            .apply_env(|name| (name == "CONVOLOG_GRPC_LISTEN").then(|| "nonsense".to_string()))
            .expect_err("bad address");
        assert!(err.to_string().contains("CONVOLOG_GRPC_LISTEN"));
    }

    #[test]
    fn tenants_get_databases_of_their_own() {
        let config: Config = toml::from_str(&format!(
            "[[tenants]]\nname = \"acme\"\nkeys = [{{ sha256 = \"{}\", scope = \"read\" }}]\n\
             [[tenants]]\nname = \"bolt\"\ndatabase = \"bolt_db\"\nkeys = [{{ sha256 = \"{}\", scope = \"admin\" }}]",
            "a".repeat(64),
            "b".repeat(64)
        ))
        .expect("parses");
        config.validate().expect("valid");
        let databases = |only| -> Vec<String> {
            config
                .tenant_clickhouse(only)
                .expect("tenants")
                .into_iter()
                .map(|c| c.database)
                .collect()
        };
        assert_eq!(databases(None), ["convolog_acme", "bolt_db"]);
        assert_eq!(databases(Some("bolt")), ["bolt_db"]);
        assert!(config.tenant_clickhouse(Some("nope")).is_err());
        assert_eq!(
            config
                .one_tenant_clickhouse(Some("bolt"))
                .expect("named")
                .database,
            "bolt_db"
        );
        assert!(config.one_tenant_clickhouse(None).is_err(), "must be named");
        assert_eq!(
            Config::default()
                .one_tenant_clickhouse(None)
                .expect("the default tenant")
                .database,
            Config::default().clickhouse.database
        );
        let mut duplicate = config.clone();
        duplicate.tenants[1].keys = duplicate.tenants[0].keys.clone();
        assert!(duplicate.validate().is_err(), "a key hash used twice");
        let mut shared = config.clone();
        shared.tenants[1].database = Some("convolog_acme".into());
        assert!(shared.validate().is_err(), "two tenants on one database");
        for own in ["system", "default", "DEFAULT"] {
            let mut theirs = config.clone();
            theirs.tenants[1].database = Some(own.into());
            assert!(theirs.validate().is_err(), "a tenant on {own}");
        }
        let mut base = Config::default();
        base.clickhouse.database = "system".into();
        assert!(base.validate().is_err(), "convolog on system");
        assert_eq!(
            Config::default()
                .tenant_clickhouse(None)
                .expect("default")
                .len(),
            1
        );
    }

    #[test]
    fn unknown_fields_are_refused_and_secrets_hidden() {
        assert!(toml::from_str::<Config>("[clickhouse]\nurll = \"x\"").is_err());
        let config: Config =
            toml::from_str("[clickhouse]\npassword = \"hunter2\"").expect("parses");
        assert!(!format!("{config:?}").contains("hunter2"));
        let mut bad = Config::default();
        bad.clickhouse.database = "x; DROP".into();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn size_limits_of_what_is_received_must_be_above_zero() {
        let parsed: Config = toml::from_str(
            "[ingest]\nmax_name_bytes = 256\nmax_status_message_bytes = 512\n\
             max_resource_attributes = 16\nmax_resource_bytes = 4096",
        )
        .expect("parses");
        parsed.validate().expect("valid");
        assert_eq!(
            (
                parsed.ingest.max_name_bytes,
                parsed.ingest.max_status_message_bytes,
                parsed.ingest.max_resource_attributes,
                parsed.ingest.max_resource_bytes
            ),
            (256, 512, 16, 4096)
        );
        for field in [
            "max_name_bytes",
            "max_resource_attributes",
            "max_resource_bytes",
        ] {
            let config: Config = toml::from_str(&format!("[ingest]\n{field} = 0")).expect("parses");
            let err = config.validate().expect_err("0 is refused").to_string();
            assert!(err.contains(&format!("ingest.{field}")), "{err}");
        }
    }
}
