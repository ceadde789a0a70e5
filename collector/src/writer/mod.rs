//! The writer: accepted events go to the on-disk spool first, then to the store in batches.
//!
//! ```text
//! handler ──try_reserve──▶ queue (bounded) ──▶ spool thread: append + fsync, then answer 202
//!                                                  │ (a group of requests per record)
//!                                                  ▼
//!                        store task: read the spool in order ─▶ EventWriter::insert_events
//!                                    └─ acknowledged: delete the segment
//! ```
//!
//! The spool thread also hands each record it appended to the store task in memory (up to
//! [`live_capacity`] rows waiting), so a store that keeps up never reads the spool back; a store
//! that falls behind, or a restart, reads it from disk.
//!
//! Promises:
//! - An event answered 202 is on disk (fsynced) before the answer leaves, so it survives a
//!   crash or SIGKILL of the collector and a store outage; it is written once the store
//!   answers again, in the order it arrived.
//! - A full queue, or a spool at its size limit, is answered 503 with `Retry-After`: nothing
//!   is accepted that cannot be kept.
//! - No batch is stored twice. Every spool record carries a random batch id, stamped on its
//!   rows. A write whose outcome is unknown (a timeout, an error after sending, or records
//!   left by an earlier run) is retried only after `EventWriter::batch_written` says it is not
//!   stored; an insert is all or nothing, so one row tells.
//! - A store outage is logged once when it starts and once when it ends. At shutdown, what the
//!   store has not taken within `drain_timeout` stays in the spool for the next start.

pub mod spool;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::store::{EventRow, EventWriter};
use spool::{Next, Position, Record, Spool, SpoolError};

/// Longest a single batch write may take before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// Requests waiting for the spool, at most.
    pub queue_capacity: usize,
    pub drain_timeout: Duration,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
}

/// Why accepted rows could not be kept; answered 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the event queue is full")]
    QueueFull,
    #[error("the spool is full")]
    SpoolFull,
    #[error("the spool cannot be written")]
    SpoolFailed,
    #[error("the collector is stopping")]
    Stopping,
}

struct Accepted {
    rows: Vec<EventRow>,
    done: oneshot::Sender<Result<(), Refused>>,
}

/// The sending side, cloned into every handler.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Accepted>,
}

impl WriterHandle {
    /// Hands `rows` to the spool; resolves once they are on disk, or with why they were not
    /// kept. Never waits for room in the queue.
    pub async fn submit(&self, rows: Vec<EventRow>) -> Result<(), Refused> {
        let permit = self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => Refused::QueueFull,
            mpsc::error::TrySendError::Closed(()) => Refused::Stopping,
        })?;
        let (done, answer) = oneshot::channel();
        permit.send(Accepted { rows, done });
        answer.await.unwrap_or(Err(Refused::Stopping))
    }
}

/// What the writer did by the time it stopped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriterReport {
    pub written: u64,
    /// Accepted events the store had not taken at exit; they stay in the spool and are
    /// written at the next start.
    pub left_in_spool: u64,
}

/// Opens the spool and starts the spool thread and the store task. They stop once every
/// [`WriterHandle`] is dropped and the spool is written out; `shutdown` turning `true` starts
/// the drain deadline for a store that is down.
pub fn spawn(
    store: Arc<dyn EventWriter>,
    config: WriterConfig,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<(WriterHandle, JoinHandle<WriterReport>), SpoolError> {
    let spool = Spool::open(&config.spool_dir, config.spool_max_bytes)?;
    let recovered_end = spool.end();
    if spool.used_bytes() > 0 {
        tracing::info!(
            bytes = spool.used_bytes(),
            "spool holds events from an earlier run; writing them first"
        );
    }
    metrics
        .spool_bytes
        .store(spool.used_bytes(), Ordering::Relaxed);
    let spool = Arc::new(Mutex::new(spool));
    let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
    let shared = Arc::new(Shared {
        spool,
        live: Mutex::new(Live::default()),
        appended: Notify::new(),
        closed: AtomicBool::new(false),
        metrics,
    });
    let group_rows = config.batch_size.max(1);
    let live_rows = live_capacity(config.batch_size);
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name("footfall-spool".into())
        .spawn(move || spool_thread(rx, &thread_shared, group_rows, live_rows))
        .map_err(SpoolError::Io)?;
    let writer = StoreTask {
        store,
        config,
        shared,
        shutdown,
        recovered_end,
        in_outage: false,
        report: WriterReport::default(),
    };
    Ok((WriterHandle { tx }, tokio::spawn(writer.run())))
}

/// Records appended and not yet read by the store task, kept in memory so it need not read
/// them back from disk.
#[derive(Default)]
struct Live {
    /// Each record with where it starts and ends in the spool, in spool order.
    records: VecDeque<(Position, Position, Record)>,
    rows: usize,
}

/// Rows the in-memory hand-off holds at most; appends past it are read from disk.
pub fn live_capacity(batch_size: usize) -> usize {
    batch_size.saturating_mul(2).clamp(1, 100_000)
}

struct Shared {
    spool: Arc<Mutex<Spool>>,
    live: Mutex<Live>,
    appended: Notify,
    /// The queue is closed and the spool thread has appended its last record.
    closed: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn spool(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Appends what waits in the queue as one record per round (a group commit), then answers
/// every request of the group.
fn spool_thread(
    mut rx: mpsc::Receiver<Accepted>,
    shared: &Shared,
    group_rows: usize,
    live_rows: usize,
) {
    let metrics = &shared.metrics;
    let mut group: Vec<Accepted> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut rows = first.rows.len();
        group.push(first);
        while rows < group_rows {
            match rx.try_recv() {
                Ok(next) => {
                    rows += next.rows.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let batch_id = loop {
            let id = rand::random::<u64>();
            if id != 0 {
                break id;
            }
        };
        let mut record = Record {
            batch_id,
            rows: Vec::with_capacity(rows),
        };
        let mut answers = Vec::with_capacity(group.len());
        for accepted in group.drain(..) {
            record.rows.extend(
                accepted
                    .rows
                    .into_iter()
                    .map(|r| EventRow { batch_id, ..r }),
            );
            answers.push(accepted.done);
        }
        let result = {
            let mut spool = shared.spool();
            let result = spool.append(&record);
            metrics
                .spool_bytes
                .store(spool.used_bytes(), Ordering::Relaxed);
            result
        };
        let answer = match result {
            Ok((start, end)) => {
                let n = record.rows.len();
                metrics.spooled.fetch_add(n as u64, Ordering::Relaxed);
                let mut live = shared.live();
                if live.rows + n <= live_rows {
                    live.rows += n;
                    live.records.push_back((start, end, record));
                }
                drop(live);
                shared.appended.notify_one();
                Ok(())
            }
            Err(SpoolError::Full { used, max }) => {
                metrics.spool_full.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(used, max, "spool full; refusing events with 503");
                Err(Refused::SpoolFull)
            }
            Err(SpoolError::Io(error)) => {
                tracing::error!(%error, "cannot write the spool; refusing events with 503");
                Err(Refused::SpoolFailed)
            }
        };
        for done in answers {
            let _ = done.send(answer);
        }
    }
    shared.closed.store(true, Ordering::SeqCst);
    shared.appended.notify_one();
}

struct StoreTask {
    store: Arc<dyn EventWriter>,
    config: WriterConfig,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    /// Records before this position were spooled by an earlier run: they may be stored.
    recovered_end: Position,
    in_outage: bool,
    report: WriterReport,
}

impl StoreTask {
    async fn run(mut self) -> WriterReport {
        let batch_size = self.config.batch_size.max(1);
        let start = self.shared.spool().start();
        let mut cursor = self.recover(start).await;
        let mut read_at = cursor;
        let mut pending: Vec<EventRow> = Vec::new();
        let mut first_seen: Option<Instant> = None;
        loop {
            // Closed is read before the spool, so nothing appended before it is missed.
            let closed = self.shared.closed.load(Ordering::SeqCst);
            while pending.len() < batch_size {
                match self.read(read_at) {
                    Some((record, next)) => {
                        pending.extend(record.rows);
                        read_at = next;
                    }
                    None => break,
                }
            }
            if pending.is_empty() {
                if closed {
                    break;
                }
                self.wait(None).await;
                continue;
            }
            let since = *first_seen.get_or_insert_with(Instant::now);
            let due = since + self.config.flush_interval;
            if pending.len() < batch_size && !closed && Instant::now() < due {
                self.wait(Some(due)).await;
                continue;
            }
            if !self.write(std::mem::take(&mut pending).into()).await {
                break;
            }
            cursor = read_at;
            first_seen = None;
            let mut spool = self.shared.spool();
            if let Err(error) = spool.release(cursor) {
                tracing::error!(%error, "cannot delete a written spool segment");
            }
            self.shared
                .metrics
                .spool_bytes
                .store(spool.used_bytes(), Ordering::Relaxed);
        }
        self.report.left_in_spool = self.count_unwritten(cursor);
        tracing::info!(
            written = self.report.written,
            left_in_spool = self.report.left_in_spool,
            "writer stopped"
        );
        self.report
    }

    /// The next record at `at`: from memory when the spool thread handed it over, else from
    /// disk, reporting corrupt tails it skipped.
    fn read(&self, at: Position) -> Option<(Record, Position)> {
        {
            let mut live = self.shared.live();
            while let Some((start, end, record)) = live.records.pop_front() {
                if end <= at {
                    // Already read from disk.
                    live.rows -= record.rows.len();
                    continue;
                }
                if start == at {
                    live.rows -= record.rows.len();
                    return Some((record, end));
                }
                // Ahead of `at` (the disk holds records first, or `at` is a segment's end).
                live.records.push_front((start, end, record));
                break;
            }
        }
        let mut spool = self.shared.spool();
        let next = spool.read(at);
        for c in spool.take_corruptions() {
            self.shared
                .metrics
                .spool_corrupt
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                segment = c.segment,
                offset = c.offset,
                bytes = c.bytes,
                reason = %c.reason,
                "spool segment damaged; its readable part is replayed, the rest is kept aside as .corrupt"
            );
        }
        match next {
            Ok(Next::Record(record, after)) => Some((record, after)),
            Ok(Next::End) => None,
            Err(error) => {
                tracing::error!(%error, "cannot read the spool");
                None
            }
        }
    }

    /// Events still in the spool from `at` on.
    fn count_unwritten(&self, mut at: Position) -> u64 {
        let mut n = 0;
        while let Some((record, next)) = self.read(at) {
            n += record.rows.len() as u64;
            at = next;
        }
        n
    }

    /// Waits for an append, shutdown, or `until`.
    async fn wait(&self, until: Option<Instant>) {
        let deadline = until.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        let mut shutdown = self.shutdown.clone();
        let stopping = *shutdown.borrow();
        tokio::select! {
            () = self.shared.appended.notified() => {}
            () = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed(), if !stopping => {}
        }
    }

    /// Writes the pending records as one batch, retrying until they are stored; `false` when
    /// the drain deadline passed first (they stay in the spool).
    async fn write(&mut self, rows: Arc<[EventRow]>) -> bool {
        let mut backoff = FIRST_BACKOFF;
        let mut outage_started = None;
        let mut drain_deadline = None;
        let Some(first_batch) = rows.first().map(|r| r.batch_id) else {
            return true;
        };
        // After a failed attempt the store may hold the batch anyway (the failure came after
        // it was sent), or on a cluster some shards may hold their part: the store says.
        let mut check = false;
        let metrics = self.shared.metrics.clone();
        loop {
            let attempt = async {
                if check && self.store.batch_written(&rows).await? {
                    tracing::info!(
                        batch_id = first_batch,
                        "the failed write had stored the batch; not writing it again"
                    );
                    return Ok(());
                }
                let started = Instant::now();
                self.store.insert_events(rows.clone()).await?;
                metrics.observe_batch(started.elapsed());
                Ok::<(), crate::store::StoreError>(())
            };
            let result = match tokio::time::timeout(WRITE_TIMEOUT, attempt).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("write timed out after {WRITE_TIMEOUT:?}")),
            };
            match result {
                Ok(()) => {
                    let n = rows.len() as u64;
                    metrics.written.fetch_add(n, Ordering::Relaxed);
                    self.report.written += n;
                    if self.in_outage {
                        self.in_outage = false;
                        let secs = outage_started.map_or(0, |s: Instant| s.elapsed().as_secs());
                        tracing::warn!(outage_secs = secs, "store is back; writes resumed");
                    }
                    return true;
                }
                Err(error) => {
                    check = true;
                    metrics.write_errors.fetch_add(1, Ordering::Relaxed);
                    outage_started.get_or_insert_with(Instant::now);
                    if !self.in_outage {
                        self.in_outage = true;
                        tracing::error!(%error, "store write failed; events stay in the spool and are retried");
                    }
                }
            }
            if self.drain_expired(&mut drain_deadline) {
                tracing::warn!(
                    "store still failing at shutdown; events stay in the spool for the next start"
                );
                return false;
            }
            self.pause(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Whether shutdown began more than `drain_timeout` ago (starting the clock at the first
    /// call after it began).
    fn drain_expired(&self, deadline: &mut Option<Instant>) -> bool {
        if !*self.shutdown.borrow() {
            return false;
        }
        Instant::now()
            >= *deadline.get_or_insert_with(|| Instant::now() + self.config.drain_timeout)
    }

    /// Sleeps `d`, waking early when shutdown begins (so the drain deadline starts on time).
    async fn pause(&self, d: Duration) {
        if *self.shutdown.borrow() {
            tokio::time::sleep(d).await;
        } else {
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(d) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Skips the records an earlier run spooled and also stored (it stopped before deleting
    /// them): writes happen in spool order, so the stored ones are a prefix, found by a binary
    /// search on their batch ids. Returns where writing starts.
    async fn recover(&mut self, start: Position) -> Position {
        // Positions only: the records are read again when probed, so a full spool is not
        // held in memory.
        let mut probes: Vec<Position> = Vec::new();
        let mut at = start;
        while at < self.recovered_end {
            let Some((record, next)) = self.read(at) else {
                break;
            };
            if !record.rows.is_empty() {
                probes.push(at);
            }
            at = next;
        }
        let (mut lo, mut hi) = (0, probes.len());
        let mut backoff = FIRST_BACKOFF;
        let mut drain_deadline = None;
        while lo < hi {
            let mid = (lo + hi) / 2;
            let rows = self
                .read(probes[mid])
                .map(|(record, _)| record.rows)
                .unwrap_or_default();
            match self.store.batch_written(&rows).await {
                Ok(true) => lo = mid + 1,
                Ok(false) => hi = mid,
                Err(error) => {
                    if backoff == FIRST_BACKOFF {
                        tracing::warn!(%error, "cannot check the spool against the store yet; retrying");
                    }
                    if self.drain_expired(&mut drain_deadline) {
                        return start;
                    }
                    self.pause(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if lo > 0 {
            tracing::info!(
                batches = lo,
                "spooled batches an earlier run had already stored are skipped"
            );
        }
        probes.get(lo).copied().unwrap_or(at)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use async_trait::async_trait;

    use super::*;
    use crate::store::StoreError;

    /// A store that keeps events in memory and can fail on purpose: `lose_answers` inserts
    /// store their rows and then report an error (the answer lost on the way back);
    /// `refuse` inserts fail without storing anything.
    #[derive(Default)]
    struct Events {
        rows: Mutex<Vec<EventRow>>,
        lose_answers: AtomicU32,
        refuse: AtomicU32,
        /// Milliseconds each insert takes.
        slow_ms: AtomicU32,
    }

    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    #[async_trait]
    impl EventWriter for Events {
        async fn insert_events(&self, events: Arc<[EventRow]>) -> Result<(), StoreError> {
            if take(&self.refuse) {
                return Err(StoreError::Unavailable("refused on purpose".into()));
            }
            let slow = self.slow_ms.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(slow.into())).await;
            self.rows.lock().unwrap().extend_from_slice(&events);
            if take(&self.lose_answers) {
                return Err(StoreError::Unavailable(
                    "connection reset after sending".into(),
                ));
            }
            Ok(())
        }
        async fn batch_written(&self, rows: &[EventRow]) -> Result<bool, StoreError> {
            let Some(probe) = rows.first() else {
                return Ok(true);
            };
            Ok(self
                .rows
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.batch_id == probe.batch_id))
        }
    }

    fn config(dir: &std::path::Path) -> WriterConfig {
        WriterConfig {
            batch_size: 1000,
            flush_interval: Duration::from_millis(10),
            queue_capacity: 100,
            drain_timeout: Duration::from_secs(5),
            spool_dir: dir.to_path_buf(),
            spool_max_bytes: 1 << 30,
        }
    }

    fn row(path: &str) -> EventRow {
        EventRow {
            site_id: 1,
            timestamp: 1_700_000_000,
            name: "pageview".into(),
            pathname: path.into(),
            ..EventRow::default()
        }
    }

    /// Runs a writer over `store`, submits `paths` one request each, then shuts it down.
    async fn run(
        store: Arc<Events>,
        dir: &std::path::Path,
        paths: &[&str],
    ) -> (WriterReport, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let (stop, stopped) = watch::channel(false);
        let (handle, task) = spawn(store, config(dir), metrics.clone(), stopped).unwrap();
        for p in paths {
            handle.submit(vec![row(p)]).await.unwrap();
        }
        drop(handle);
        let _ = stop.send(true);
        (task.await.unwrap(), metrics)
    }

    fn paths(store: &Events) -> Vec<String> {
        let mut p: Vec<String> = store
            .rows
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.pathname.clone())
            .collect();
        p.sort();
        p
    }

    #[tokio::test]
    async fn a_write_whose_answer_was_lost_is_not_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Events::default());
        store.lose_answers.store(1, Ordering::SeqCst);
        let (report, metrics) = run(store.clone(), dir.path(), &["/a", "/b", "/c"]).await;
        assert_eq!(paths(&store), ["/a", "/b", "/c"], "each once");
        assert_eq!(metrics.write_errors.load(Ordering::SeqCst), 1);
        assert_eq!(report.left_in_spool, 0);
        assert!(store.rows.lock().unwrap().iter().all(|r| r.batch_id != 0));
    }

    #[tokio::test]
    async fn records_past_the_in_memory_hand_off_are_read_back_from_disk_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Events::default());
        // The store takes 2 rows per 20 ms while 1,000 single-row records a second arrive: the
        // hand-off (4 rows for a batch size of 2) overflows at once, so the store task reads
        // the overflow from disk while newer records wait in memory.
        store.slow_ms.store(20, Ordering::SeqCst);
        let metrics = Arc::new(Metrics::default());
        let (stop, stopped) = watch::channel(false);
        let config = WriterConfig {
            batch_size: 2,
            ..config(dir.path())
        };
        assert_eq!(live_capacity(config.batch_size), 4);
        let (handle, task) = spawn(store.clone(), config, metrics, stopped).unwrap();
        let sent: Vec<String> = (0..200).map(|i| format!("/{i:03}")).collect();
        for p in &sent {
            handle.submit(vec![row(p)]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(handle);
        let _ = stop.send(true);
        let report = task.await.unwrap();
        let stored: Vec<String> = store
            .rows
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.pathname.clone())
            .collect();
        assert_eq!(stored, sent, "each once, in the order accepted");
        assert_eq!(report.written, 200);
        assert_eq!(report.left_in_spool, 0);
    }

    #[tokio::test]
    async fn a_refused_write_is_retried_until_stored_and_the_spool_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Events::default());
        store.refuse.store(3, Ordering::SeqCst);
        let (report, metrics) = run(store.clone(), dir.path(), &["/a", "/b"]).await;
        assert_eq!(paths(&store), ["/a", "/b"]);
        assert_eq!(metrics.write_errors.load(Ordering::SeqCst), 3);
        assert_eq!(report.written, 2);
        assert_eq!(Spool::open(dir.path(), 1 << 30).unwrap().used_bytes(), 0);
    }

    #[tokio::test]
    async fn records_an_earlier_run_stored_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        // An earlier run spooled five batches, stored the first three, and died before
        // deleting them.
        let store = Arc::new(Events::default());
        {
            let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
            for i in 1..=5u64 {
                let rows = vec![EventRow {
                    batch_id: i,
                    ..row(&format!("/old{i}"))
                }];
                if i <= 3 {
                    store.rows.lock().unwrap().extend(rows.clone());
                }
                spool.append(&Record { batch_id: i, rows }).unwrap();
            }
        }
        let (report, _) = run(store.clone(), dir.path(), &["/new"]).await;
        assert_eq!(
            paths(&store),
            ["/new", "/old1", "/old2", "/old3", "/old4", "/old5"]
        );
        assert_eq!(
            report.written, 3,
            "the two unstored batches and the new one"
        );
    }

    #[tokio::test]
    async fn a_store_down_at_shutdown_leaves_events_in_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Events::default());
        store.refuse.store(u32::MAX, Ordering::SeqCst);
        let metrics = Arc::new(Metrics::default());
        let (stop, stopped) = watch::channel(false);
        let mut c = config(dir.path());
        c.drain_timeout = Duration::from_millis(200);
        let (handle, task) = spawn(store.clone(), c, metrics, stopped).unwrap();
        handle.submit(vec![row("/a"), row("/b")]).await.unwrap();
        drop(handle);
        let _ = stop.send(true);
        let report = task.await.unwrap();
        assert_eq!(report.left_in_spool, 2);
        // The next run writes them.
        store.refuse.store(0, Ordering::SeqCst);
        let (report, _) = run(store.clone(), dir.path(), &[]).await;
        assert_eq!(report.written, 2);
        assert_eq!(paths(&store), ["/a", "/b"]);
    }
}
