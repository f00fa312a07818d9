use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use convolog::app::{self, App};
use convolog::config::Config;
use convolog::doctor;
use convolog::export_cli;
use convolog::pipeline::sessionizer;
use convolog::store::Store;
use convolog::telemetry;
use convolog::timefmt;

// Why jemalloc: convolog::memory.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Conversation logs for voice and chat AI agents, from their OpenTelemetry traces.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// TOML configuration file (see config/convolog.example.toml). Without it, defaults and
    /// CONVOLOG_* environment variables apply.
    #[arg(long, global = true, env = "CONVOLOG_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive OTLP traces (gRPC and HTTP) and serve the transcript API.
    Serve,
    /// Create or upgrade the ClickHouse schema, then exit.
    Migrate,
    /// Check the configuration against this machine and ClickHouse (reachable, version,
    /// schema, ports free, keys, tenants' databases) and say what is wrong. Changes nothing;
    /// exits non-zero when something is wrong.
    Doctor,
    /// Re-derive sessions from stored spans, e.g. after a rule changed.
    Rebuild {
        /// Spans that started since then: a duration ago (24h, 7d) or a UTC date (2026-11-01).
        #[arg(long)]
        since: String,
        /// Only this tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Print the SHA-256 of an API key, as `[[tenants.keys]] sha256` wants it. Reads the key
    /// from standard input, so it stays out of the shell history.
    HashKey,
    /// Export sessions (CSV, JSON Lines or JSON) with the filters of GET /v1/sessions.
    Export {
        #[command(flatten)]
        args: export_cli::ExportArgs,
        /// The tenant whose sessions to export; required when tenants are configured.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => {
            let config = load(cli.config.as_deref())?;
            let app = App::start(config).await?;
            shutdown_signal().await;
            app.shutdown().await;
        }
        Command::Migrate => {
            let config = load(cli.config.as_deref())?;
            for clickhouse in config.tenant_clickhouse(None)? {
                let store = Store::new(&clickhouse);
                let applied = app::migrate_with_retry(&store, Duration::from_secs(10)).await?;
                println!(
                    "schema of database {} is current (applied now: {applied:?})",
                    store.database()
                );
            }
        }
        Command::Doctor => {
            telemetry::init_logging("text", "error");
            let report = doctor::run(cli.config.as_deref()).await;
            print!("{report}");
            if report.has_problems() {
                std::process::exit(1);
            }
        }
        Command::Rebuild { since, tenant } => {
            let config = load(cli.config.as_deref())?;
            let now = convolog::clock::now_unix_nano() / 1_000_000_000;
            let since = timefmt::parse_since(&since, now)
                .map_err(anyhow::Error::msg)
                .context("--since")?;
            for clickhouse in config.tenant_clickhouse(tenant.as_deref())? {
                let store = Store::new(&clickhouse);
                app::migrate_with_retry(&store, Duration::from_secs(10)).await?;
                let summary = sessionizer::rebuild(store, &config, since).await?;
                println!(
                    "{}: rebuilt {} sessions from {} traces ({} sessions removed, {} traces skipped)",
                    clickhouse.database,
                    summary.sessions,
                    summary.traces,
                    summary.removed_sessions,
                    summary.skipped_traces
                );
            }
        }
        Command::HashKey => {
            let mut key = String::new();
            std::io::stdin()
                .read_line(&mut key)
                .context("reading the key from standard input")?;
            let key = key.trim();
            anyhow::ensure!(!key.is_empty(), "no key on standard input");
            println!("{}", convolog::tenants::hash_key(key));
        }
        Command::Export { args, tenant } => {
            let config = load(cli.config.as_deref())?;
            let clickhouse = config.one_tenant_clickhouse(tenant.as_deref())?;
            let store = Store::new(&clickhouse).with_contact_key(config.rules.contact_key.clone());
            export_cli::run(&store, args).await?;
        }
    }
    Ok(())
}

/// The configuration, and logging set up from it.
fn load(file: Option<&Path>) -> anyhow::Result<Config> {
    let config = Config::load(file)?;
    telemetry::init_logging(&config.log.format, &config.log.filter);
    Ok(config)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
