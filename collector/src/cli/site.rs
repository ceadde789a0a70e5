//! `footfall site add DOMAIN --timezone ZONE` and `footfall site list`.

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
