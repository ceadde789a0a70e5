//! The writer: one task that batches accepted events into the store.
//!
//! Handlers hand rows over through a bounded queue ([`WriterHandle::try_enqueue`] never
//! waits: a full queue is answered with 503 by the caller). The writer sends a batch when it
//! holds `batch_size` rows or `flush_interval` has passed since its first row. A failed write
//! keeps the batch and retries it with exponential backoff; while it retries, new events wait
//! in the queue, so memory stays bounded by the queue's capacity. An outage is logged once
//! when it starts and once when it ends. On shutdown the queue closes, the writer drains what
//! is left, and gives up only after `drain_timeout` of failed attempts, logging what it lost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::store::{EventRow, Store};

/// Longest a single batch write may take before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub queue_capacity: usize,
    pub drain_timeout: Duration,
}

/// The sending side, cloned into every handler.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<EventRow>,
    metrics: Arc<Metrics>,
}

/// The queue has no room for the rows offered.
#[derive(Debug, thiserror::Error)]
#[error("the event queue is full")]
pub struct QueueFull;

impl WriterHandle {
    /// Queues all of `rows` or none of them.
    pub fn try_enqueue(&self, rows: Vec<EventRow>) -> Result<(), QueueFull> {
        let permits = self
            .tx
            .try_reserve_many(rows.len())
            .map_err(|_| QueueFull)?;
        let n = rows.len() as u64;
        for (permit, row) in permits.zip(rows) {
            permit.send(row);
        }
        self.metrics.queued.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

/// What the writer did by the time it stopped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriterReport {
    pub written: u64,
    pub lost: u64,
}

/// Starts the writer. It stops once every [`WriterHandle`] is dropped and the queue is
/// drained; `shutdown` turning `true` starts the drain deadline for a store that is down.
pub fn spawn(
    store: Arc<dyn Store>,
    config: WriterConfig,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> (WriterHandle, JoinHandle<WriterReport>) {
    let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
    let handle = WriterHandle {
        tx,
        metrics: metrics.clone(),
    };
    let writer = Writer {
        store,
        config,
        metrics,
        shutdown,
        in_outage: false,
        report: WriterReport::default(),
    };
    (handle, tokio::spawn(writer.run(rx)))
}

struct Writer {
    store: Arc<dyn Store>,
    config: WriterConfig,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    in_outage: bool,
    report: WriterReport,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<EventRow>) -> WriterReport {
        let batch_size = self.config.batch_size.max(1);
        let mut batch = Vec::with_capacity(batch_size.min(100_000));
        loop {
            if batch.is_empty() && rx.recv_many(&mut batch, batch_size).await == 0 {
                break;
            }
            let deadline = Instant::now() + self.config.flush_interval;
            while batch.len() < batch_size {
                let room = batch_size - batch.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            self.write(&batch).await;
            self.metrics
                .queued
                .fetch_sub(batch.len() as u64, Ordering::Relaxed);
            batch.clear();
        }
        tracing::info!(
            written = self.report.written,
            lost = self.report.lost,
            "writer stopped"
        );
        self.report
    }

    /// Writes one batch, retrying until it is stored or the drain deadline has passed.
    async fn write(&mut self, batch: &[EventRow]) {
        let mut backoff = FIRST_BACKOFF;
        let mut outage_started = None;
        let mut drain_deadline = None;
        loop {
            let result =
                match tokio::time::timeout(WRITE_TIMEOUT, self.store.insert_events(batch)).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("write timed out after {WRITE_TIMEOUT:?}")),
                };
            match result {
                Ok(()) => {
                    self.metrics
                        .written
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.report.written += batch.len() as u64;
                    if self.in_outage {
                        self.in_outage = false;
                        let secs = outage_started.map_or(0, |s: Instant| s.elapsed().as_secs());
                        tracing::warn!(outage_secs = secs, "store is back; writes resumed");
                    }
                    return;
                }
                Err(error) => {
                    self.metrics.write_errors.fetch_add(1, Ordering::Relaxed);
                    outage_started.get_or_insert_with(Instant::now);
                    if !self.in_outage {
                        self.in_outage = true;
                        tracing::error!(%error, batch = batch.len(), "store write failed; keeping events and retrying");
                    }
                }
            }
            if *self.shutdown.borrow() {
                let deadline = *drain_deadline
                    .get_or_insert_with(|| Instant::now() + self.config.drain_timeout);
                if Instant::now() >= deadline {
                    self.report.lost += batch.len() as u64;
                    tracing::error!(
                        lost = batch.len(),
                        "store still failing at shutdown; events lost"
                    );
                    return;
                }
            }
            if *self.shutdown.borrow() {
                tokio::time::sleep(backoff).await;
            } else {
                // Wake early when shutdown begins, so the drain deadline starts on time.
                let mut shutdown = self.shutdown.clone();
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
