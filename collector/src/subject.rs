//! Data-subject requests: a visitor's access to, and erasure of, their raw events.
//!
//! Events carry no address, only the day's visitor hash of (site, IP address, user-agent)
//! under that day's salt. While a day's salt exists (until 48 hours after the day began), the
//! address and user-agent a visitor used give the same hash again, and so their events of
//! that day on each site: [`find`] shows them, [`erase`] deletes them and computes the
//! rollups of their closed days again. Once the salt is gone nothing links any event to
//! anyone, and the answer says so, with the reason (GDPR Art. 11). A request is logged
//! without the address or the user-agent.

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::ingest::visitor::visitor_id;
use crate::privacy::SALT_HOURS;
use crate::store::{EventRow, Store, StoreError};

/// Longest user-agent a request takes (the collector reads no longer ones either).
pub const MAX_USER_AGENT: usize = 1024;

/// What a data-subject request names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subject {
    pub ip: IpAddr,
    pub user_agent: String,
    /// Only this site (its domain); every site when none.
    pub site: Option<String>,
}

impl Subject {
    /// Checks a request: an address, a user-agent of at most [`MAX_USER_AGENT`] bytes.
    pub fn new(ip: &str, user_agent: &str, site: Option<String>) -> Result<Subject, String> {
        let ip: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not an IP address", ip.trim()))?;
        if user_agent.is_empty() {
            return Err("the user-agent must not be empty".into());
        }
        if user_agent.len() > MAX_USER_AGENT {
            return Err(format!(
                "the user-agent is longer than {MAX_USER_AGENT} bytes"
            ));
        }
        Ok(Subject {
            ip,
            user_agent: user_agent.to_string(),
            site,
        })
    }
}

/// One site's events of the subject.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteEvents {
    pub site: String,
    pub events: Vec<EventRow>,
}

/// The answer to a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    /// The UTC days whose salts still exist: the only days searched.
    pub days: Vec<NaiveDate>,
    pub found: Vec<SiteEvents>,
    /// Whether the events were deleted.
    pub erased: bool,
    /// The site-local days whose rollups were computed again without them.
    pub recomputed: Vec<NaiveDate>,
}

impl Answer {
    pub fn events(&self) -> usize {
        self.found.iter().map(|s| s.events.len()).sum()
    }

    /// The answer as the owner can read it, or send it on.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for site in &self.found {
            out.push_str(&format!("{}: {} event(s)\n", site.site, site.events.len()));
            for e in &site.events {
                let at = DateTime::from_timestamp(i64::from(e.timestamp), 0).unwrap_or_default();
                let place = [&e.country_code, &e.region, &e.city]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let props: Vec<String> = e
                    .props_keys
                    .iter()
                    .zip(&e.props_values)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                out.push_str(&format!(
                    "  {} {} {}{} | source: {} | {} {} on {} {}, {} | {}{}\n",
                    at.format("%Y-%m-%d %H:%M:%S UTC"),
                    e.name,
                    e.hostname,
                    e.pathname,
                    if e.referrer_source.is_empty() {
                        "direct"
                    } else {
                        &e.referrer_source
                    },
                    e.browser,
                    e.browser_version,
                    e.os,
                    e.os_version,
                    e.device,
                    if place.is_empty() {
                        "no location"
                    } else {
                        &place
                    },
                    if props.is_empty() {
                        String::new()
                    } else {
                        format!(" | {}", props.join(" "))
                    }
                ));
            }
        }
        let days: Vec<String> = self.days.iter().map(NaiveDate::to_string).collect();
        if self.found.is_empty() {
            out.push_str(&format!(
                "No events match this address and user-agent on the days that can still be searched ({}, UTC).\n",
                days.join(", ")
            ));
        } else if self.erased {
            out.push_str(&format!(
                "Deleted {} event(s){}.\n",
                self.events(),
                if self.recomputed.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; the daily totals of {} were computed again without them",
                        self.recomputed
                            .iter()
                            .map(NaiveDate::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
        }
        out.push_str(&format!(
            "Events are kept with a visitor code made from the day's secret salt, the site, the IP address and the user-agent; \
             each day's salt is deleted {SALT_HOURS} hours after the day began. Events of earlier days can no longer be linked to \
             this or any address, so they cannot be found, shown or deleted for a person (GDPR Article 11).\n"
        ));
        out
    }
}

/// Why a request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The subject's events of one site and UTC day, under that day's visitor hash.
struct Matched {
    site: crate::store::Site,
    day: NaiveDate,
    hash: u64,
    events: Vec<EventRow>,
}

/// The salt days searched, and the subject's events per site and day on them.
async fn matching(
    store: &dyn Store,
    subject: &Subject,
) -> Result<(Vec<NaiveDate>, Vec<Matched>), SubjectError> {
    let sites = store.meta().sites().await?;
    let sites: Vec<_> = match &subject.site {
        None => sites,
        Some(domain) => {
            let site = sites
                .into_iter()
                .find(|s| s.domain == *domain)
                .ok_or_else(|| SubjectError::Invalid(format!("no site `{domain}`")))?;
            vec![site]
        }
    };
    let salts = store.meta().salts().await?;
    let mut matched = Vec::new();
    for site in sites {
        for (day, salt) in &salts {
            let hash = visitor_id(salt, &site.domain, subject.ip, &subject.user_agent);
            let from = crate::store::day_start_secs(*day);
            let to = crate::store::day_start_secs(*day + Days::new(1));
            let events = store.visitor_events(site.id, hash, from, to).await?;
            if !events.is_empty() {
                matched.push(Matched {
                    site: site.clone(),
                    day: *day,
                    hash,
                    events,
                });
            }
        }
    }
    Ok((salts.into_iter().map(|(d, _)| d).collect(), matched))
}

/// The answer listing `matched`, one entry per site.
fn answer_of(days: Vec<NaiveDate>, matched: &[Matched]) -> Answer {
    let mut found: Vec<SiteEvents> = Vec::new();
    for m in matched {
        match found.iter_mut().find(|f| f.site == m.site.domain) {
            Some(f) => f.events.extend(m.events.iter().cloned()),
            None => found.push(SiteEvents {
                site: m.site.domain.clone(),
                events: m.events.clone(),
            }),
        }
    }
    Answer {
        days,
        found,
        erased: false,
        recomputed: Vec::new(),
    }
}

/// The subject's events on the days whose salts still exist.
pub async fn find(store: &dyn Store, subject: &Subject) -> Result<Answer, SubjectError> {
    let (days, matched) = matching(store, subject).await?;
    let answer = answer_of(days, &matched);
    tracing::info!(
        request = "access",
        sites = answer.found.len(),
        events = answer.events(),
        "data-subject request answered"
    );
    Ok(answer)
}

/// Deletes the subject's events (and their visit rows) on the days whose salts still exist,
/// then computes the rollups of the closed site-local days they were in again; `now` tells
/// which days are closed.
pub async fn erase(
    store: &dyn Store,
    subject: &Subject,
    now: DateTime<Utc>,
) -> Result<Answer, SubjectError> {
    let (days, matched) = matching(store, subject).await?;
    let mut answer = answer_of(days, &matched);
    let mut closed: BTreeSet<(u32, NaiveDate)> = BTreeSet::new();
    for m in &matched {
        let from = crate::store::day_start_secs(m.day);
        store
            .erase_visitor(
                m.site.id,
                m.hash,
                from,
                crate::store::day_start_secs(m.day + Days::new(1)),
            )
            .await?;
        // The closed local days that were rolled up with these events.
        let tz: Tz = m.site.timezone.parse().unwrap_or(chrono_tz::UTC);
        let today = now.with_timezone(&tz).date_naive();
        closed.extend(
            m.events
                .iter()
                .filter_map(|e| DateTime::from_timestamp(i64::from(e.timestamp), 0))
                .map(|t| t.with_timezone(&tz).date_naive())
                .filter(|d| *d < today)
                .map(|d| (m.site.id, d)),
        );
    }
    let mut recomputed = BTreeSet::new();
    for (site_id, day) in closed {
        let Some(site) = matched.iter().map(|m| &m.site).find(|s| s.id == site_id) else {
            continue;
        };
        if store.rollup_days(site.id, day, day).await?.is_empty() {
            continue;
        }
        let tz: Tz = site.timezone.parse().unwrap_or(chrono_tz::UTC);
        // The day's rows go first: a value only the erased events had (a page, a country)
        // would otherwise keep its old row.
        store
            .delete_rollups(
                site.id,
                &crate::store::RollupScope {
                    from: day,
                    to: day,
                    values: None,
                },
            )
            .await?;
        crate::query::rollup::compute_day(store, site, tz, day)
            .await
            .map_err(|e| SubjectError::Invalid(e.to_string()))?;
        recomputed.insert(day);
    }
    answer.erased = true;
    answer.recomputed = recomputed.into_iter().collect();
    tracing::info!(
        request = "erasure",
        sites = answer.found.len(),
        events = answer.events(),
        days_recomputed = answer.recomputed.len(),
        "data-subject request answered"
    );
    Ok(answer)
}
