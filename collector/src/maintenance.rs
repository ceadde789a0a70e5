//! Housekeeping that keeps the pipeline's shared state current: the site list, the daily
//! salts (each drawn at random an hour before its day, deleted 48 hours after it began), idle
//! sessions, daily rollups of closed
//! days, and retention of raw events and rollups.
//!
//! Every collector runs it; they agree through the store. [`Maintenance::tick`] does one
//! round and is what tests call with a driven clock; [`Maintenance::run`] repeats it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, NaiveDate};
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::ingest::pipeline::Pipeline;
use crate::ingest::visitor::{Salt, Salts};
use crate::query::rollup::roll_up_closed_days;
use crate::query::run::{Policy, RunError};
use crate::store::{Store, StoreError};

/// How often the site list and the salts are refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// How long before its UTC day a day's salt is drawn.
pub const SALT_AHEAD: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// Days each site rolls up per refresh round, so a backlog never holds up the others.
pub const ROLLUP_DAYS_PER_TICK: usize = 2;
/// How often retention runs.
pub const PURGE_EVERY: Duration = Duration::from_secs(3600);

pub struct Maintenance {
    pub store: Arc<dyn Store>,
    pub pipeline: Arc<Pipeline>,
    pub clock: SharedClock,
    pub raw_retention_days: u32,
    pub aggregate_retention_days: u32,
    /// The spool whose damaged tails retention deletes, and where that is counted.
    pub spool: Option<(std::path::PathBuf, Arc<crate::metrics::Metrics>)>,
}

impl Maintenance {
    /// One round: sites, salts, session sweep, and the rollups of a few closed days.
    pub async fn tick(&self) -> Result<(), StoreError> {
        // First, and whether or not the store answers: idle visits leave memory.
        self.pipeline.sessions.sweep(self.clock.now());
        self.pipeline.set_sites(self.store.meta().sites().await?);
        self.pipeline
            .set_settings(crate::sites::all_settings(self.store.as_ref()).await?);
        self.refresh_salts().await?;
        self.roll_up(ROLLUP_DAYS_PER_TICK).await?;
        Ok(())
    }

    /// Makes sure today's salt exists, and tomorrow's from [`SALT_AHEAD`] before midnight
    /// (UTC), each drawn at random; deletes salts older than yesterday; hands the pipeline
    /// yesterday's, today's and tomorrow's. Collectors that draw at once settle on the
    /// smallest salt stored for the day, and have agreed well before the day starts, so an
    /// outage of the store at midnight changes nothing.
    pub async fn refresh_salts(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let today = now.date_naive();
        let yesterday = today.pred_opt().unwrap_or(today);
        let tomorrow = today.succ_opt().unwrap_or(today);
        let mut due = vec![today];
        let tomorrow_starts = tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        if tomorrow_starts - now <= SALT_AHEAD {
            due.push(tomorrow);
        }
        let mut salts = self.store.meta().salts().await?;
        let missing: Vec<NaiveDate> = due
            .into_iter()
            .filter(|day| !salts.iter().any(|(d, _)| d == day))
            .collect();
        if !missing.is_empty() {
            for day in missing {
                self.store.meta().put_salt(day, &Salt::random()).await?;
            }
            // Read back: if another collector wrote first, its salt is the one.
            salts = self.store.meta().salts().await?;
        }
        self.store.meta().delete_salts_before(yesterday).await?;
        if !salts.iter().any(|(d, _)| *d == today) {
            return Err(StoreError::Query("today's salt was not stored".into()));
        }
        salts.retain(|(d, _)| (yesterday..=tomorrow).contains(d));
        self.pipeline.set_salts(Salts { days: salts });
        Ok(())
    }

    /// Rolls up every closed day that raw events still cover (at most `max_days` per site).
    pub async fn roll_up(&self, max_days: usize) -> Result<usize, StoreError> {
        let policy = Policy {
            now: self.clock.now(),
            raw_retention_days: self.raw_retention_days,
            // Each day's statements have their own deadline (`ROLLUP_DAY_TIMEOUT`).
            deadline: crate::store::Deadline::after(crate::query::rollup::ROLLUP_DAY_TIMEOUT),
            // Rollups and visit rows are exact.
            sample_threshold: 0,
        };
        let days = match roll_up_closed_days(self.store.as_ref(), &policy, max_days).await {
            Ok(days) => days,
            Err(RunError::Store(e)) => return Err(e),
            Err(e) => return Err(StoreError::Query(e.to_string())),
        };
        if days > 0 {
            tracing::info!(days, "daily rollups computed");
        }
        Ok(days)
    }

    /// Rolls up closed days first, then drops raw events older than the raw retention,
    /// rollups older than the aggregate retention, expired dashboard sessions and superseded
    /// record versions; returns the number of raw days dropped.
    pub async fn purge(&self) -> Result<usize, StoreError> {
        self.roll_up(usize::MAX).await?;
        let today = self.clock.now().date_naive();
        let cutoff = retention_cutoff(today, self.raw_retention_days);
        let dropped = self.store.purge_events_before(cutoff).await?;
        if dropped > 0 {
            tracing::info!(days = dropped, before = %cutoff, "raw events purged");
        }
        if let Some((dir, metrics)) = &self.spool {
            // Damaged spool tails hold event rows: they go with raw events of their age.
            let before = std::time::SystemTime::UNIX_EPOCH
                + Duration::from_secs(
                    cutoff
                        .and_hms_opt(0, 0, 0)
                        .unwrap_or_default()
                        .and_utc()
                        .timestamp()
                        .max(0) as u64,
                );
            match crate::writer::spool::delete_set_aside_before(dir, before) {
                Ok(0) => {}
                Ok(n) => {
                    metrics
                        .spool_corrupt_deleted
                        .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(files = n, "damaged spool tails past raw retention deleted");
                }
                Err(error) => {
                    tracing::error!(%error, "could not delete damaged spool tails")
                }
            }
        }
        let aggregate_cutoff = retention_cutoff(today, self.aggregate_retention_days);
        let rolled = self.store.purge_rollups_before(aggregate_cutoff).await?;
        if rolled > 0 {
            tracing::info!(parts = rolled, before = %aggregate_cutoff, "rollups purged");
        }
        // Sites that keep less than the server: their own retention.
        crate::sites::enforce_retention(
            self.store.as_ref(),
            crate::sites::Limits {
                raw_retention_days: self.raw_retention_days,
                aggregate_retention_days: self.aggregate_retention_days,
            },
            today,
        )
        .await?;
        let ended = crate::accounts::purge_expired_sessions(
            self.store.as_ref(),
            self.clock.now().timestamp(),
        )
        .await
        .map_err(|e| match e {
            crate::accounts::AccountError::Store(e) => e,
            other => StoreError::Query(other.to_string()),
        })?;
        if ended > 0 {
            tracing::debug!(sessions = ended, "expired dashboard sessions deleted");
        }
        let compacted = self.store.meta().compact_records().await?;
        if compacted > 0 {
            tracing::debug!(rows = compacted, "superseded record versions deleted");
        }
        Ok(dropped)
    }

    /// Repeats [`Self::tick`] and [`Self::purge`] until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut refresh = tokio::time::interval(REFRESH_EVERY);
        let mut purge = tokio::time::interval(PURGE_EVERY);
        let mut failing = false;
        loop {
            let result = tokio::select! {
                _ = refresh.tick() => self.tick().await,
                _ = purge.tick() => self.purge().await.map(|_| ()),
                _ = shutdown.changed() => return,
            };
            match result {
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "maintenance failed; will retry");
                }
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("maintenance recovered");
                }
                _ => {}
            }
        }
    }
}

/// The first UTC day whose raw events are kept.
pub fn retention_cutoff(today: NaiveDate, retention_days: u32) -> NaiveDate {
    today
        .checked_sub_days(Days::new(u64::from(retention_days)))
        .unwrap_or(today)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_keeps_the_last_n_days() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        assert_eq!(
            retention_cutoff(today, 30),
            NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
        );
        assert_eq!(
            retention_cutoff(today, 1),
            NaiveDate::from_ymd_opt(2026, 3, 30).unwrap()
        );
    }
}
