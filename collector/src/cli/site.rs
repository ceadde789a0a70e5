//! `footfall site add|list|delete|reset|purge|rules`: the sites, and a site owner's controls.

use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Accept events for DOMAIN.
    Add {
        /// The site's domain, as the tracker sends it (e.g. example.com).
        domain: String,
        /// IANA time zone in which the site's days are cut.
        #[arg(long, default_value = "UTC")]
        timezone: String,
    },
    /// List the sites.
    List,
    /// Delete a site with its events, daily totals, imports, goals, settings, API keys,
    /// shared links and viewer grants.
    Delete {
        domain: String,
        /// Confirms the deletion (it cannot be undone).
        #[arg(long)]
        yes: bool,
    },
    /// Delete a site's events, daily totals and imports; the site, its goals, keys and
    /// links stay.
    Reset {
        domain: String,
        /// Confirms the reset (it cannot be undone).
        #[arg(long)]
        yes: bool,
    },
    /// Delete the events of some pages, or of some days, or of some pages on some days.
    Purge {
        domain: String,
        /// Pages whose events go; `*` stands for any run of characters (`/admin/*`).
        #[arg(long)]
        path: Option<String>,
        /// The first site-local day (YYYY-MM-DD) whose events go.
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// The last site-local day (YYYY-MM-DD) whose events go.
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
    },
    /// Show or change a site's retention and exclusions. A list given replaces the stored
    /// one; `--clear` empties every list and returns retention to the server's first.
    Rules(RulesArgs),
}

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    pub domain: String,
    /// Days raw events are kept (at most the server's), or `server`.
    #[arg(long)]
    pub raw_days: Option<String>,
    /// Days daily totals are kept (at most the server's), or `server`.
    #[arg(long)]
    pub aggregate_days: Option<String>,
    /// An address or network whose requests are not recorded (repeat for more).
    #[arg(long = "exclude-ip")]
    pub exclude_ips: Vec<String>,
    /// A two-letter country code whose visitors are not recorded (repeat for more).
    #[arg(long = "exclude-country")]
    pub exclude_countries: Vec<String>,
    /// A page path not recorded; `*` for any run of characters (repeat for more).
    #[arg(long = "exclude-page")]
    pub exclude_pages: Vec<String>,
    /// Record only pages on this host name, e.g. `*.example.com` (repeat for more).
    #[arg(long = "allow-hostname")]
    pub allowed_hostnames: Vec<String>,
    /// Start from the defaults instead of the stored settings.
    #[arg(long)]
    pub clear: bool,
}

fn days_arg(name: &str, v: &str) -> anyhow::Result<Option<u32>> {
    if v == "server" {
        return Ok(None);
    }
    v.parse::<u32>()
        .map(Some)
        .map_err(|_| anyhow::anyhow!("--{name} is a number of days or `server`, not `{v}`"))
}

async fn rules(config: &Config, a: RulesArgs) -> anyhow::Result<()> {
    let store = super::open_migrated_store(config).await?;
    let site = crate::import::site_named(store.as_ref(), &a.domain).await?;
    let mut s = if a.clear {
        crate::sites::SiteSettings::default()
    } else {
        crate::sites::settings_of(store.as_ref(), site.id).await?
    };
    let changing = a.clear
        || a.raw_days.is_some()
        || a.aggregate_days.is_some()
        || !a.exclude_ips.is_empty()
        || !a.exclude_countries.is_empty()
        || !a.exclude_pages.is_empty()
        || !a.allowed_hostnames.is_empty();
    if let Some(v) = &a.raw_days {
        s.raw_retention_days = days_arg("raw-days", v)?;
    }
    if let Some(v) = &a.aggregate_days {
        s.aggregate_retention_days = days_arg("aggregate-days", v)?;
    }
    for (given, list) in [
        (a.exclude_ips, &mut s.exclude_ips),
        (a.exclude_countries, &mut s.exclude_countries),
        (a.exclude_pages, &mut s.exclude_pages),
        (a.allowed_hostnames, &mut s.allowed_hostnames),
    ] {
        if !given.is_empty() {
            *list = given;
        }
    }
    let limits = crate::sites::Limits {
        raw_retention_days: config.raw_retention_days,
        aggregate_retention_days: config.aggregate_retention_days,
    };
    if changing {
        s = crate::sites::save_settings(store.as_ref(), site.id, &s, limits).await?;
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(" ")
        }
    };
    println!(
        "{}\nraw events kept\t{} days{}\ndaily totals kept\t{} days{}\nexcluded addresses\t{}\nexcluded countries\t{}\nexcluded pages\t{}\nallowed host names\t{}",
        site.domain,
        s.raw_days(limits.raw_retention_days),
        if s.raw_retention_days.is_none() {
            " (the server's)"
        } else {
            ""
        },
        s.aggregate_days(limits.aggregate_retention_days),
        if s.aggregate_retention_days.is_none() {
            " (the server's)"
        } else {
            ""
        },
        list(&s.exclude_ips),
        list(&s.exclude_countries),
        list(&s.exclude_pages),
        list(&s.allowed_hostnames),
    );
    if changing {
        println!("saved; a running collector applies it within 10 s");
    }
    Ok(())
}

/// Deletes, resets or purges through the running collector when one serves the data
/// directory (it holds the embedded store), else on the store itself.
async fn site_job(config: &Config, job: crate::control::SiteJob) -> anyhow::Result<()> {
    let done = match crate::control::ask_site(&config.data_dir, &job).await? {
        Some(done) => done,
        None => {
            let store = super::open_migrated_store(config).await?;
            crate::control::run_site_job(store.as_ref(), &job, chrono::Utc::now()).await?
        }
    };
    println!("{}", done.text(&job.domain));
    Ok(())
}

pub async fn run(config: &Config, cmd: SiteCommand) -> anyhow::Result<()> {
    match cmd {
        SiteCommand::Add { domain, timezone } => {
            let domain = validate_domain(&domain)?;
            let timezone = validate_timezone(&timezone)?;
            let store = super::open_migrated_store(config).await?;
            let site = store.meta().add_site(&domain, &timezone).await?;
            println!(
                "added {} (id {}, time zone {})",
                site.domain, site.id, site.timezone
            );
        }
        SiteCommand::List => {
            let store = super::open_migrated_store(config).await?;
            for site in store.meta().sites().await? {
                println!("{}\t{}\t{}", site.id, site.domain, site.timezone);
            }
        }
        SiteCommand::Delete { domain, yes } | SiteCommand::Reset { domain, yes } if !yes => {
            anyhow::bail!(
                "this deletes {domain}'s statistics for good; run it again with --yes to go ahead"
            );
        }
        SiteCommand::Delete { domain, .. } => {
            let domain = validate_domain(&domain)?;
            let action = crate::control::SiteAction::Delete;
            site_job(config, crate::control::SiteJob { domain, action }).await?;
        }
        SiteCommand::Reset { domain, .. } => {
            let domain = validate_domain(&domain)?;
            let action = crate::control::SiteAction::Reset;
            site_job(config, crate::control::SiteJob { domain, action }).await?;
        }
        SiteCommand::Purge {
            domain,
            path,
            from,
            to,
        } => {
            let domain = validate_domain(&domain)?;
            let action = crate::control::SiteAction::Purge(crate::sites::Purge { from, to, path });
            site_job(config, crate::control::SiteJob { domain, action }).await?;
        }
        SiteCommand::Rules(a) => rules(config, a).await?,
    }
    Ok(())
}

/// A site domain: lower-case host name (a leading `www.` removed), at most 253 bytes.
pub fn validate_domain(raw: &str) -> anyhow::Result<String> {
    let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let d = crate::ingest::page::strip_www(&d).to_string();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if d.is_empty() || d.len() > 253 || !d.split('.').all(label_ok) {
        anyhow::bail!("`{raw}` is not a valid domain (expected something like example.com)");
    }
    Ok(d)
}

/// An IANA time zone name known to the tz database.
pub fn validate_timezone(raw: &str) -> anyhow::Result<String> {
    raw.parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_string())
        .map_err(|_| anyhow::anyhow!("`{raw}` is not an IANA time zone (e.g. Europe/Copenhagen)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(validate_domain("WWW.Example.com.").unwrap(), "example.com");
        assert_eq!(
            validate_domain("shop.example.co.uk").unwrap(),
            "shop.example.co.uk"
        );
        for bad in [
            "",
            "exa mple.com",
            "a..b",
            "-a.com",
            "a.com/path",
            "'; DROP TABLE sites; --",
        ] {
            assert!(validate_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timezones() {
        assert_eq!(
            validate_timezone("Europe/Copenhagen").unwrap(),
            "Europe/Copenhagen"
        );
        assert!(validate_timezone("Mars/Olympus").is_err());
        assert!(validate_timezone("UTC'); DROP").is_err());
    }
}
