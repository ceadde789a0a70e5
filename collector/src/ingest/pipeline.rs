//! The ingest pipeline: named steps from a validated [`EventInput`] to [`EventRow`]s.
//!
//! Order (cheapest first): site allowlist → bot user-agent → spam referrer → page URL
//! normalisation → referrer + UTM → user-agent parse (cached; a crawler drops here) → GeoIP
//! on the truncated IP → visitor hash under the daily salt → session (whose entry event fixes
//! the visit's referrer, source, channel and UTM for all its events). A step either passes
//! the event on or drops it with a [`DropReason`]; no step does I/O. The full IP and the raw
//! user-agent are used in memory only and never leave this module.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use super::body::EventInput;
use super::geoip::GeoIp;
use super::page::{self, PageError};
use super::referrer;
use super::session::{Open, Sessions, Visit};
use super::useragent::{ClientHints, UaParser};
use super::visitor::{Salts, visitor_id};
use super::{bots, ip};
use crate::sites::{Rules, SiteSettings};
use crate::store::{EventRow, Site};

/// Why an event was deliberately not stored. Answered with 202 and a header naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    UnknownSite,
    Bot,
    SpamReferrer,
    /// An engagement event without an open session.
    NoSession,
    /// No salt is held for the event's UTC day (the store has not answered since before the
    /// day's salt was due).
    NoSalt,
    /// The site's exclusions (an address, country, page or host name) name the request.
    Excluded,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::UnknownSite,
        DropReason::Bot,
        DropReason::SpamReferrer,
        DropReason::NoSession,
        DropReason::NoSalt,
        DropReason::Excluded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::UnknownSite => "unknown_site",
            DropReason::Bot => "bot",
            DropReason::SpamReferrer => "spam_referrer",
            DropReason::NoSession => "no_session",
            DropReason::NoSalt => "no_salt",
            DropReason::Excluded => "excluded",
        }
    }
}

/// Why a validated body still cannot be an event (a client error, answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error(transparent)]
    Page(#[from] PageError),
}

/// The outcome of processing one request.
#[derive(Debug)]
pub enum Outcome {
    Accepted(Vec<EventRow>),
    Dropped(DropReason),
}

/// The request-side facts the pipeline needs besides the body.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub input: EventInput,
    /// The client's full address; used for the hash, then only truncated.
    pub client_ip: IpAddr,
    pub user_agent: &'a str,
    /// The low-entropy User-Agent Client Hints, where the browser sent them.
    pub client_hints: ClientHints<'a>,
    pub received_at: DateTime<Utc>,
}

/// Sites by domain, swapped as a whole when the list changes.
pub type SiteMap = HashMap<String, Site>;

/// Each site's settings (retention, exclusions) by site id; a site without any is absent.
pub type RuleMap = HashMap<u32, Arc<Rules>>;

/// The read-mostly state the steps consult.
pub struct Pipeline {
    pub sites: ArcSwap<SiteMap>,
    pub rules: ArcSwap<RuleMap>,
    pub salts: ArcSwap<Option<Salts>>,
    /// Shared with imports, which run their own pipelines over the same databases.
    pub geoip: Option<Arc<GeoIp>>,
    pub ua: UaParser,
    pub sessions: Sessions,
}

impl Pipeline {
    pub fn new(geoip: Option<Arc<GeoIp>>) -> Self {
        Self {
            sites: ArcSwap::from_pointee(SiteMap::new()),
            rules: ArcSwap::from_pointee(RuleMap::new()),
            salts: ArcSwap::from_pointee(None),
            geoip,
            ua: UaParser::default(),
            sessions: Sessions::default(),
        }
    }

    pub fn set_sites(&self, sites: Vec<Site>) {
        let map = sites.into_iter().map(|s| (s.domain.clone(), s)).collect();
        self.sites.store(Arc::new(map));
    }

    pub fn set_settings(&self, settings: HashMap<u32, SiteSettings>) {
        let map = settings
            .into_iter()
            .map(|(id, s)| (id, Arc::new(Rules::new(s))))
            .collect();
        self.rules.store(Arc::new(map));
    }

    /// Days the site's raw events are kept (its own setting, else the server's).
    pub fn raw_retention_days(&self, site_id: u32, server: u32) -> u32 {
        self.rules
            .load()
            .get(&site_id)
            .map_or(server, |r| r.settings.raw_days(server))
    }

    /// The site's settings (the defaults when it has none).
    pub fn settings_of(&self, site_id: u32) -> SiteSettings {
        self.rules
            .load()
            .get(&site_id)
            .map(|r| r.settings.clone())
            .unwrap_or_default()
    }

    pub fn set_salts(&self, salts: Salts) {
        self.salts.store(Arc::new(Some(salts)));
    }

    /// Runs every step over one request.
    pub fn process(&self, req: &Request<'_>) -> Result<Outcome, RejectReason> {
        let input = &req.input;
        // Page URL first: without a valid URL there is nothing to record (a client error).
        let page = page::normalise(&input.url, input.hash_mode)?;

        // Step: site allowlist. A missing domain means the URL's host.
        let sites = self.sites.load();
        let mut targets: Vec<&Site> = match &input.domain {
            Some(list) => list
                .split(',')
                .filter_map(|d| sites.get(page::strip_www(&d.trim().to_ascii_lowercase())))
                .collect(),
            None => sites.get(&page.hostname).into_iter().collect(),
        };
        // A site named twice (`a.com,www.a.com,a.com`) records the event once.
        let mut seen = Vec::with_capacity(targets.len());
        targets.retain(|s| {
            let first = !seen.contains(&s.id);
            seen.push(s.id);
            first
        });
        if targets.is_empty() {
            return Ok(Outcome::Dropped(DropReason::UnknownSite));
        }

        // Step: the sites' exclusions by address, host name and page, on the full address
        // and before anything is hashed.
        let rules = self.rules.load();
        let excluded_by = |site: &Site, country: Option<&str>| {
            rules.get(&site.id).is_some_and(|r| match country {
                None => r.excludes(req.client_ip, &page.hostname, &page.pathname),
                Some(c) => r.excludes_country(c),
            })
        };
        targets.retain(|s| !excluded_by(s, None));
        if targets.is_empty() {
            return Ok(Outcome::Dropped(DropReason::Excluded));
        }

        // Step: bots by user-agent (cheap substring checks).
        if bots::is_bot_user_agent(req.user_agent) {
            return Ok(Outcome::Dropped(DropReason::Bot));
        }

        // Step: referrer spam.
        let referrer_host = input.referrer.as_deref().and_then(referrer::referrer_host);
        if referrer_host.as_deref().is_some_and(bots::is_spam_referrer) {
            return Ok(Outcome::Dropped(DropReason::SpamReferrer));
        }

        // Step: referrer + UTM → source, channel.
        let source = referrer::classify(input.referrer.as_deref(), &page);

        // Step: user-agent parse, cached; the parser knows more crawlers.
        let ua = self.ua.parse(req.user_agent, &req.client_hints);
        if ua.is_bot {
            return Ok(Outcome::Dropped(DropReason::Bot));
        }

        // Step: GeoIP on the truncated address only.
        let geo = self
            .geoip
            .as_ref()
            .map(|g| g.lookup(ip::truncate(req.client_ip)))
            .unwrap_or_default();
        targets.retain(|s| !excluded_by(s, Some(&geo.country)));
        if targets.is_empty() {
            return Ok(Outcome::Dropped(DropReason::Excluded));
        }

        // Step: visitor hash and session, per target site, under the event's own UTC day's
        // salt (never another day's: that would link visitors across days).
        let salts = self.salts.load();
        let day = req.received_at.date_naive();
        let Some((salt, previous_salt)) = salts.as_ref().as_ref().and_then(|s| {
            let previous = day.pred_opt().and_then(|d| s.for_day(d));
            s.for_day(day).map(|salt| (salt, previous))
        }) else {
            return Ok(Outcome::Dropped(DropReason::NoSalt));
        };
        let is_engagement = input.name == "engagement";
        let open = if is_engagement {
            Open::ExistingOnly
        } else {
            Open::Allowed
        };
        let (props_keys, props_values): (Vec<String>, Vec<String>) =
            input.props.iter().cloned().unzip();
        let mut rows = Vec::with_capacity(targets.len());
        for site in targets {
            let visitor = visitor_id(salt, &site.domain, req.client_ip, req.user_agent);
            let previous = previous_salt
                .map(|salt| visitor_id(salt, &site.domain, req.client_ip, req.user_agent));
            let arriving = Visit {
                source: source.clone(),
                utm: page.utm.clone(),
                entry_page: page.pathname.clone(),
            };
            let Some((session_id, visit)) =
                self.sessions
                    .touch(site.id, visitor, previous, req.received_at, open, arriving)
            else {
                continue;
            };
            rows.push(EventRow {
                site_id: site.id,
                timestamp: u32::try_from(req.received_at.timestamp()).unwrap_or(0),
                name: input.name.clone(),
                hostname: page.hostname.clone(),
                pathname: page.pathname.clone(),
                visitor_id: visitor,
                session_id,
                referrer: visit.source.referrer.clone(),
                referrer_source: visit.source.source.clone(),
                channel: visit.source.channel.clone(),
                utm_medium: visit.utm.medium.clone(),
                utm_source: visit.utm.source.clone(),
                utm_campaign: visit.utm.campaign.clone(),
                utm_content: visit.utm.content.clone(),
                utm_term: visit.utm.term.clone(),
                browser: ua.browser.clone(),
                browser_version: ua.browser_version.clone(),
                os: ua.os.clone(),
                os_version: ua.os_version.clone(),
                device: ua.device.clone(),
                country_code: geo.country.clone(),
                region: geo.region.clone(),
                city: geo.city.clone(),
                screen_width: input.screen_width.unwrap_or(0),
                props_keys: props_keys.clone(),
                props_values: props_values.clone(),
                revenue_micros: input.revenue.as_ref().map_or(0, |r| r.amount_micros),
                revenue_currency: input
                    .revenue
                    .as_ref()
                    .map(|r| r.currency.clone())
                    .unwrap_or_default(),
                interactive: u8::from(input.interactive),
                engagement_ms: input.engagement_ms.unwrap_or(0),
                scroll_depth: input.scroll_depth.unwrap_or(u8::MAX),
                entry_page: visit.entry_page.clone(),
                country_name: geo.country_name.clone(),
                region_name: geo.region_name.clone(),
                batch_id: 0,
            });
        }
        if rows.is_empty() {
            return Ok(Outcome::Dropped(DropReason::NoSession));
        }
        Ok(Outcome::Accepted(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::body::parse_body;
    use crate::ingest::visitor::Salt;
    use chrono::{Duration, NaiveDate};

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    fn pipeline() -> Pipeline {
        let p = Pipeline::new(None);
        p.set_sites(vec![
            Site {
                id: 1,
                domain: "a.org".into(),
                timezone: "UTC".into(),
            },
            Site {
                id: 2,
                domain: "b.org".into(),
                timezone: "Europe/Copenhagen".into(),
            },
        ]);
        // The day of `at()`.
        let day = NaiveDate::from_ymd_opt(2025, 11, 25).unwrap();
        p.set_salts(Salts {
            days: vec![(day, Salt([1; 32]))],
        });
        p
    }

    fn run(p: &Pipeline, body: &str, ua: &str, at: DateTime<Utc>) -> Outcome {
        let req = Request {
            input: parse_body(body.as_bytes()).unwrap(),
            client_ip: "2.2.3.77".parse().unwrap(),
            user_agent: ua,
            client_hints: ClientHints::default(),
            received_at: at,
        };
        p.process(&req).unwrap()
    }

    fn at(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_061_200, 0).unwrap() + Duration::minutes(min)
    }

    fn rows(o: Outcome) -> Vec<EventRow> {
        match o {
            Outcome::Accepted(r) => r,
            Outcome::Dropped(d) => panic!("dropped: {d:?}"),
        }
    }

    #[test]
    fn a_pageview_is_enriched() {
        let p = pipeline();
        let r = rows(run(
            &p,
            r#"{"n":"pageview","u":"https://www.a.org/docs/?utm_source=google&utm_medium=cpc&x=1","d":"a.org","r":"https://www.google.com/","w":1440}"#,
            CHROME,
            at(0),
        ));
        assert_eq!(r.len(), 1);
        let e = &r[0];
        assert_eq!(
            (e.site_id, e.hostname.as_str(), e.pathname.as_str()),
            (1, "a.org", "/docs/")
        );
        assert_eq!(
            (e.referrer_source.as_str(), e.channel.as_str()),
            ("Google", "Paid Search")
        );
        assert_eq!(
            (e.browser.as_str(), e.os.as_str(), e.device.as_str()),
            ("Chrome", "Windows", "Desktop")
        );
        assert_eq!(e.screen_width, 1440);
        assert_eq!(e.scroll_depth, 255);
        assert_ne!(e.visitor_id, 0);
    }

    #[test]
    fn drops_with_reasons() {
        let p = pipeline();
        let page = r#"{"n":"pageview","u":"https://a.org/","d":"a.org"}"#;
        assert!(matches!(
            run(
                &p,
                r#"{"n":"pageview","u":"https://c.org/","d":"c.org"}"#,
                CHROME,
                at(0)
            ),
            Outcome::Dropped(DropReason::UnknownSite)
        ));
        assert!(matches!(
            run(&p, page, "", at(0)),
            Outcome::Dropped(DropReason::Bot)
        ));
        assert!(matches!(
            run(&p, page, "Mozilla/5.0 (compatible; bingbot/2.0)", at(0)),
            Outcome::Dropped(DropReason::Bot)
        ));
        assert!(matches!(
            run(
                &p,
                r#"{"n":"pageview","u":"https://a.org/","r":"https://semalt.com/x"}"#,
                CHROME,
                at(0)
            ),
            Outcome::Dropped(DropReason::SpamReferrer)
        ));
        assert!(matches!(
            run(
                &p,
                r#"{"n":"engagement","u":"https://a.org/","e":100}"#,
                CHROME,
                at(0)
            ),
            Outcome::Dropped(DropReason::NoSession)
        ));
        let no_salt = Pipeline::new(None);
        no_salt.set_sites(vec![Site {
            id: 1,
            domain: "a.org".into(),
            timezone: "UTC".into(),
        }]);
        assert!(matches!(
            run(&no_salt, page, CHROME, at(0)),
            Outcome::Dropped(DropReason::NoSalt)
        ));
    }

    #[test]
    fn a_sites_exclusions_drop_before_the_hash() {
        let p = pipeline();
        let page = r#"{"n":"pageview","u":"https://a.org/","d":"a.org,b.org"}"#;
        let settings =
            |s: crate::sites::SiteSettings| [(1, s)].into_iter().collect::<HashMap<_, _>>();
        // The test client is 2.2.3.77: its /24 excluded on a.org only, b.org still records.
        p.set_settings(settings(crate::sites::SiteSettings {
            exclude_ips: vec!["2.2.3.0/24".into()],
            ..Default::default()
        }));
        let r = rows(run(&p, page, CHROME, at(0)));
        assert_eq!(r.iter().map(|e| e.site_id).collect::<Vec<_>>(), vec![2]);
        assert!(matches!(
            run(
                &p,
                r#"{"n":"pageview","u":"https://a.org/","d":"a.org"}"#,
                CHROME,
                at(0)
            ),
            Outcome::Dropped(DropReason::Excluded)
        ));
        p.set_settings(settings(crate::sites::SiteSettings {
            exclude_pages: vec!["/private/*".into()],
            allowed_hostnames: vec!["a.org".into(), "*.a.org".into()],
            ..Default::default()
        }));
        let one = |u: &str| format!(r#"{{"n":"pageview","u":"{u}","d":"a.org"}}"#);
        for (url, kept) in [
            ("https://a.org/private/x", false),
            ("https://a.org/public", true),
            ("https://shop.a.org/", true),
            ("https://a.org.evil.net/", false),
        ] {
            let out = run(&p, &one(url), CHROME, at(0));
            assert_eq!(matches!(out, Outcome::Accepted(_)), kept, "{url}: {out:?}");
        }
    }

    #[test]
    fn missing_domain_means_url_host_and_lists_fan_out() {
        let p = pipeline();
        let r = rows(run(
            &p,
            r#"{"n":"pageview","u":"https://www.b.org/"}"#,
            CHROME,
            at(0),
        ));
        assert_eq!(r[0].site_id, 2);
        let r = rows(run(
            &p,
            r#"{"n":"pageview","u":"https://a.org/","d":"a.org,b.org,c.org"}"#,
            CHROME,
            at(0),
        ));
        assert_eq!(r.iter().map(|e| e.site_id).collect::<Vec<_>>(), vec![1, 2]);
        assert_ne!(r[0].visitor_id, r[1].visitor_id, "hashes are per site");
        // A site named several times, in any spelling, is recorded once.
        let r = rows(run(
            &p,
            r#"{"n":"pageview","u":"https://a.org/","d":"a.org,www.a.org, A.org,b.org,a.org"}"#,
            CHROME,
            at(0),
        ));
        assert_eq!(r.iter().map(|e| e.site_id).collect::<Vec<_>>(), vec![1, 2]);
        // More than ten domains is a client error.
        let eleven = (0..11)
            .map(|i| format!("s{i}.org"))
            .collect::<Vec<_>>()
            .join(",");
        let body = format!(r#"{{"n":"pageview","u":"https://a.org/","d":"{eleven}"}}"#);
        assert!(
            parse_body(body.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("more than 10")
        );
    }

    #[test]
    fn sessions_and_engagement() {
        let p = pipeline();
        let body = r#"{"n":"pageview","u":"https://a.org/","d":"a.org"}"#;
        let a = rows(run(&p, body, CHROME, at(0)))[0].session_id;
        let b = rows(run(&p, body, CHROME, at(30)))[0].session_id;
        assert_eq!(a, b);
        let eng = rows(run(
            &p,
            r#"{"n":"engagement","u":"https://a.org/","d":"a.org","e":5000,"sd":40}"#,
            CHROME,
            at(31),
        ));
        assert_eq!(
            (eng[0].session_id, eng[0].engagement_ms, eng[0].scroll_depth),
            (a, 5000, 40)
        );
        let c = rows(run(&p, body, CHROME, at(62)))[0].session_id;
        assert_ne!(a, c);
    }

    #[test]
    fn a_visit_keeps_its_entry_source() {
        let p = pipeline();
        let first = rows(run(
            &p,
            r#"{"n":"pageview","u":"https://a.org/?utm_campaign=x","d":"a.org","r":"https://www.google.com/"}"#,
            CHROME,
            at(0),
        ));
        let next = rows(run(
            &p,
            r#"{"n":"pageview","u":"https://a.org/next","d":"a.org","r":"https://a.org/"}"#,
            CHROME,
            at(3),
        ));
        assert_eq!(first[0].session_id, next[0].session_id);
        assert_eq!(
            (
                next[0].referrer_source.as_str(),
                next[0].channel.as_str(),
                next[0].utm_campaign.as_str()
            ),
            ("Google", "Organic Search", "x")
        );
        assert_eq!(
            (next[0].pathname.as_str(), next[0].entry_page.as_str()),
            ("/next", "/")
        );
    }

    #[test]
    fn bad_url_is_a_client_error() {
        let p = pipeline();
        let req = Request {
            input: parse_body(br#"{"n":"pageview","u":"data:text/html,x","d":"a.org"}"#).unwrap(),
            client_ip: "2.2.3.77".parse().unwrap(),
            user_agent: CHROME,
            client_hints: ClientHints::default(),
            received_at: at(0),
        };
        assert!(p.process(&req).is_err());
    }
}
