//! `footfall purge`: drop raw events older than the raw retention, now.

use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::ingest::pipeline::Pipeline;
use crate::maintenance::Maintenance;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let store = super::open_migrated_store(config).await?;
    let maintenance = Maintenance {
        store,
        pipeline: Arc::new(Pipeline::new(None)),
        clock: Arc::new(SystemClock),
        raw_retention_days: config.raw_retention_days,
        aggregate_retention_days: config.aggregate_retention_days,
        spool: Some((
            config.data_dir.join("spool"),
            Arc::new(crate::metrics::Metrics::default()),
        )),
    };
    let days = maintenance.purge().await?;
    println!(
        "dropped {days} day(s) of raw events older than {} days",
        config.raw_retention_days
    );
    Ok(())
}
