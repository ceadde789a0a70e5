//! Counters of what the collector did, rendered in the Prometheus text format at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::ingest::pipeline::DropReason;
use crate::reports::MailKind;

/// Process-wide counters; cheap to bump from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub queue_full: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    pub written: AtomicU64,
    pub write_errors: AtomicU64,
    pub queued: AtomicU64,
    /// Events appended to the spool.
    pub spooled: AtomicU64,
    /// Bytes of spool segments on disk.
    pub spool_bytes: AtomicU64,
    /// Groups of requests refused because the spool was full.
    pub spool_full: AtomicU64,
    /// Damaged spool segment tails found.
    pub spool_corrupt: AtomicU64,
    /// Damaged tails deleted once older than the raw retention.
    pub spool_corrupt_deleted: AtomicU64,
    /// Requests refused by the per-IP rate limit.
    pub rate_limited: AtomicU64,
    /// Requests refused because too many were in flight.
    pub overloaded: AtomicU64,
    /// Reports and alerts sent, failed attempts (each retried later), and messages given up
    /// after the last attempt; by kind.
    mail_sent: [AtomicU64; MailKind::ALL.len()],
    mail_failed: [AtomicU64; MailKind::ALL.len()],
    mail_given_up: [AtomicU64; MailKind::ALL.len()],
    /// Messages in the store's outbox waiting for a (first or next) attempt, and messages
    /// given up still listed there; as of the last mail round.
    pub mail_pending: AtomicU64,
    pub mail_undelivered: AtomicU64,
    batch_seconds: Histogram,
    request_seconds: Histogram,
}

/// What became of one attempt to send a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailOutcome {
    Sent,
    Failed,
    GivenUp,
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A latency histogram with fixed buckets (cumulative when rendered).
#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    /// Observations above the last bucket.
    over: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        match BUCKETS.iter().position(|b| secs <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut total = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            total += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {total}");
        }
        total += self.over.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

impl Metrics {
    pub fn dropped(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long a store write took.
    pub fn observe_batch(&self, d: Duration) {
        self.batch_seconds.observe(d);
    }

    /// Records how long an ingest request took to answer.
    pub fn observe_request(&self, d: Duration) {
        self.request_seconds.observe(d);
    }

    /// Counts a report or alert sent, an attempt that failed, or a message given up.
    pub fn mail(&self, kind: MailKind, outcome: MailOutcome) {
        let counters = match outcome {
            MailOutcome::Sent => &self.mail_sent,
            MailOutcome::Failed => &self.mail_failed,
            MailOutcome::GivenUp => &self.mail_given_up,
        };
        counters[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "footfall_events_received_total",
            "Event requests received.",
            get(&self.received),
        );
        counter(
            &mut out,
            "footfall_events_accepted_total",
            "Events accepted into the queue.",
            get(&self.accepted),
        );
        counter(
            &mut out,
            "footfall_events_rejected_total",
            "Event requests refused as malformed.",
            get(&self.rejected),
        );
        counter(
            &mut out,
            "footfall_events_queue_full_total",
            "Event requests refused with 503 because the queue was full.",
            get(&self.queue_full),
        );
        counter(
            &mut out,
            "footfall_events_written_total",
            "Events written to the store.",
            get(&self.written),
        );
        counter(
            &mut out,
            "footfall_store_write_errors_total",
            "Failed batch writes (retried).",
            get(&self.write_errors),
        );
        let _ = writeln!(
            out,
            "# HELP footfall_events_dropped_total Events dropped on purpose, by reason.\n# TYPE footfall_events_dropped_total counter"
        );
        for reason in DropReason::ALL {
            let _ = writeln!(
                out,
                "footfall_events_dropped_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                self.dropped_count(reason)
            );
        }
        counter(
            &mut out,
            "footfall_events_spooled_total",
            "Events appended to the on-disk spool (every accepted event is).",
            get(&self.spooled),
        );
        counter(
            &mut out,
            "footfall_spool_full_total",
            "Groups of requests refused with 503 because the spool was at its size limit.",
            get(&self.spool_full),
        );
        counter(
            &mut out,
            "footfall_spool_corrupt_total",
            "Damaged spool segment tails found (kept aside as .corrupt).",
            get(&self.spool_corrupt),
        );
        counter(
            &mut out,
            "footfall_spool_corrupt_deleted_total",
            "Damaged spool tails deleted once older than raw_retention_days.",
            get(&self.spool_corrupt_deleted),
        );
        counter(
            &mut out,
            "footfall_requests_rate_limited_total",
            "Ingest requests refused with 429 by the per-IP rate limit.",
            get(&self.rate_limited),
        );
        counter(
            &mut out,
            "footfall_requests_overloaded_total",
            "Ingest requests refused with 503 because too many were in flight.",
            get(&self.overloaded),
        );
        for (name, help, counters) in [
            (
                "footfall_mail_sent_total",
                "Reports and alerts accepted by the SMTP server, by kind.",
                &self.mail_sent,
            ),
            (
                "footfall_mail_failures_total",
                "Attempts to send a report or alert that failed (each is tried again later), by kind.",
                &self.mail_failed,
            ),
            (
                "footfall_mail_given_up_total",
                "Reports and alerts given up after their last attempt, by kind.",
                &self.mail_given_up,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for kind in MailKind::ALL {
                let _ = writeln!(
                    out,
                    "{name}{{kind=\"{}\"}} {}",
                    kind.as_str(),
                    get(&counters[kind as usize])
                );
            }
        }
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            &mut out,
            "footfall_events_queued",
            "Events accepted and waiting for the spool.",
            get(&self.queued),
        );
        gauge(
            &mut out,
            "footfall_spool_bytes",
            "Bytes of spooled events not yet written to the store.",
            get(&self.spool_bytes),
        );
        gauge(
            &mut out,
            "footfall_mail_pending",
            "Reports and alerts in the outbox waiting for an attempt (as of the last mail round).",
            get(&self.mail_pending),
        );
        gauge(
            &mut out,
            "footfall_mail_undelivered",
            "Reports and alerts given up and still listed in the outbox (30 days).",
            get(&self.mail_undelivered),
        );
        self.batch_seconds.render(
            &mut out,
            "footfall_store_write_seconds",
            "Time to write one batch to the store.",
        );
        self.request_seconds.render(
            &mut out,
            "footfall_ingest_request_seconds",
            "Time to answer an ingest request (until its events are on disk).",
        );
        out
    }
}
