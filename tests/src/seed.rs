//! A small site history with known answers, for the dashboard's tests.
//!
//! Four visits by four visitors of `site_id`, within the last 30 days of `now` (UTC):
//! - today, a minute or two before `now`: visitor 1 from Hacker News views `/` then
//!   `/pricing`; visitor 2 from Google views `/`; visitor 3 comes direct to `/blog`;
//! - three days earlier: visitor 4 from Google views `/pricing` and sends `Signup` with
//!   `plan=pro`.
//!
//! So over 30 days: 4 visitors, 4 visits, 5 pageviews, bounce rate 50 % (visitors 2 and 3),
//! sources Google 2, Hacker News 1, direct 1; today: 3 visitors, 4 pageviews.

use chrono::{DateTime, Utc};
use footfall::store::EventRow;

/// What the seed's numbers are over the last 30 days.
pub const VISITORS_30D: u64 = 4;
pub const PAGEVIEWS_30D: u64 = 5;
pub const BOUNCE_RATE_30D: u64 = 50;
pub const VISITORS_TODAY: u64 = 3;
pub const GOOGLE_VISITORS: u64 = 2;

struct Visit {
    visitor: u64,
    source: &'static str,
    channel: &'static str,
    referrer: &'static str,
    country: (&'static str, &'static str),
    browser: &'static str,
}

fn event(v: &Visit, ts: i64, name: &str, path: &str, entry: &str) -> EventRow {
    EventRow {
        site_id: 0,
        timestamp: u32::try_from(ts).expect("a time after 1970"),
        name: name.to_string(),
        hostname: String::new(),
        pathname: path.to_string(),
        visitor_id: v.visitor,
        session_id: v.visitor * 100,
        referrer: v.referrer.to_string(),
        referrer_source: v.source.to_string(),
        channel: v.channel.to_string(),
        browser: v.browser.to_string(),
        browser_version: "120".into(),
        os: "GNU/Linux".into(),
        os_version: String::new(),
        device: "Desktop".into(),
        country_code: v.country.0.to_string(),
        country_name: v.country.1.to_string(),
        screen_width: 1280,
        interactive: 1,
        scroll_depth: 255,
        entry_page: entry.to_string(),
        ..EventRow::default()
    }
}

/// The seed's events for `site_id` and `domain`, relative to `now`.
pub fn events(site_id: u32, domain: &str, now: DateTime<Utc>) -> Vec<EventRow> {
    let now = now.timestamp();
    let midnight = now - now.rem_euclid(86_400);
    // Today's events stay today even just after midnight.
    let today = (now - 120).max(midnight + 1);
    let earlier = now - 3 * 86_400;
    let hn = Visit {
        visitor: 1,
        source: "Hacker News",
        channel: "Social",
        referrer: "news.ycombinator.com",
        country: ("DK", "Denmark"),
        browser: "Firefox",
    };
    let google = |visitor| Visit {
        visitor,
        source: "Google",
        channel: "Organic Search",
        referrer: "google.com",
        country: ("DE", "Germany"),
        browser: "Chrome",
    };
    let direct = Visit {
        visitor: 3,
        source: "",
        channel: "Direct",
        referrer: "",
        country: ("DK", "Denmark"),
        browser: "Chrome",
    };
    let mut signup = event(&google(4), earlier + 30, "Signup", "/pricing", "/pricing");
    signup.props_keys = vec!["plan".into()];
    signup.props_values = vec!["pro".into()];
    let mut out = vec![
        event(&hn, today, "pageview", "/", "/"),
        event(&hn, today + 20, "pageview", "/pricing", "/"),
        event(&google(2), today + 5, "pageview", "/", "/"),
        event(&direct, today + 8, "pageview", "/blog", "/blog"),
        event(&google(4), earlier, "pageview", "/pricing", "/pricing"),
        signup,
    ];
    for e in &mut out {
        e.site_id = site_id;
        e.hostname = domain.to_string();
    }
    out
}
