//! `footfall purge`: drop raw events older than the raw retention, now: through the running
//! collector when one serves the data directory (see [`crate::control`]), else itself.

use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::ingest::pipeline::Pipeline;
use crate::maintenance::Maintenance;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    // A collector serving this data directory holds the embedded events file: it purges.
    if let Some(days) = crate::control::ask(&config.data_dir, "purge").await? {
        println!(
            "dropped {days} day(s) of raw events older than {} days (through the running footfall)",
            config.raw_retention_days
        );
        return Ok(());
    }
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
