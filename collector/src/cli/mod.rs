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
    /// Data-subject requests: a visitor's events, found or erased by the IP address and
    /// user-agent they used, while that day's salt exists (48 hours).
    #[command(subcommand)]
    Subject(SubjectCommand),
    /// Print the privacy notice for a site, written from this configuration.
    PrivacyNotice(PrivacyNoticeArgs),
    /// E-mail through the configured SMTP server (`smtp_url`, `smtp_from`).
    #[command(subcommand)]
    Mail(MailCommand),
    /// Apply pending schema migrations and exit.
    Migrate,
}

#[derive(Debug, clap::Subcommand)]
pub enum MailCommand {
    /// Send a test message and print the server's answer.
    Test {
        /// The address to send it to.
        #[arg(long)]
        to: String,
    },
}

/// `footfall mail test --to ADDR`.
async fn mail(config: &Config, cmd: MailCommand) -> anyhow::Result<()> {
    let MailCommand::Test { to } = cmd;
    let Some(smtp) = &config.smtp else {
        anyhow::bail!("no SMTP server is configured: set smtp_url and smtp_from");
    };
    let mailer = crate::mail::Mailer::new(smtp).map_err(|e| anyhow::anyhow!(e))?;
    let answer = mailer
        .send_test(&to)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    println!(
        "sent through {}; the server answered: {answer}",
        mailer.describe
    );
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum SubjectCommand {
    /// Show the visitor's events (the right of access).
    Find(SubjectArgs),
    /// Delete the visitor's events, and count their closed days again (the right to erasure).
    Erase(SubjectArgs),
}

#[derive(Debug, clap::Args)]
pub struct SubjectArgs {
    /// The IP address the visitor used.
    #[arg(long)]
    pub ip: String,
    /// The browser's user-agent string, exactly as the browser sends it.
    #[arg(long)]
    pub ua: String,
    /// Only this site (its domain); every site when left out.
    #[arg(long)]
    pub site: Option<String>,
}

/// `footfall subject find|erase`: through the running collector when one serves the data
/// directory (it holds the embedded store), else on the store itself.
async fn subject(config: &Config, cmd: SubjectCommand) -> anyhow::Result<()> {
    let (erase, args) = match cmd {
        SubjectCommand::Find(a) => (false, a),
        SubjectCommand::Erase(a) => (true, a),
    };
    let site = match args.site {
        Some(s) => Some(site::validate_domain(&s)?),
        None => None,
    };
    let subject =
        crate::subject::Subject::new(&args.ip, &args.ua, site).map_err(|e| anyhow::anyhow!(e))?;
    let job = crate::control::SubjectJob { erase, subject };
    let answer = match crate::control::ask_subject(&config.data_dir, &job).await? {
        Some(answer) => answer,
        None => {
            let store = open_migrated_store(config).await?;
            let result = if erase {
                crate::subject::erase(store.as_ref(), &job.subject, chrono::Utc::now()).await
            } else {
                crate::subject::find(store.as_ref(), &job.subject).await
            };
            result?
        }
    };
    print!("{}", answer.text());
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct PrivacyNoticeArgs {
    /// The site (its domain).
    #[arg(long)]
    pub site: String,
    /// The language: English or Danish.
    #[arg(long, value_enum, default_value = "en")]
    pub lang: crate::privacy::Lang,
    /// Markdown, or an HTML fragment to paste into a page.
    #[arg(long, value_enum, default_value = "md")]
    pub format: crate::privacy::Format,
    /// Who is responsible for the data, with an address and a contact (else a placeholder
    /// to fill in), e.g. "Example ApS, Street 1, 8000 Aarhus C, privacy@example.com".
    #[arg(long)]
    pub controller: Option<String>,
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
        Command::Subject(cmd) => subject(&config, cmd).await,
        Command::Mail(cmd) => mail(&config, cmd).await,
        Command::PrivacyNotice(args) => {
            let store = open_migrated_store(&config).await?;
            let site = crate::import::site_named(store.as_ref(), &args.site).await?;
            let facts = crate::privacy::Facts::from_config(
                &config,
                &site.domain,
                args.controller.as_deref(),
            )
            .map_err(|e| anyhow::anyhow!(e))?
            .for_site(&crate::sites::settings_of(store.as_ref(), site.id).await?);
            print!("{}", crate::privacy::notice(&facts, args.lang, args.format));
            Ok(())
        }
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
