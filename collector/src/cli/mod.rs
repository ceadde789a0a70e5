//! The command line: one module per subcommand. Every subcommand reads the same
//! configuration (`--config` or `FOOTFALL_CONFIG`, then `FOOTFALL_*` variables).

pub mod apikey;
pub mod goal;
pub mod import;
pub mod purge;
pub mod serve;
pub mod site;
pub mod user;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, EmbeddedStore};
use crate::store::Store;
use crate::store::clickhouse::ClickHouseStore;
use crate::store::sqlite::SqliteStore;

#[derive(Debug, Parser)]
#[command(
    name = "footfall",
    version,
    about = "Privacy-first, self-hosted web analytics"
)]
pub struct Cli {
    /// TOML configuration file (default: $FOOTFALL_CONFIG, else none).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded store and other local state (overrides FOOTFALL_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector: ingest endpoints, health and metrics.
    Serve,
    /// Manage the sites Footfall accepts events for.
    #[command(subcommand)]
    Site(site::SiteCommand),
    /// Manage dashboard users.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage Stats API keys.
    #[command(subcommand)]
    Apikey(apikey::ApiKeyCommand),
    /// Manage a site's goals (conversions: pageviews of a path, custom events).
    #[command(subcommand)]
    Goal(goal::GoalCommand),
    /// Import history: server access logs, Plausible CSV exports.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Export a site's data in another tool's format.
    #[command(subcommand)]
    Export(import::ExportCommand),
    /// Drop raw events older than the raw retention now.
    Purge,
    /// Apply pending schema migrations and exit.
    Migrate,
}

/// Runs the parsed command line with the process environment.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(dir) = cli.data_dir {
        anyhow::ensure!(!dir.as_os_str().is_empty(), "--data-dir must not be empty");
        config.data_dir = dir;
    }
    match cli.command {
        Command::Serve => serve::run(config).await,
        Command::Site(cmd) => site::run(&config, cmd).await,
        Command::Apikey(cmd) => apikey::run(&config, cmd).await,
        Command::User(cmd) => user::run(&config, cmd).await,
        Command::Goal(cmd) => goal::run(&config, cmd).await,
        Command::Import(cmd) => import::run(&config, cmd).await,
        Command::Export(cmd) => import::export(&config, cmd).await,
        Command::Purge => purge::run(&config).await,
        Command::Migrate => {
            if crate::control::ask(&config.data_dir, "migrate")
                .await?
                .is_some()
            {
                println!("applied 0 migration(s): the running footfall applied them at start");
                return Ok(());
            }
            let store = open_store(&config)?;
            let ran = store.migrate().await.context("migrating the store")?;
            println!(
                "applied {} migration(s){}",
                ran.len(),
                if ran.is_empty() {
                    String::new()
                } else {
                    format!(": {}", ran.join(", "))
                }
            );
            Ok(())
        }
    }
}

/// The store the configuration names: ClickHouse when a URL is set, else the embedded
/// store (`embedded_store`) in the data directory.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match (&config.clickhouse, config.embedded_store) {
        (Some(ch), _) => Ok(Arc::new(ClickHouseStore::new(ch))),
        #[cfg(feature = "duckdb")]
        (None, EmbeddedStore::DuckDb) => Ok(Arc::new(crate::store::duckdb::DuckDbStore::open(
            &config.data_dir,
        )?)),
        (None, _) => Ok(Arc::new(SqliteStore::open(&config.data_dir)?)),
    }
}

/// Opens the store and applies its migrations, unless a collector serves the data directory
/// (it applied them at start, and it alone may open the embedded events file).
pub async fn open_migrated_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = open_store(config)?;
    if crate::control::ask(&config.data_dir, "ping")
        .await?
        .is_none()
    {
        store.migrate().await.context("migrating the store")?;
    }
    Ok(store)
}
