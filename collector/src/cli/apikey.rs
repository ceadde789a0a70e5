//! `footfall apikey create --site DOMAIN | --scope sites:read|sites:provision`, `list`,
//! `revoke ID`: keys for the Stats API (one site) and for the Sites API (a scope).

use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a key; the key is printed once, as the last line.
    Create {
        /// The site a Stats API key may read.
        #[arg(long, required_unless_present = "scope", conflicts_with = "scope")]
        site: Option<String>,
        /// A Sites API key instead: `sites:read` or `sites:provision` (Plausible's Sites API).
        #[arg(long)]
        scope: Option<String>,
        /// What the Sites API key is for (shown in listings).
        #[arg(long, default_value = "", requires = "scope")]
        label: String,
    },
    /// List keys (ids, sites, state; never the keys themselves).
    List,
    /// Revoke a key by its id.
    Revoke { id: String },
}

pub async fn run(config: &Config, cmd: ApiKeyCommand) -> anyhow::Result<()> {
    let store = super::open_migrated_store(config).await?;
    match cmd {
        ApiKeyCommand::Create {
            scope: Some(scope),
            label,
            ..
        } => {
            let scope = crate::apikey::Scope::parse(&scope).ok_or_else(|| {
                anyhow::anyhow!("`--scope` is sites:read or sites:provision, not `{scope}`")
            })?;
            anyhow::ensure!(
                label.chars().count() <= crate::apikey::MAX_LABEL_CHARS,
                "a label is at most {} characters",
                crate::apikey::MAX_LABEL_CHARS
            );
            let now = chrono::Utc::now().timestamp();
            let (secret, key) =
                crate::apikey::create_sites_key(store.as_ref(), scope, &label, "cli", now).await?;
            println!(
                "Sites API key {} ({}; shown once; store it now):",
                key.id,
                scope.name()
            );
            println!("{secret}");
        }
        ApiKeyCommand::Create { site, .. } => {
            let site = site.unwrap_or_default();
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
            for key in crate::apikey::sites_keys(store.as_ref()).await? {
                println!("{}\t{}\tactive\t{}", key.id, key.scope.name(), key.label);
            }
        }
        ApiKeyCommand::Revoke { id } => {
            let id = id.trim().to_ascii_lowercase();
            anyhow::ensure!(
                id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "`{id}` is not a key id (8 hex digits, as `footfall apikey list` shows)"
            );
            anyhow::ensure!(
                store.meta().revoke_api_key(&id).await?
                    || crate::apikey::revoke_sites_key(store.as_ref(), &id).await?,
                "no API key with id {id}"
            );
            println!("revoked {id}");
        }
    }
    Ok(())
}
