//! A site owner's controls: per-site retention and exclusions (its [`SiteSettings`]), and
//! deleting a site, resetting its statistics, or purging some of them by page or by date.
//!
//! Settings are a JSON record of the site (kind [`SETTINGS_KIND`]) on every store, so every
//! collector of a deployment reads the same ones; each refresh round hands them to the
//! ingest pipeline ([`Rules`]) and the hourly purge enforces the retention.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::import::access_log::wildcard;
use crate::query::time::local_midnight;
use crate::store::{EventScope, RollupScope, Site, Store, StoreError};

/// The record kind of a site's settings (id: the site id).
pub const SETTINGS_KIND: &str = "site_settings";

/// Most entries in each exclusion list.
pub const MAX_LIST: usize = 500;
/// Longest page pattern or host name, in bytes.
pub const MAX_PATTERN: usize = 1024;

/// The rollup dimensions whose values are page paths.
pub const PAGE_DIMENSIONS: [&str; 3] = ["event:page", "visit:entry_page", "visit:exit_page"];

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a site owner set for one site. Empty lists and `None` leave the server's behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteSettings {
    /// Days raw events are kept: at most the server's `raw_retention_days`.
    pub raw_retention_days: Option<u32>,
    /// Days daily totals are kept: at most the server's `aggregate_retention_days`, and not
    /// fewer than the raw events' days.
    pub aggregate_retention_days: Option<u32>,
    /// Addresses and networks (`203.0.113.7`, `10.0.0.0/8`, `2001:db8::/32`) whose requests
    /// are not recorded.
    pub exclude_ips: Vec<String>,
    /// ISO 3166-1 alpha-2 country codes whose visitors are not recorded (needs GeoIP).
    pub exclude_countries: Vec<String>,
    /// Page paths not recorded; `*` stands for any run of characters (`/admin/*`).
    pub exclude_pages: Vec<String>,
    /// When not empty, only pages on these host names are recorded (`*.example.com`).
    pub allowed_hostnames: Vec<String>,
}

/// The server's limits a site's settings must stay within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub raw_retention_days: u32,
    pub aggregate_retention_days: u32,
}

fn list<T>(
    name: &str,
    raw: &[String],
    one: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, SiteError> {
    if raw.len() > MAX_LIST {
        return Err(SiteError::Invalid(format!(
            "`{name}` has {} entries; at most {MAX_LIST}",
            raw.len()
        )));
    }
    raw.iter()
        .map(|v| one(v.trim()).map_err(|e| SiteError::Invalid(format!("`{name}`: {e}"))))
        .collect()
}

fn shown(v: &str) -> String {
    v.chars().take(64).collect()
}

/// An address or a network, as `10.0.0.0/8` (an address alone is a /32 or /128).
pub fn parse_network(v: &str) -> Result<IpNet, String> {
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    v.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
        format!(
            "`{}` is not an IP address or a network such as 10.0.0.0/8",
            shown(v)
        )
    })
}

fn parse_country(v: &str) -> Result<String, String> {
    let c = v.to_ascii_uppercase();
    if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(c)
    } else {
        Err(format!(
            "`{}` is not a two-letter country code such as DK",
            shown(v)
        ))
    }
}

fn parse_page(v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > MAX_PATTERN {
        return Err(format!("a page pattern has 1 to {MAX_PATTERN} bytes"));
    }
    if !(v.starts_with('/') || v.starts_with('*')) || v.chars().any(char::is_control) {
        return Err(format!(
            "`{}` is not a page path such as /admin/* (it starts with / or *)",
            shown(v)
        ));
    }
    Ok(v.to_string())
}

fn parse_hostname(v: &str) -> Result<String, String> {
    let h = v.trim_end_matches('.').to_ascii_lowercase();
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'*');
    if ok {
        Ok(h)
    } else {
        Err(format!(
            "`{}` is not a host name such as shop.example.com or *.example.com",
            shown(v)
        ))
    }
}

impl SiteSettings {
    /// The settings with each value checked and written one way (`10.1.2.3/8` is
    /// `10.0.0.0/8`, `dk` is `DK`), duplicates dropped; or what is wrong.
    pub fn validated(&self, limits: Limits) -> Result<SiteSettings, SiteError> {
        let raw = self.raw_retention_days;
        if let Some(d) = raw
            && !(1..=limits.raw_retention_days).contains(&d)
        {
            return Err(SiteError::Invalid(format!(
                "raw_retention_days is {d}; a site keeps raw events 1 to {} days (the server's raw_retention_days)",
                limits.raw_retention_days
            )));
        }
        if let Some(d) = self.aggregate_retention_days {
            if !(1..=limits.aggregate_retention_days).contains(&d) {
                return Err(SiteError::Invalid(format!(
                    "aggregate_retention_days is {d}; a site keeps daily totals 1 to {} days (the server's aggregate_retention_days)",
                    limits.aggregate_retention_days
                )));
            }
            let raw_days = raw.unwrap_or(limits.raw_retention_days);
            if d < raw_days {
                return Err(SiteError::Invalid(format!(
                    "aggregate_retention_days ({d}) is shorter than the {raw_days} days raw events are kept"
                )));
            }
        }
        let dedup = |v: Vec<String>| {
            let mut seen = BTreeSet::new();
            v.into_iter()
                .filter(|x| seen.insert(x.clone()))
                .collect::<Vec<_>>()
        };
        Ok(SiteSettings {
            raw_retention_days: raw,
            aggregate_retention_days: self.aggregate_retention_days,
            exclude_ips: dedup(
                list("exclude_ips", &self.exclude_ips, parse_network)?
                    .into_iter()
                    .map(|n| match n {
                        // A single address reads as it was given.
                        n if n.prefix_len() == n.max_prefix_len() => n.addr().to_string(),
                        n => n.to_string(),
                    })
                    .collect(),
            ),
            exclude_countries: dedup(list(
                "exclude_countries",
                &self.exclude_countries,
                parse_country,
            )?),
            exclude_pages: dedup(list("exclude_pages", &self.exclude_pages, parse_page)?),
            allowed_hostnames: dedup(list(
                "allowed_hostnames",
                &self.allowed_hostnames,
                parse_hostname,
            )?),
        })
    }

    /// Days raw events of the site are kept.
    pub fn raw_days(&self, server: u32) -> u32 {
        self.raw_retention_days.unwrap_or(server).min(server)
    }

    /// Days daily totals of the site are kept.
    pub fn aggregate_days(&self, server: u32) -> u32 {
        self.aggregate_retention_days.unwrap_or(server).min(server)
    }

    pub fn has_exclusions(&self) -> bool {
        !(self.exclude_ips.is_empty()
            && self.exclude_countries.is_empty()
            && self.exclude_pages.is_empty()
            && self.allowed_hostnames.is_empty())
    }
}

/// A site's settings as the ingest pipeline checks them.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub settings: SiteSettings,
    networks: Vec<IpNet>,
}

impl Rules {
    pub fn new(settings: SiteSettings) -> Rules {
        let networks = settings
            .exclude_ips
            .iter()
            .filter_map(|n| parse_network(n).ok())
            .collect();
        Rules { settings, networks }
    }

    /// Whether a request from `ip` for `hostname` and `pathname` is excluded (before any
    /// hash is made; the country is checked apart, once looked up).
    pub fn excludes(&self, ip: IpAddr, hostname: &str, pathname: &str) -> bool {
        let ip = ip.to_canonical();
        let s = &self.settings;
        self.networks.iter().any(|n| n.contains(&ip))
            || (!s.allowed_hostnames.is_empty()
                && !s.allowed_hostnames.iter().any(|h| wildcard(h, hostname)))
            || s.exclude_pages.iter().any(|p| wildcard(p, pathname))
    }

    pub fn excludes_country(&self, country: &str) -> bool {
        !country.is_empty() && self.settings.exclude_countries.iter().any(|c| c == country)
    }
}

/// A site's stored settings (the defaults when none are stored, or when the record cannot
/// be read, which is logged).
pub async fn settings_of(store: &dyn Store, site_id: u32) -> Result<SiteSettings, StoreError> {
    let body = store
        .meta()
        .record(SETTINGS_KIND, &site_id.to_string())
        .await?;
    Ok(body.map(|b| parse_stored(site_id, &b)).unwrap_or_default())
}

fn parse_stored(site_id: u32, body: &str) -> SiteSettings {
    serde_json::from_str(body).unwrap_or_else(|error| {
        tracing::error!(site_id, %error, "a site's stored settings are unreadable; using the defaults");
        SiteSettings::default()
    })
}

/// Every site's stored settings, by site id.
pub async fn all_settings(store: &dyn Store) -> Result<HashMap<u32, SiteSettings>, StoreError> {
    Ok(store
        .meta()
        .records(SETTINGS_KIND)
        .await?
        .into_iter()
        .filter_map(|(id, body)| {
            let id: u32 = id.parse().ok()?;
            Some((id, parse_stored(id, &body)))
        })
        .collect())
}

/// Checks and stores a site's settings; returns them as stored.
pub async fn save_settings(
    store: &dyn Store,
    site_id: u32,
    settings: &SiteSettings,
    limits: Limits,
) -> Result<SiteSettings, SiteError> {
    let settings = settings.validated(limits)?;
    let body = serde_json::to_string(&settings).map_err(|e| SiteError::Invalid(e.to_string()))?;
    store
        .meta()
        .put_record(SETTINGS_KIND, &site_id.to_string(), &body)
        .await?;
    tracing::info!(
        site_id,
        raw_retention_days = ?settings.raw_retention_days,
        aggregate_retention_days = ?settings.aggregate_retention_days,
        ips = settings.exclude_ips.len(),
        countries = settings.exclude_countries.len(),
        pages = settings.exclude_pages.len(),
        hostnames = settings.allowed_hostnames.len(),
        "site settings changed"
    );
    Ok(settings)
}

/// What a purge takes: the site-local days `from..=to` (all days when left out), and of them
/// only the events on pages matching `path` when given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Purge {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub path: Option<String>,
}

/// Deleting some or all of a site's data, as the CLI, the control socket and the settings ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Delete,
    Reset,
    Purge(Purge),
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::Reset => "reset",
            Action::Purge(_) => "purge",
        }
    }
}

/// Does `action` on `site`; `now` tells a purge which days are closed.
pub async fn perform(
    store: &dyn Store,
    site: &Site,
    action: &Action,
    now: DateTime<Utc>,
) -> Result<Done, SiteError> {
    match action {
        Action::Delete => delete(store, site).await,
        Action::Reset => reset(store, site).await,
        Action::Purge(p) => purge(store, site, p, now).await,
    }
}

/// What a deletion, reset or purge did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// Raw events deleted (counted before; a purge by page does not count them).
    pub events: Option<u64>,
    /// Page paths whose events were deleted (a purge by page).
    pub paths: Vec<String>,
    /// Closed days whose daily totals were computed again without the deleted events.
    pub recomputed: Vec<NaiveDate>,
    /// Days whose daily totals were deleted (outright, or for the matching pages only).
    pub rollup_days: u64,
    /// Imports of aggregate history deleted.
    pub imports: u64,
    /// Goals, shared links, viewer grants and API keys removed with a deleted site.
    pub goals: u64,
    pub links: u64,
    pub grants: u64,
}

impl Done {
    pub fn text(&self, what: &str) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.events {
            parts.push(format!("{n} raw event(s)"));
        }
        if !self.paths.is_empty() {
            parts.push(format!("the events of {} page path(s)", self.paths.len()));
        }
        if self.rollup_days > 0 {
            parts.push(format!("the daily totals of {} day(s)", self.rollup_days));
        }
        if self.imports > 0 {
            parts.push(format!("{} import(s)", self.imports));
        }
        if self.goals > 0 {
            parts.push(format!("{} goal(s)", self.goals));
        }
        if self.links > 0 {
            parts.push(format!("{} shared link(s)", self.links));
        }
        if self.grants > 0 {
            parts.push(format!("{} viewer grant(s)", self.grants));
        }
        let mut out = if parts.is_empty() {
            format!("{what}: nothing matched")
        } else {
            format!("{what}: deleted {}", parts.join(", "))
        };
        if !self.recomputed.is_empty() {
            out.push_str(&format!(
                "; the daily totals of {} closed day(s) were computed again",
                self.recomputed.len()
            ));
        }
        out
    }
}

fn tz_of(site: &Site) -> Tz {
    site.timezone.parse().unwrap_or(chrono_tz::UTC)
}

fn utc_second(ts: i64) -> u32 {
    u32::try_from(ts.max(0)).unwrap_or(u32::MAX)
}

async fn count_events(
    store: &dyn Store,
    site_id: u32,
    from: u32,
    to: u32,
) -> Result<u64, StoreError> {
    let statement =
        crate::query::sql::count_events(store.dialect(), site_id, i64::from(from), i64::from(to));
    let rows = store
        .run_statement(
            &statement,
            0,
            1,
            crate::store::Deadline::after(std::time::Duration::from_secs(300)),
        )
        .await?;
    Ok(rows
        .first()
        .and_then(|(_, n)| n.first().copied())
        .unwrap_or(0)
        .max(0) as u64)
}

/// Deletes every raw event, visit row and daily total of the site, and its imports of
/// aggregate history (their rows and records, so a file can be imported again).
pub async fn reset(store: &dyn Store, site: &Site) -> Result<Done, SiteError> {
    let mut done = Done {
        events: Some(count_events(store, site.id, 0, u32::MAX).await?),
        ..Done::default()
    };
    done.rollup_days = store
        .rollup_days(site.id, RollupScope::all().from, RollupScope::all().to)
        .await?
        .len() as u64;
    store.delete_events(site.id, &EventScope::all()).await?;
    store.delete_rollups(site.id, &RollupScope::all()).await?;
    for import in crate::import::plausible::imports_of(store, site.id, false).await? {
        store.delete_rollups(import.id, &RollupScope::all()).await?;
        store
            .meta()
            .delete_record(
                crate::import::plausible::IMPORT_KIND,
                &import.id.to_string(),
            )
            .await?;
        done.imports += 1;
    }
    crate::import::forget_site(store, site.id).await?;
    tracing::info!(
        site_id = site.id,
        events = done.events,
        imports = done.imports,
        "site statistics reset"
    );
    Ok(done)
}

/// The record kind of a site's custom properties (its id is the site's): the event property
/// names its staff declared, as Plausible's Sites API lists them. A JSON list, newest first.
pub const CUSTOM_PROPS_KIND: &str = "custom_props";
/// Most custom properties of one site, and the longest name (Plausible's limits).
pub const MAX_CUSTOM_PROPS: usize = 300;
pub const MAX_CUSTOM_PROP_CHARS: usize = 300;

/// A site's declared custom properties, newest first.
pub async fn custom_props(store: &dyn Store, site_id: u32) -> Result<Vec<String>, StoreError> {
    Ok(store
        .meta()
        .record(CUSTOM_PROPS_KIND, &site_id.to_string())
        .await?
        .and_then(|body| serde_json::from_str(&body).ok())
        .unwrap_or_default())
}

pub async fn put_custom_props(
    store: &dyn Store,
    site_id: u32,
    props: &[String],
) -> Result<(), StoreError> {
    let body = serde_json::to_string(props).map_err(|e| StoreError::Query(e.to_string()))?;
    store
        .meta()
        .put_record(CUSTOM_PROPS_KIND, &site_id.to_string(), &body)
        .await
}

/// Deletes the site: its statistics (as [`reset`]), goals, settings, shared links, viewer
/// grants and API keys, then the site itself. Its id is never given to another site.
pub async fn delete(store: &dyn Store, site: &Site) -> Result<Done, SiteError> {
    let mut done = reset(store, site).await?;
    let prefix = format!("{}:", site.id);
    for (id, _) in store.meta().records(crate::goals::GOAL_KIND).await? {
        if id.starts_with(&prefix) {
            store
                .meta()
                .delete_record(crate::goals::GOAL_KIND, &id)
                .await?;
            done.goals += 1;
        }
    }
    crate::annotations::forget_site(store, site.id).await?;
    for kind in [SETTINGS_KIND, CUSTOM_PROPS_KIND] {
        store
            .meta()
            .delete_record(kind, &site.id.to_string())
            .await?;
    }
    let (links, grants) = crate::accounts::forget_site(store, site.id)
        .await
        .map_err(|e| SiteError::Invalid(e.to_string()))?;
    (done.links, done.grants) = (links, grants);
    store.meta().delete_site(site.id).await?;
    tracing::info!(site_id = site.id, "site deleted");
    Ok(done)
}

/// Deletes the raw events that `purge` names. A purge by date also deletes those days'
/// visit rows and daily totals. A purge by page computes the daily totals of the closed
/// days whose raw events remain again; on older days, whose raw events are gone, it
/// deletes the rows of the matching pages from the page breakdowns (their visitors stay in
/// the day's totals, which cannot be computed again). `now` tells which days are closed.
pub async fn purge(
    store: &dyn Store,
    site: &Site,
    purge: &Purge,
    now: DateTime<Utc>,
) -> Result<Done, SiteError> {
    let tz = tz_of(site);
    let all = RollupScope::all();
    let from = purge.from.unwrap_or(all.from);
    let to = purge.to.unwrap_or(all.to);
    if from > to {
        return Err(SiteError::Invalid(format!(
            "the purge starts ({from}) after it ends ({to})"
        )));
    }
    if purge.from.is_none() && purge.to.is_none() && purge.path.is_none() {
        return Err(SiteError::Invalid(
            "name a page (--path), a date range (--from, --to) or both; to delete everything, reset the site".into(),
        ));
    }
    let start = utc_second(local_midnight(tz, from));
    let end = match to.checked_add_days(Days::new(1)) {
        Some(next) if to < all.to => utc_second(local_midnight(tz, next)),
        _ => u32::MAX,
    };
    let mut done = Done::default();
    let Some(pattern) = &purge.path else {
        done.events = Some(count_events(store, site.id, start, end).await?);
        done.rollup_days = store.rollup_days(site.id, from, to).await?.len() as u64;
        store
            .delete_events(
                site.id,
                &EventScope {
                    from: start,
                    to: end,
                    pathnames: None,
                    visit_days: Some((from, to)),
                },
            )
            .await?;
        store
            .delete_rollups(
                site.id,
                &RollupScope {
                    from,
                    to,
                    values: None,
                },
            )
            .await?;
        tracing::info!(
            site_id = site.id,
            events = done.events,
            "site events purged by date"
        );
        return Ok(done);
    };
    let pattern = parse_page(pattern.trim()).map_err(SiteError::Invalid)?;
    // Which days raw events cover wholly, as the rollup job reads it: from the UTC day of
    // the earliest event.
    let earliest = store.earliest_event(site.id).await?.map(i64::from);
    let paths: Vec<String> = store
        .event_pathnames(site.id)
        .await?
        .into_iter()
        .filter(|p| wildcard(&pattern, p))
        .collect();
    if !paths.is_empty() {
        store
            .delete_events(
                site.id,
                &EventScope {
                    from: start,
                    to: end,
                    pathnames: Some(paths.clone()),
                    visit_days: None,
                },
            )
            .await?;
    }
    let today = now.with_timezone(&tz).date_naive();
    let yesterday = today.pred_opt().unwrap_or(today);
    let rolled = store.rollup_days(site.id, from, to.min(yesterday)).await?;
    let complete_from = earliest.map(|ts| ts - ts.rem_euclid(86_400));
    let (covered, older): (Vec<NaiveDate>, Vec<NaiveDate>) = rolled
        .into_iter()
        .partition(|d| complete_from.is_some_and(|c| local_midnight(tz, *d) >= c));
    for day in &covered {
        let one = RollupScope {
            from: *day,
            to: *day,
            values: None,
        };
        store.delete_rollups(site.id, &one).await?;
        crate::query::rollup::compute_day(store, site, tz, *day)
            .await
            .map_err(|e| SiteError::Invalid(e.to_string()))?;
    }
    if let (Some(first), Some(last)) = (older.first(), older.last()) {
        let mut values = BTreeSet::new();
        for dimension in PAGE_DIMENSIONS {
            for row in store
                .read_rollups(site.id, dimension, *first, *last)
                .await?
            {
                if wildcard(&pattern, &row.value) {
                    values.insert(row.value);
                }
            }
        }
        if !values.is_empty() {
            store
                .delete_rollups(
                    site.id,
                    &RollupScope {
                        from: *first,
                        to: *last,
                        values: Some((
                            PAGE_DIMENSIONS.iter().map(|d| d.to_string()).collect(),
                            values.into_iter().collect(),
                        )),
                    },
                )
                .await?;
            done.rollup_days = older.len() as u64;
        }
    }
    done.recomputed = covered;
    done.paths = paths;
    tracing::info!(
        site_id = site.id,
        paths = done.paths.len(),
        days_recomputed = done.recomputed.len(),
        "site events purged by page"
    );
    Ok(done)
}

/// Enforces each site's shorter retention (the server's is enforced for every site by
/// [`crate::maintenance::Maintenance::purge`]): raw events and visit rows of the days before
/// the site's raw retention, daily totals (the site's and its imports') before its
/// aggregate retention. Returns how many sites lost anything.
pub async fn enforce_retention(
    store: &dyn Store,
    limits: Limits,
    today: NaiveDate,
) -> Result<usize, StoreError> {
    let settings = all_settings(store).await?;
    let sites = store.meta().sites().await?;
    let mut touched = 0;
    for site in sites {
        let Some(s) = settings.get(&site.id) else {
            continue;
        };
        let mut changed = false;
        let raw = s.raw_days(limits.raw_retention_days);
        if raw < limits.raw_retention_days {
            let cutoff = crate::maintenance::retention_cutoff(today, raw);
            let cutoff_ts = crate::store::day_start_secs(cutoff);
            if store
                .earliest_event(site.id)
                .await?
                .is_some_and(|first| first < cutoff_ts)
            {
                let last_visit_day = cutoff.pred_opt().unwrap_or(cutoff);
                store
                    .delete_events(
                        site.id,
                        &EventScope {
                            from: 0,
                            to: cutoff_ts,
                            pathnames: None,
                            visit_days: Some((RollupScope::all().from, last_visit_day)),
                        },
                    )
                    .await?;
                tracing::info!(site_id = site.id, before = %cutoff, "raw events purged by the site's retention");
                changed = true;
            }
        }
        let aggregate = s.aggregate_days(limits.aggregate_retention_days);
        if aggregate < limits.aggregate_retention_days {
            let cutoff = crate::maintenance::retention_cutoff(today, aggregate);
            let last = cutoff.pred_opt().unwrap_or(cutoff);
            let mut ids = vec![site.id];
            ids.extend(
                crate::import::plausible::imports_of(store, site.id, false)
                    .await
                    .map_err(|e| StoreError::Query(e.to_string()))?
                    .into_iter()
                    .map(|i| i.id),
            );
            for id in ids {
                if !store
                    .rollup_days(id, RollupScope::all().from, last)
                    .await?
                    .is_empty()
                {
                    store
                        .delete_rollups(
                            id,
                            &RollupScope {
                                from: RollupScope::all().from,
                                to: last,
                                values: None,
                            },
                        )
                        .await?;
                    tracing::info!(site_id = site.id, rows_of = id, before = %cutoff, "daily totals purged by the site's retention");
                    changed = true;
                }
            }
        }
        touched += usize::from(changed);
    }
    Ok(touched)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        raw_retention_days: 30,
        aggregate_retention_days: 1825,
    };

    #[test]
    fn settings_are_checked_and_written_one_way() {
        let s = SiteSettings {
            raw_retention_days: Some(14),
            aggregate_retention_days: Some(400),
            exclude_ips: vec![
                "10.1.2.3/8".into(),
                " 203.0.113.7 ".into(),
                "2001:db8::1/32".into(),
                "10.0.0.0/8".into(),
                "::ffff:198.51.100.1".into(),
            ],
            exclude_countries: vec!["dk".into(), "US".into()],
            exclude_pages: vec!["/admin/*".into()],
            allowed_hostnames: vec!["*.Example.com.".into()],
        }
        .validated(LIMITS)
        .unwrap();
        assert_eq!(
            s.exclude_ips,
            ["10.0.0.0/8", "203.0.113.7", "2001:db8::/32", "198.51.100.1"]
        );
        assert_eq!(s.exclude_countries, ["DK", "US"]);
        assert_eq!(s.allowed_hostnames, ["*.example.com"]);
        for (bad, says) in [
            (
                SiteSettings {
                    raw_retention_days: Some(31),
                    ..Default::default()
                },
                "1 to 30 days",
            ),
            (
                SiteSettings {
                    raw_retention_days: Some(0),
                    ..Default::default()
                },
                "1 to 30 days",
            ),
            (
                SiteSettings {
                    aggregate_retention_days: Some(20),
                    ..Default::default()
                },
                "shorter than the 30 days",
            ),
            (
                SiteSettings {
                    exclude_ips: vec!["10.0.0.0/33".into()],
                    ..Default::default()
                },
                "not an IP address",
            ),
            (
                SiteSettings {
                    exclude_countries: vec!["DNK".into()],
                    ..Default::default()
                },
                "two-letter",
            ),
            (
                SiteSettings {
                    exclude_pages: vec!["admin".into()],
                    ..Default::default()
                },
                "starts with /",
            ),
            (
                SiteSettings {
                    allowed_hostnames: vec!["exa mple.com".into()],
                    ..Default::default()
                },
                "not a host name",
            ),
            (
                SiteSettings {
                    exclude_ips: vec!["10.0.0.1".into(); MAX_LIST + 1],
                    ..Default::default()
                },
                "at most 500",
            ),
        ] {
            let e = bad.validated(LIMITS).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn rules_match_networks_hosts_and_pages() {
        let r = Rules::new(
            SiteSettings {
                exclude_ips: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
                exclude_pages: vec!["/admin/*".into(), "*/preview".into()],
                allowed_hostnames: vec!["example.com".into(), "*.example.com".into()],
                exclude_countries: vec!["CN".into()],
                ..Default::default()
            }
            .validated(LIMITS)
            .unwrap(),
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let out = ip("198.51.100.1");
        assert!(!r.excludes(out, "example.com", "/"));
        assert!(!r.excludes(out, "shop.example.com", "/cart"));
        assert!(r.excludes(ip("10.200.3.4"), "example.com", "/"));
        assert!(r.excludes(ip("::ffff:10.0.0.9"), "example.com", "/"));
        assert!(r.excludes(ip("2001:db8:1::5"), "example.com", "/"));
        assert!(!r.excludes(ip("2001:db9::5"), "example.com", "/"));
        assert!(r.excludes(out, "example.com", "/admin/users"));
        assert!(!r.excludes(out, "example.com", "/admin"));
        assert!(r.excludes(out, "example.com", "/blog/post/preview"));
        assert!(r.excludes(out, "staging.example.org", "/"));
        assert!(r.excludes(out, "example.com.evil.net", "/"));
        assert!(r.excludes_country("CN"));
        assert!(!r.excludes_country("DK"));
        assert!(!r.excludes_country(""));
        assert!(!Rules::default().excludes(out, "anything.net", "/admin/x"));
    }

    #[test]
    fn done_reads_as_a_sentence() {
        let d = Done {
            events: Some(12),
            rollup_days: 3,
            goals: 1,
            ..Default::default()
        };
        assert_eq!(
            d.text("example.com"),
            "example.com: deleted 12 raw event(s), the daily totals of 3 day(s), 1 goal(s)"
        );
        assert_eq!(Done::default().text("x"), "x: nothing matched");
    }
}
