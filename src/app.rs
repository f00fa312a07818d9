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
use crate::receiver::{self, Ingest};
use crate::sessionizer::Sessionizer;
use crate::store::{writer, Store};
use crate::telemetry::Metrics;

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
        let store = Store::new(&config.clickhouse);
        migrate_with_retry(&store, Duration::from_secs(60)).await?;

        let grpc_listener = bind(config.listen.grpc, "OTLP/gRPC").await?;
        let http_listener = bind(config.listen.http, "OTLP/HTTP").await?;
        let api_listener = bind(config.listen.api, "API").await?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        let api_addr = api_listener.local_addr()?;

        let metrics = Arc::new(Metrics::default());
        let (ingest, batches) = Ingest::new(&config.ingest, Arc::clone(&metrics));
        let (stored_tx, stored_rx) = mpsc::unbounded_channel();
        let sessionizer = Sessionizer::new(
            store.clone(),
            config.sessionize.clone(),
            config.rules.clone(),
            Arc::clone(&metrics),
        );
        let pipeline = vec![
            tokio::spawn(writer::run(
                store.clone(),
                config.ingest.clone(),
                batches,
                stored_tx,
                Arc::clone(&metrics),
            )),
            tokio::spawn(sessionizer.run(stored_rx)),
        ];

        let (stop_intake, stopping) = watch::channel(false);
        let grpc = {
            let service = receiver::grpc::TraceService::new(ingest.clone());
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
        };
        let ingest_for_http = ingest.clone();
        let gauge = {
            let metrics = Arc::clone(&metrics);
            let mut stopping = stopping.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => metrics.pending_spans.store(ingest.pending_spans() as u64, Ordering::Relaxed),
                        // Dropping `ingest` here lets the writer see its input close.
                        _ = stopping.wait_for(|s| *s) => break,
                    }
                }
            })
        };
        let retention = tokio::spawn(crate::retention::run(
            store.clone(),
            config.retention.clone(),
            stopping.clone(),
        ));
        let http = serve(
            http_listener,
            receiver::http::router(ingest_for_http),
            stopping,
            "OTLP/HTTP",
        );

        let (stop_api, api_stopping) = watch::channel(false);
        let api = serve(
            api_listener,
            api::router(ApiState {
                store: store.clone(),
                metrics: Arc::clone(&metrics),
            }),
            api_stopping,
            "API",
        );
        tracing::info!(%grpc_addr, %http_addr, %api_addr, database = store.database(), "convolog serving");
        Ok(App {
            grpc_addr,
            http_addr,
            api_addr,
            store,
            metrics,
            stop_intake,
            stop_api,
            intake: vec![grpc, http, gauge, retention],
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
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|s| *s).await;
            })
            .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "{what} server failed");
        }
    })
}
