//! `footfall import`: history from elsewhere.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::import::access_log::Format;
use crate::import::plausible::{HistoryJob, ImportRecord, Limits, PlausibleSummary, run_job};
use crate::import::{AccessLogJob, import_access_log, validate};
use crate::ingest::geoip::GeoIp;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a web server's access log: Apache or nginx (common, combined, combined-vhost,
    /// nginx JSON), Caddy (JSON), CloudFront or IIS (W3C), plain or gzip (`-` reads standard
    /// input). Importing a file again, or after it has
    /// grown, imports only what is new.
    AccessLog(AccessLogArgs),
    /// Import a Plausible CSV export (the ZIP from Plausible's Imports & Exports settings).
    /// Days the site has data of its own for, or that an earlier import holds, are left out.
    Plausible(PlausibleArgs),
    /// Import a Google Analytics 4 property through the Analytics Data API, signed in with a
    /// service account's key (add the account's e-mail as a Viewer of the property).
    Ga4(Ga4Args),
    /// List a site's imports of aggregate history (Plausible, GA4).
    List(SiteArg),
    /// Delete one import of aggregate history by its id (`footfall import list` shows them).
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct PlausibleArgs {
    /// The site to import into (its domain, as `footfall site add` named it).
    #[arg(long)]
    pub site: String,
    /// The export archive (`<domain>_<date>.zip`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct Ga4Args {
    /// The site to import into (its domain).
    #[arg(long)]
    pub site: String,
    /// The GA4 property's id (digits).
    #[arg(long)]
    pub property: String,
    /// The service account's key file (JSON).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// First day (YYYY-MM-DD); default: as far back as aggregate retention keeps.
    #[arg(long)]
    pub from: Option<chrono::NaiveDate>,
    /// Last day; default: yesterday.
    #[arg(long)]
    pub to: Option<chrono::NaiveDate>,
    /// Seconds to wait when GA4's quota is used up, before asking again.
    #[arg(long, default_value_t = 900)]
    pub quota_wait: u64,
    /// Rows asked per page (1 to 250,000).
    #[arg(long, default_value_t = crate::import::ga4::PAGE_ROWS)]
    pub page_rows: u64,
    /// The Data API's address.
    #[arg(long, hide = true, default_value = crate::import::ga4::API)]
    pub api: String,
}

#[derive(Debug, Args)]
pub struct SiteArg {
    /// The site (its domain).
    #[arg(long)]
    pub site: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The site (its domain).
    #[arg(long)]
    pub site: String,
    /// The import's id.
    pub id: u32,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write a site's own data as a Plausible CSV export (a ZIP Plausible's Imports & Exports
    /// settings, or `footfall import plausible`, read back).
    Plausible(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The site (its domain).
    #[arg(long)]
    pub site: String,
    /// First day (YYYY-MM-DD, in the site's time zone); default: the site's first day of data.
    #[arg(long)]
    pub from: Option<chrono::NaiveDate>,
    /// Last day; default: yesterday (today is not over yet).
    #[arg(long)]
    pub to: Option<chrono::NaiveDate>,
    /// Where to write the archive; default: `<domain with _ for .>_<today>.zip` here.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Runs `job` in the running collector if there is one, else on the store here.
async fn history(config: &Config, job: HistoryJob) -> anyhow::Result<serde_json::Value> {
    if let Some(answer) = crate::control::ask_history(&config.data_dir, &job).await? {
        return Ok(answer);
    }
    let store = super::open_migrated_store(config).await?;
    let limits = Limits {
        now: chrono::Utc::now(),
        raw_retention_days: config.raw_retention_days,
        aggregate_retention_days: config.aggregate_retention_days,
    };
    Ok(run_job(store.as_ref(), limits, &job).await?)
}

/// `path` made absolute (the running collector resolves it in its own directory).
fn absolute(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path)
        .with_context(|| format!("{}: cannot resolve the path", path.display()))
}

pub async fn export(config: &Config, cmd: ExportCommand) -> anyhow::Result<()> {
    let ExportCommand::Plausible(args) = cmd;
    if let (Some(from), Some(to)) = (args.from, args.to) {
        anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    }
    let output = match args.output {
        Some(p) => p,
        None => {
            let domain =
                crate::ingest::page::strip_www(&args.site.trim().to_ascii_lowercase()).to_string();
            PathBuf::from(format!(
                "{}_{}.zip",
                domain.replace('.', "_"),
                chrono::Utc::now().format("%Y%m%d")
            ))
        }
    };
    let path = absolute(&output)?;
    if let Some(dir) = path.parent() {
        anyhow::ensure!(dir.is_dir(), "{}: no such directory", dir.display());
    }
    let answer = history(
        config,
        HistoryJob::ExportPlausible {
            site: args.site,
            path: path.clone(),
            from: args.from,
            to: args.to,
        },
    )
    .await?;
    println!(
        "wrote {} ({} bytes, {} to {})",
        path.display(),
        answer["bytes"],
        answer["from"].as_str().unwrap_or(""),
        answer["to"].as_str().unwrap_or("")
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct AccessLogArgs {
    /// The site the log belongs to (its domain, as `footfall site add` named it).
    #[arg(long)]
    pub site: String,
    /// The lines' layout; `auto` tells them apart line by line.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// Leave out request paths matching this pattern (`*` is any run of characters, e.g.
    /// `/admin/*`); may be given several times.
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Keep reading the last file as it grows, across its rotations (renamed and created
    /// anew, or truncated), until stopped with Ctrl-C or SIGTERM; the files before it are
    /// read first. Rows are written within two seconds of their line.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Log files, plain or gzip; `-` for standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub async fn run(config: &Config, cmd: ImportCommand) -> anyhow::Result<()> {
    match cmd {
        ImportCommand::Plausible(args) => {
            let path = absolute(&args.file)?;
            anyhow::ensure!(path.is_file(), "{}: no such file", args.file.display());
            let answer = history(
                config,
                HistoryJob::ImportPlausible {
                    site: args.site,
                    path,
                },
            )
            .await?;
            let summary: PlausibleSummary = serde_json::from_value(answer)?;
            println!("{}", summary.render());
            Ok(())
        }
        ImportCommand::Ga4(args) => {
            let key = absolute(&args.key)?;
            anyhow::ensure!(key.is_file(), "{}: no such file", args.key.display());
            let job = crate::import::ga4::Ga4Job {
                site: args.site,
                property: args.property,
                key,
                from: args.from,
                to: args.to,
                api: args.api,
                page_rows: args.page_rows,
                quota_wait_secs: args.quota_wait,
            };
            crate::import::ga4::validate(&job)?;
            // A running collector does the import (its progress goes to its log); else this
            // process does, with progress here.
            let running =
                crate::control::ask_history(&config.data_dir, &HistoryJob::ImportGa4(job.clone()))
                    .await?;
            let summary = if let Some(answer) = running {
                serde_json::from_value::<PlausibleSummary>(answer)?
            } else {
                let store = super::open_migrated_store(config).await?;
                crate::import::ga4::import_ga4(
                    store.as_ref(),
                    &job,
                    chrono::Utc::now(),
                    config.aggregate_retention_days,
                    &mut |line| eprintln!("{line}"),
                )
                .await?
            };
            println!("{}", summary.render());
            Ok(())
        }
        ImportCommand::List(args) => {
            let answer = history(config, HistoryJob::List { site: args.site }).await?;
            let imports: Vec<ImportRecord> = serde_json::from_value(answer)?;
            if imports.is_empty() {
                println!("no imports");
            }
            for i in imports {
                println!(
                    "{}\t{}\t{} to {}\t{} days\t{} rows\t{}{}",
                    i.id,
                    i.source,
                    i.first_day,
                    i.last_day,
                    i.days,
                    i.rows,
                    i.origin,
                    if i.complete {
                        ""
                    } else {
                        "\t(interrupted: delete it and import again)"
                    }
                );
            }
            Ok(())
        }
        ImportCommand::Delete(args) => {
            let answer = history(
                config,
                HistoryJob::Delete {
                    site: args.site,
                    id: args.id,
                },
            )
            .await?;
            anyhow::ensure!(
                answer == serde_json::Value::Bool(true),
                "no import {}",
                args.id
            );
            println!("deleted import {}", args.id);
            Ok(())
        }
        ImportCommand::AccessLog(args) => {
            let mut inputs = Vec::with_capacity(args.files.len());
            for f in args.files {
                if f.as_os_str() == "-" {
                    inputs.push(f);
                } else {
                    // The running collector opens the files itself, from its own directory.
                    let abs = std::path::absolute(&f)
                        .with_context(|| format!("{}: cannot resolve the path", f.display()))?;
                    anyhow::ensure!(abs.is_file(), "{}: no such file", f.display());
                    inputs.push(abs);
                }
            }
            let job = AccessLogJob {
                site: args.site,
                format: args.format,
                exclude: args.exclude,
                inputs,
                follow: args.follow,
            };
            validate(&job)?;
            // Ctrl-C or SIGTERM stops the import where it is; the summary is still printed.
            let (stop_tx, stop) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                super::serve::shutdown_signal().await;
                let _ = stop_tx.send(true);
            });
            let stdin = job.inputs.iter().any(|p| p.as_os_str() == "-");
            let running = crate::control::ask(&config.data_dir, "ping")
                .await?
                .is_some();
            let summary = if running {
                anyhow::ensure!(
                    !stdin,
                    "a footfall serving {} does the import, and it cannot read this command's \
                     standard input: save the log to a file and name the file",
                    config.data_dir.display()
                );
                crate::control::ask_import(&config.data_dir, &job, stop, &mut |p| eprintln!("{p}"))
                    .await?
                    .context("the running footfall stopped answering")?
            } else {
                let store = super::open_migrated_store(config).await?;
                let geoip = if config.geoip_db.is_empty() {
                    None
                } else {
                    Some(std::sync::Arc::new(GeoIp::open_all(&config.geoip_db)?))
                };
                import_access_log(
                    store,
                    geoip,
                    config.raw_retention_days,
                    chrono::Utc::now(),
                    &job,
                    stop,
                    &mut |p| eprintln!("{}", p.render()),
                )
                .await?
            };
            println!("{}", summary.render());
            Ok(())
        }
    }
}
