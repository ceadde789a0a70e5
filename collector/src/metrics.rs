//! Counters of what the collector did, rendered in the Prometheus text format at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ingest::pipeline::DropReason;

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
}

impl Metrics {
    pub fn dropped(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            "footfall_events_received_total",
            "Event requests received.",
            get(&self.received),
        );
        counter(
            "footfall_events_accepted_total",
            "Events accepted into the queue.",
            get(&self.accepted),
        );
        counter(
            "footfall_events_rejected_total",
            "Event requests refused as malformed.",
            get(&self.rejected),
        );
        counter(
            "footfall_events_queue_full_total",
            "Event requests refused with 503 because the queue was full.",
            get(&self.queue_full),
        );
        counter(
            "footfall_events_written_total",
            "Events written to the store.",
            get(&self.written),
        );
        counter(
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
        let _ = writeln!(
            out,
            "# HELP footfall_events_queued Events waiting to be written.\n# TYPE footfall_events_queued gauge\nfootfall_events_queued {}",
            get(&self.queued)
        );
        out
    }
}
