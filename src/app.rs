//! Wiring: bind every listener first (port 0 works, for tests) and serve the API, whose
//! `/readyz` answers "not ready" while the schema is applied (retrying while ClickHouse
//! starts); then start the writer, the sessionizer and the receivers. Shutdown runs in order:
//! receivers stop taking requests, the writer stores and acknowledges what it holds, the
//! sessionizer derives it, the API stops last.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::http_server;
use crate::pipeline::sessionizer::Sessionizer;
use crate::pipeline::{self, writer, HandOver};
use crate::receiver::{self, Ingest};
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::tenants::{key_map, KeyMap, Tenants};

const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often memory freed after a burst is given back to the system.
const RELEASE_FREED_EVERY_SECONDS: u64 = 5;
const MIGRATION_PATIENCE: Duration = Duration::from_secs(60);

pub struct App {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Stops the receivers and the housekeeping tasks (gauge, retention).
    stop_intake: watch::Sender<bool>,
    stop_api: watch::Sender<bool>,
    intake: Vec<JoinHandle<()>>,
    pipeline: Vec<JoinHandle<()>>,
    api: JoinHandle<()>,
}

/// The first half of [`App::start`]: every port bound and the API serving, not ready yet.
pub struct Starting {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub api_addr: SocketAddr,
    config: Config,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    /// One per tenant, each in its own database; with no tenants, one for `clickhouse.database`.
    stores: Vec<Store>,
    keys: KeyMap,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    stop_api: watch::Sender<bool>,
    api: JoinHandle<()>,
}

/// Applies the schema, retrying while ClickHouse is still starting.
pub async fn migrate_with_retry(store: &Store, patience: Duration) -> anyhow::Result<Vec<u32>> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match store.migrate().await {
            Ok(applied) => return Ok(applied),
            Err(err) if err.is_retryable() && tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %err, "ClickHouse not ready; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(err) => return Err(err).context("applying the ClickHouse schema"),
        }
    }
}

impl App {
    pub async fn start(config: Config) -> anyhow::Result<App> {
        App::bind(config).await?.finish().await
    }

    /// Binds every listener and serves the API, which reports "not ready" until
    /// [`Starting::finish`] has applied the schema.
    pub async fn bind(config: Config) -> anyhow::Result<Starting> {
        let grpc_listener = bind(config.listen.grpc, "OTLP/gRPC").await?;
        let http_listener = bind(config.listen.http, "OTLP/HTTP").await?;
        let api_listener = bind(config.listen.api, "API").await?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        let api_addr = api_listener.local_addr()?;

        let stores: Vec<Store> = config
            .tenant_clickhouse(None)?
            .iter()
            .map(|clickhouse| {
                Store::new(clickhouse).with_contact_key(config.rules.contact_key.clone())
            })
            .collect();
        if config.rules.contact_key.expose().is_empty() {
            tracing::warn!(
                "rules.contact_key is not set: contact pseudonyms are unkeyed hashes, which anyone \
                 can recompute from a guessed number; set CONVOLOG_CONTACT_KEY"
            );
        }
        let keys = tenant_keys(&config);
        let metrics = Arc::new(Metrics::default());
        let ready = Arc::new(AtomicBool::new(false));
        let (stop_api, api_stopping) = watch::channel(false);
        let api = http_server::serve(
            api_listener,
            api::router(ApiState {
                tenants: Arc::new(
                    Tenants::new(stores.clone(), Arc::clone(&keys))
                        .with_open_hosts(config.http.open_hosts.clone()),
                ),
                metrics: Arc::clone(&metrics),
                ready: Arc::clone(&ready),
                public_status: config.http.public_status,
            }),
            http_server::Limits::new(&config.http),
            api_stopping,
            "API",
        );
        Ok(Starting {
            grpc_addr,
            http_addr,
            api_addr,
            config,
            grpc_listener,
            http_listener,
            stores,
            keys,
            metrics,
            ready,
            stop_api,
            api,
        })
    }

    pub async fn shutdown(self) {
        tracing::info!("shutting down: receivers");
        let _ = self.stop_intake.send(true);
        for task in self.intake {
            wait(task, "receiver").await;
        }
        tracing::info!("shutting down: storing and deriving what was received");
        for task in self.pipeline {
            wait(task, "pipeline").await;
        }
        let _ = self.stop_api.send(true);
        wait(self.api, "API").await;
        tracing::info!("stopped");
    }
}

impl Starting {
    /// Applies the schema to every tenant's database, then starts the pipelines and the
    /// receivers and reports ready.
    pub async fn finish(self) -> anyhow::Result<App> {
        for store in &self.stores {
            if let Err(err) = migrate_with_retry(store, MIGRATION_PATIENCE).await {
                let _ = self.stop_api.send(true);
                wait(self.api, "API").await;
                return Err(err);
            }
        }
        let (ingests, pipeline) = start_pipelines(&self.config, &self.stores, &self.metrics);
        let receivers = Arc::new(
            Tenants::new(ingests, self.keys).with_open_hosts(self.config.http.open_hosts.clone()),
        );
        let (stop_intake, stopping) = watch::channel(false);
        let mut intake = vec![
            serve_grpc(
                self.grpc_listener,
                Arc::clone(&receivers),
                &self.config,
                stopping.clone(),
            ),
            report_pending_spans(
                Arc::clone(&receivers),
                Arc::clone(&self.metrics),
                stopping.clone(),
            ),
        ];
        for store in &self.stores {
            intake.push(tokio::spawn(pipeline::retention::run(
                store.clone(),
                self.config.retention.clone(),
                stopping.clone(),
            )));
        }
        intake.push(http_server::serve(
            self.http_listener,
            receiver::http::router(receivers),
            http_server::Limits::new(&self.config.http),
            stopping,
            "OTLP/HTTP",
        ));
        self.ready.store(true, Ordering::Release);
        tracing::info!(
            grpc_addr = %self.grpc_addr,
            http_addr = %self.http_addr,
            api_addr = %self.api_addr,
            tenants = self.stores.len(),
            "convolog serving"
        );
        let mut stores = self.stores;
        // The first tenant's store: the only one without tenants configured.
        let store = stores.swap_remove(0);
        Ok(App {
            grpc_addr: self.grpc_addr,
            http_addr: self.http_addr,
            api_addr: self.api_addr,
            store,
            metrics: self.metrics,
            stop_intake,
            stop_api: self.stop_api,
            intake,
            pipeline,
            api: self.api,
        })
    }
}

/// Key hashes per tenant, in the order of the stores; none at all without tenants.
fn tenant_keys(config: &Config) -> KeyMap {
    let tenant_keys = if config.tenants.is_empty() {
        vec![Vec::new()]
    } else {
        config
            .tenants
            .iter()
            .map(|t| t.keys.iter().map(|k| (k.sha256.clone(), k.scope)).collect())
            .collect()
    };
    let keys = key_map(tenant_keys);
    if keys.is_empty() {
        tracing::warn!(
            "no API keys configured: serving clients on this machine only, without keys"
        );
    }
    keys
}

/// One queue, writer and sessionizer per tenant: the queues' ends for the receivers, and the
/// tasks, which end once the queues close and what they held is stored and derived.
fn start_pipelines(
    config: &Config,
    stores: &[Store],
    metrics: &Arc<Metrics>,
) -> (Vec<Ingest>, Vec<JoinHandle<()>>) {
    let mut ingests = Vec::new();
    let mut tasks = Vec::new();
    for store in stores {
        let (ingest, incoming) = Ingest::new(&config.ingest, store.clone(), Arc::clone(metrics));
        // Bounded: a sessionizer that falls behind holds up the writer, which holds up the
        // receivers, instead of queueing without limit.
        let (stored_tx, stored_rx) = HandOver::new(config.sessionize.max_pending_bytes);
        let sessionizer = Sessionizer::new(
            store.clone(),
            config.sessionize.clone(),
            config.rules.clone(),
            Arc::clone(metrics),
        );
        tasks.push(tokio::spawn(writer::run(
            store.clone(),
            config.ingest.clone(),
            incoming,
            stored_tx,
            Arc::clone(metrics),
        )));
        tasks.push(tokio::spawn(sessionizer.run(stored_rx)));
        ingests.push(ingest);
    }
    (ingests, tasks)
}

fn serve_grpc(
    listener: TcpListener,
    receivers: Arc<Tenants<Ingest>>,
    config: &Config,
    mut stopping: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let limit = config.ingest.max_request_bytes;
    let traces = receiver::grpc::TraceService::new(Arc::clone(&receivers), limit);
    let logs = receiver::grpc::LogsService::new(receivers, limit);
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(traces)
            .add_service(logs)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async move {
                    let _ = stopping.wait_for(|s| *s).await;
                },
            )
            .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "OTLP/gRPC server failed");
        }
    })
}

/// Updates the pending-spans gauge every second until intake stops.
fn report_pending_spans(
    receivers: Arc<Tenants<Ingest>>,
    metrics: Arc<Metrics>,
    mut stopping: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let pending: usize = receivers.all().iter().map(Ingest::pending_spans).sum();
                    metrics.pending_spans.set(pending as f64);
                    metrics.run_upkeep();
                    ticks += 1;
                    if ticks.is_multiple_of(RELEASE_FREED_EVERY_SECONDS) {
                        tokio::task::spawn_blocking(crate::memory::release_freed);
                    }
                }
                // Dropping the queues' senders here lets the writers see their input close.
                _ = stopping.wait_for(|s| *s) => break,
            }
        }
    })
}

async fn wait(task: JoinHandle<()>, what: &str) {
    match tokio::time::timeout(DRAIN_TIMEOUT, task).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(error = %err, "{what} task failed"),
        Err(_) => tracing::warn!("{what} did not stop within {DRAIN_TIMEOUT:?}"),
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} listener on {addr}"))
}
