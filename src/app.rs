//! Wiring: bind every listener first (port 0 works, for tests), then start the writer, the
//! sessionizer and the servers. Shutdown runs in order: receivers stop taking requests, the
//! writer stores and acknowledges what it holds, the sessionizer derives it, the API stops last.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::pipeline::sessionizer::Sessionizer;
use crate::pipeline::writer;
use crate::receiver::{self, Ingest};
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::tenants::{key_map, Tenants};

const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

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
        // One store and one pipeline (queue, writer, sessionizer) per tenant, each in its
        // own database; with no tenants configured, one for `clickhouse.database`.
        let mut stores = Vec::new();
        for clickhouse in config.tenant_clickhouse(None)? {
            let store = Store::new(&clickhouse);
            migrate_with_retry(&store, Duration::from_secs(60)).await?;
            stores.push(store);
        }
        // Key hashes per tenant, in the same order; none at all without tenants.
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

        let grpc_listener = bind(config.listen.grpc, "OTLP/gRPC").await?;
        let http_listener = bind(config.listen.http, "OTLP/HTTP").await?;
        let api_listener = bind(config.listen.api, "API").await?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        let api_addr = api_listener.local_addr()?;

        let metrics = Arc::new(Metrics::default());
        let mut ingests = Vec::new();
        let mut pipeline = Vec::new();
        for store in &stores {
            let (ingest, batches) = Ingest::new(&config.ingest, Arc::clone(&metrics));
            let (stored_tx, stored_rx) = mpsc::unbounded_channel();
            let sessionizer = Sessionizer::new(
                store.clone(),
                config.sessionize.clone(),
                config.rules.clone(),
                Arc::clone(&metrics),
            );
            pipeline.push(tokio::spawn(writer::run(
                store.clone(),
                config.ingest.clone(),
                batches,
                stored_tx,
                Arc::clone(&metrics),
            )));
            pipeline.push(tokio::spawn(sessionizer.run(stored_rx)));
            ingests.push(ingest);
        }
        let receivers = Arc::new(Tenants::new(ingests, Arc::clone(&keys)));

        let (stop_intake, stopping) = watch::channel(false);
        let mut intake = Vec::new();
        intake.push({
            let service = receiver::grpc::TraceService::new(
                Arc::clone(&receivers),
                config.ingest.max_request_bytes,
            );
            let mut stopping = stopping.clone();
            tokio::spawn(async move {
                let result = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(grpc_listener),
                        async move {
                            let _ = stopping.wait_for(|s| *s).await;
                        },
                    )
                    .await;
                if let Err(err) = result {
                    tracing::error!(error = %err, "OTLP/gRPC server failed");
                }
            })
        });
        intake.push({
            let metrics = Arc::clone(&metrics);
            let receivers = Arc::clone(&receivers);
            let mut stopping = stopping.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let pending: usize = receivers.all().iter().map(Ingest::pending_spans).sum();
                            metrics.pending_spans.store(pending as u64, Ordering::Relaxed);
                        }
                        // Dropping the queues' senders here lets the writers see their input close.
                        _ = stopping.wait_for(|s| *s) => break,
                    }
                }
            })
        });
        for store in &stores {
            intake.push(tokio::spawn(crate::pipeline::retention::run(
                store.clone(),
                config.retention.clone(),
                stopping.clone(),
            )));
        }
        intake.push(serve(
            http_listener,
            receiver::http::router(receivers, config.ingest.max_request_bytes),
            stopping,
            "OTLP/HTTP",
        ));

        let (stop_api, api_stopping) = watch::channel(false);
        let api = serve(
            api_listener,
            api::router(ApiState {
                tenants: Arc::new(Tenants::new(stores.clone(), keys)),
                metrics: Arc::clone(&metrics),
            }),
            api_stopping,
            "API",
        );
        tracing::info!(%grpc_addr, %http_addr, %api_addr, tenants = stores.len(), "convolog serving");
        // The first tenant's store: the only one without tenants configured.
        let store = stores.swap_remove(0);
        Ok(App {
            grpc_addr,
            http_addr,
            api_addr,
            store,
            metrics,
            stop_intake,
            stop_api,
            intake,
            pipeline,
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

fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stopping: watch::Receiver<bool>,
    what: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // The peer address decides who may come in when no keys are configured.
        let result = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopping.wait_for(|s| *s).await;
        })
        .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "{what} server failed");
        }
    })
}
