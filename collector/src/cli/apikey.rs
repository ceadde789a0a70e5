//! `footfall apikey create --site DOMAIN | list | revoke ID`: keys for the Stats API.

use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a key for one site; the key is printed once, as the last line.
    Create {
        /// The site the key may read.
        #[arg(long)]
        site: String,
    },
    /// List keys (ids, sites, state; never the keys themselves).
    List,
    /// Revoke a key by its id.
    Revoke { id: String },
}

pub async fn run(config: &Config, cmd: ApiKeyCommand) -> anyhow::Result<()> {
    let store = super::open_migrated_store(config).await?;
    match cmd {
        ApiKeyCommand::Create { site } => {
            let domain = super::site::validate_domain(&site)?;
            let sites = store.meta().sites().await?;
            let Some(site) = sites.iter().find(|s| s.domain == domain) else {
                anyhow::bail!("no site {domain}; add it first with `footfall site add {domain}`");
            };
            let now = u32::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
            let key = crate::apikey::generate(site.id, now);
            store.meta().add_api_key(&key.record).await?;
            println!(
                "API key {} for {} (shown once; store it now):",
                key.record.id, site.domain
            );
            println!("{}", key.secret);
        }
        ApiKeyCommand::List => {
            let sites = store.meta().sites().await?;
            for key in store.meta().api_keys().await? {
                let domain = sites
                    .iter()
                    .find(|s| s.id == key.site_id)
                    .map_or("?", |s| s.domain.as_str());
                let state = if key.revoked == 0 {
                    "active"
                } else {
                    "revoked"
                };
                println!("{}\t{domain}\t{state}", key.id);
            }
        }
        ApiKeyCommand::Revoke { id } => {
            let id = id.trim().to_ascii_lowercase();
            anyhow::ensure!(
                id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "`{id}` is not a key id (8 hex digits, as `footfall apikey list` shows)"
            );
            anyhow::ensure!(
                store.meta().revoke_api_key(&id).await?,
                "no API key with id {id}"
            );
            println!("revoked {id}");
        }
    }
    Ok(())
}
