//! Housekeeping that keeps the pipeline's shared state current: the site list, the daily
//! salts (created, ratcheted, deleted after 48 hours), idle sessions and raw-event retention.
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
use crate::store::{Store, StoreError};

/// How often the site list and the salts are refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// How often retention runs.
pub const PURGE_EVERY: Duration = Duration::from_secs(3600);

pub struct Maintenance {
    pub store: Arc<dyn Store>,
    pub pipeline: Arc<Pipeline>,
    pub clock: SharedClock,
    pub raw_retention_days: u32,
}

impl Maintenance {
    /// One round: sites, salts, session sweep.
    pub async fn tick(&self) -> Result<(), StoreError> {
        self.pipeline.set_sites(self.store.sites().await?);
        self.refresh_salts().await?;
        self.pipeline.sessions.sweep(self.clock.now());
        Ok(())
    }

    /// Makes sure today's salt exists (ratcheted from yesterday's when there is one),
    /// deletes salts older than yesterday, and hands today's and yesterday's to the pipeline.
    pub async fn refresh_salts(&self) -> Result<(), StoreError> {
        let today = self.clock.now().date_naive();
        let yesterday = today.pred_opt().unwrap_or(today);
        let mut salts = self.store.salts().await?;
        if !salts.iter().any(|(d, _)| *d == today) {
            let next = match salts.iter().find(|(d, _)| *d == yesterday) {
                Some((_, salt)) => salt.ratchet(),
                None => Salt::random(),
            };
            self.store.put_salt(today, &next).await?;
            // Read back: if another collector wrote first, its salt is the one.
            salts = self.store.salts().await?;
        }
        self.store.delete_salts_before(yesterday).await?;
        let find = |day: NaiveDate| {
            salts
                .iter()
                .find(|(d, _)| *d == day)
                .map(|(_, s)| (day, s.clone()))
        };
        let Some(current) = find(today) else {
            return Err(StoreError::Query("today's salt was not stored".into()));
        };
        self.pipeline.set_salts(Salts {
            today: current,
            yesterday: find(yesterday),
        });
        Ok(())
    }

    /// Drops raw events older than the retention; returns the number of days dropped.
    pub async fn purge(&self) -> Result<usize, StoreError> {
        let cutoff = retention_cutoff(self.clock.now().date_naive(), self.raw_retention_days);
        let dropped = self.store.purge_events_before(cutoff).await?;
        if dropped > 0 {
            tracing::info!(days = dropped, before = %cutoff, "raw events purged");
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
