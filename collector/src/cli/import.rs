//! `footfall import`: history from elsewhere.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::import::access_log::Format;
use crate::import::{AccessLogJob, import_access_log, validate};
use crate::ingest::geoip::GeoIp;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a web server's access log: Apache or nginx (common, combined, combined-vhost,
    /// nginx JSON), Caddy (JSON), CloudFront or IIS (W3C), plain or gzip (`-` reads standard
    /// input). Importing a file again, or after it has
    /// grown, imports only what is new.
    AccessLog(AccessLogArgs),
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
    /// Log files, plain or gzip; `-` for standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub async fn run(config: &Config, cmd: ImportCommand) -> anyhow::Result<()> {
    match cmd {
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
            };
            validate(&job)?;
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
                crate::control::ask_import(&config.data_dir, &job, &mut |p| eprintln!("{p}"))
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
                    &mut |p| eprintln!("{}", p.render()),
                )
                .await?
            };
            println!("{}", summary.render());
            Ok(())
        }
    }
}
