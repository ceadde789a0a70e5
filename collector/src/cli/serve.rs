//! `footfall serve`: wire the store, the pipeline, the writer and the HTTP layer together,
//! run until SIGTERM/SIGINT, then stop accepting, drain the queue and flush before exiting.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::http::{AppState, router};
use crate::ingest::geoip::GeoIp;
use crate::ingest::pipeline::Pipeline;
use crate::maintenance::Maintenance;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::writer::{self, WriterConfig, WriterReport};

/// A running collector without its listener: what `serve` and in-process tests share.
pub struct App {
    pub state: AppState,
    pub maintenance: Arc<Maintenance>,
    shutdown: watch::Sender<bool>,
    writer_task: JoinHandle<WriterReport>,
    maintenance_task: JoinHandle<()>,
    reports_task: JoinHandle<()>,
}

impl App {
    /// Starts the writer and maintenance over a migrated `store`. Fails if the first
    /// maintenance round (sites and salts) fails.
    pub async fn start(
        config: &Config,
        store: Arc<dyn Store>,
        clock: SharedClock,
    ) -> anyhow::Result<App> {
        // The data directory holds the spool (and the embedded store): its owner's alone.
        crate::store::files::create_private_dir(&config.data_dir).with_context(|| {
            format!("creating the data directory {}", config.data_dir.display())
        })?;
        let geoip = if config.geoip_db.is_empty() {
            None
        } else {
            let db = GeoIp::open_all(&config.geoip_db)?;
            tracing::info!(
                database_type = %db.database_type(),
                files = config.geoip_db.len(),
                "GeoIP databases loaded"
            );
            Some(db)
        };
        // The user-agent rules and bot lists compile in about half a second: before serving.
        tokio::task::spawn_blocking(crate::ingest::useragent::UaParser::warm_up).await?;
        let mut pipeline = Pipeline::new(geoip.map(Arc::new));
        pipeline.sessions = crate::ingest::session::Sessions::with_capacity(config.max_sessions);
        let pipeline = Arc::new(pipeline);
        let metrics = Arc::new(Metrics::default());
        let maintenance = Arc::new(Maintenance {
            store: store.clone(),
            pipeline: pipeline.clone(),
            clock: clock.clone(),
            raw_retention_days: config.raw_retention_days,
            aggregate_retention_days: config.aggregate_retention_days,
            spool: Some((config.data_dir.join("spool"), metrics.clone())),
        });
        maintenance
            .tick()
            .await
            .context("loading sites and salts from the store")?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (writer, writer_task) = writer::spawn(
            store.clone(),
            WriterConfig {
                batch_size: config.batch_size,
                flush_interval: config.flush_interval,
                queue_capacity: config.queue_capacity,
                drain_timeout: config.drain_timeout,
                spool_dir: config.data_dir.join("spool"),
                spool_max_bytes: config.spool_max_bytes,
            },
            metrics.clone(),
            shutdown_rx.clone(),
        )
        .context("opening the spool in the data directory")?;
        let maintenance_task = tokio::spawn(maintenance.clone().run(shutdown_rx.clone()));
        let mailer = match &config.smtp {
            None => None,
            Some(smtp) => Some(Arc::new(
                crate::mail::Mailer::new(smtp).map_err(|e| anyhow::anyhow!("smtp: {e}"))?,
            )),
        };
        let reports = Arc::new(crate::reports::Reports::new(
            store.clone(),
            pipeline.clone(),
            clock.clone(),
            mailer.clone(),
            config.public_url.clone(),
            config.raw_retention_days,
            metrics.clone(),
        ));
        let reports_task = tokio::spawn(reports.clone().run(shutdown_rx));
        let state = AppState {
            pipeline,
            writer,
            store,
            metrics,
            clock,
            proxies: Arc::new(crate::ingest::ip::Proxies {
                trusted: config.trusted_proxies.clone(),
                header: config.client_ip_header.clone(),
            }),
            raw_retention_days: config.raw_retention_days,
            sample_threshold: config.sampling_threshold,
            aggregate_retention_days: config.aggregate_retention_days,
            login_limiter: Default::default(),
            server_settings: Default::default(),
            public_url: config.public_url.clone(),
            mailer,
            limits: Arc::new(crate::http::limits::IngestLimits::new(
                config.rate_limit_per_ip,
                config.rate_limit_burst,
                config.max_concurrent_requests,
            )),
            metrics_token: config
                .metrics_token
                .as_ref()
                .map(|t| blake3::hash(t.0.as_bytes())),
            queries: Arc::new(crate::http::query::QueryLimits::new(config.query_timeout)),
            notice: Arc::new(
                crate::privacy::Facts::from_config(config, "", None)
                    .map_err(|e| anyhow::anyhow!(e))?,
            ),
            reports,
        };
        Ok(App {
            state,
            maintenance,
            shutdown,
            writer_task,
            maintenance_task,
            reports_task,
        })
    }

    /// Stops maintenance, closes the queue and waits until the writer has drained it.
    /// Every other clone of the state (the router's) must be dropped first.
    pub async fn shutdown(self) -> WriterReport {
        let _ = self.shutdown.send(true);
        drop(self.state);
        let _ = self.maintenance_task.await;
        let _ = self.reports_task.await;
        self.writer_task.await.unwrap_or_default()
    }
}

/// Waits for the store and applies migrations, retrying while it is unreachable.
async fn wait_for_store(store: &Arc<dyn Store>) -> anyhow::Result<()> {
    let mut attempt = 0u32;
    loop {
        match store.migrate().await {
            Ok(ran) => {
                for name in ran {
                    tracing::info!(migration = %name, "schema migration applied");
                }
                return Ok(());
            }
            Err(crate::store::StoreError::Unavailable(error)) if attempt < 60 => {
                if attempt == 0 {
                    tracing::warn!(%error, "store unreachable at start; retrying for up to 2 minutes");
                }
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e).context("preparing the store"),
        }
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = super::open_store(&config)?;
    match &config.clickhouse {
        Some(ch) => tracing::info!(url = %ch.url, database = %ch.database, "store: ClickHouse"),
        None => tracing::info!(
            data_dir = %config.data_dir.display(),
            store = ?config.embedded_store,
            "store: embedded"
        ),
    }
    wait_for_store(&store).await?;
    let app = App::start(&config, store, Arc::new(SystemClock)).await?;
    // Commands that write events (`footfall purge`) hand their work over through it.
    let control = crate::control::serve(
        &config.data_dir,
        app.maintenance.clone(),
        app.shutdown.subscribe(),
    )
    .await
    .context("opening the control socket in the data directory")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, "footfall is listening");
    crate::http::server::serve(listener, router(app.state.clone()), shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped accepting; draining the queue");
    let report = app.shutdown().await;
    let _ = control.await;
    if report.left_in_spool > 0 {
        tracing::warn!(
            events = report.left_in_spool,
            "the store did not take every event before exit; they stay in the spool and are written at the next start"
        );
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub(super) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received");
}
