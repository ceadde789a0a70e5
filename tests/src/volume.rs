//! The dashboard bench's events: `n` pageviews of one site over 30 days, made either as rows
//! for a store's own insert ([`events`]) or as one ClickHouse statement that makes the same
//! rows inside the server ([`clickhouse_events_sql`]), for volumes (100 million) that the
//! Events API would take too long to load.

use chrono::{DateTime, Utc};
use footfall::store::EventRow;

/// Referrers: (referrer, source, channel).
pub const SOURCES: [(&str, &str, &str); 12] = [
    ("", "", "Direct"),
    ("google.com", "Google", "Organic Search"),
    ("news.ycombinator.com/item", "Hacker News", "Organic Social"),
    ("github.com/org/repo", "GitHub", "Referral"),
    ("duckduckgo.com", "DuckDuckGo", "Organic Search"),
    ("t.co", "Twitter", "Organic Social"),
    ("bing.com", "Bing", "Organic Search"),
    ("reddit.com/r/rust", "Reddit", "Organic Social"),
    ("linkedin.com", "LinkedIn", "Organic Social"),
    ("ecosia.org", "Ecosia", "Organic Search"),
    ("lobste.rs", "Lobsters", "Referral"),
    ("news.google.com", "Google News", "Referral"),
];
pub const COUNTRIES: [&str; 8] = ["DK", "SE", "DE", "US", "GB", "FR", "NL", "NO"];
pub const DEVICES: [(&str, &str); 4] = [
    ("Desktop", "Windows"),
    ("Desktop", "Mac"),
    ("Mobile", "iOS"),
    ("Tablet", "Android"),
];
pub const UTM_SOURCES: [&str; 5] = ["", "", "newsletter", "mastodon", "partner"];

/// `n` pageviews over the 30 days before `now`: about 8 per visitor (two visits of four), 300
/// pages, 12 referrers, 40 browsers (the shape issue 17 measured with).
pub fn events(n: usize, now: DateTime<Utc>) -> impl Iterator<Item = EventRow> {
    let start = now.timestamp() as u32 - 30 * 86_400;
    (0..n).map(move |i| {
        let visit = (i / 4) as u64;
        let visitor = visit / 2;
        let h = visit.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let v = visitor.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let (referrer, source, channel) = SOURCES[(h % 12) as usize];
        let (device, os) = DEVICES[((v >> 8) % 4) as usize];
        EventRow {
            site_id: 1,
            timestamp: start
                + ((visit * 2_592_000 / (n as u64 / 4 + 1)) as u32)
                + (i % 4) as u32 * 40,
            name: "pageview".into(),
            hostname: "example.com".into(),
            pathname: format!("/page/{}", (h >> 16).wrapping_add(i as u64 * 7) % 300),
            entry_page: format!("/page/{}", (h >> 16) % 300),
            visitor_id: v,
            session_id: h | 1,
            referrer: referrer.into(),
            referrer_source: source.into(),
            channel: channel.into(),
            utm_source: UTM_SOURCES[((h >> 40) % 5) as usize].into(),
            browser: format!("Browser {}", (v >> 12) % 40),
            browser_version: "131".into(),
            os: os.into(),
            os_version: "10".into(),
            device: device.into(),
            country_code: COUNTRIES[((v >> 32) % 8) as usize].into(),
            scroll_depth: 255,
            ..EventRow::default()
        }
    })
}

/// `'a', 'b', …` as a ClickHouse array literal.
fn array(items: impl IntoIterator<Item = &'static str>) -> String {
    let quoted: Vec<String> = items.into_iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// One `INSERT … SELECT … FROM numbers(n)` that stores in ClickHouse's `events` the rows
/// [`events`]`(n, now)` makes, for `site_id` (ClickHouse's UInt64 arithmetic wraps as Rust's
/// `wrapping_mul` does). Only constants of this module and numbers are in the text.
pub fn clickhouse_events_sql(site_id: u32, n: usize, now: DateTime<Utc>) -> String {
    let start = now.timestamp() - 30 * 86_400;
    let referrers = array(SOURCES.iter().map(|s| s.0));
    let sources = array(SOURCES.iter().map(|s| s.1));
    let channels = array(SOURCES.iter().map(|s| s.2));
    let utm = array(UTM_SOURCES);
    let devices = array(DEVICES.iter().map(|d| d.0));
    let oses = array(DEVICES.iter().map(|d| d.1));
    let countries = array(COUNTRIES);
    format!(
        "INSERT INTO events (site_id, timestamp, name, hostname, pathname, entry_page, visitor_id, \
         session_id, referrer, referrer_source, channel, utm_source, browser, browser_version, os, \
         os_version, device, country_code, scroll_depth) \
         SELECT {site_id}, toDateTime(toUInt32({start} + intDiv(visit * 2592000, {visits}) + (number % 4) * 40)), \
         'pageview', 'example.com', \
         concat('/page/', toString((bitShiftRight(h, 16) + number * 7) % 300)), \
         concat('/page/', toString(bitShiftRight(h, 16) % 300)), \
         v, bitOr(h, 1), \
         {referrers}[h % 12 + 1], {sources}[h % 12 + 1], {channels}[h % 12 + 1], \
         {utm}[bitShiftRight(h, 40) % 5 + 1], \
         concat('Browser ', toString(bitShiftRight(v, 12) % 40)), '131', \
         {oses}[bitShiftRight(v, 8) % 4 + 1], '10', {devices}[bitShiftRight(v, 8) % 4 + 1], \
         {countries}[bitShiftRight(v, 32) % 8 + 1], 255 \
         FROM (SELECT number, intDiv(number, 4) AS visit, visit * 11400714819323198485 AS h, \
         intDiv(visit, 2) * 15485907386658061715 AS v FROM numbers({n}))",
        visits = n / 4 + 1,
    )
}
