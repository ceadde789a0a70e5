//! Latency of a full dashboard's queries on each store.
//!
//! `cargo bench --bench dashboard` stores `FOOTFALL_BENCH_SIZES` (default `1000000,10000000`)
//! events spread over 30 days for one site, then times the set of Stats API queries a
//! dashboard opens with: top stats with the previous period, the daily time series, and the
//! top 10 pages, sources, countries, devices, browsers and operating systems over `30d`. It
//! prints the set's latency from raw events alone, and again once the closed days are rolled
//! up. ClickHouse is `FOOTFALL_BENCH_CLICKHOUSE_URL` if set, else a throw-away server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use footfall::config::ClickHouseConfig;
use footfall::query::model;
use footfall::query::rollup::roll_up_closed_days;
use footfall::query::run::{Policy, run};
use footfall::store::clickhouse_store::ClickHouseStore;
use footfall::store::sqlite_store::SqliteStore;
use footfall::store::{EventRow, Site, Store};
use footfall_tests::OwnClickHouse;
use serde_json::json;

const SOURCES: [(&str, &str, &str); 6] = [
    ("", "", "Direct"),
    ("google.com", "Google", "Organic Search"),
    ("news.ycombinator.com/item", "Hacker News", "Organic Social"),
    ("github.com/org/repo", "GitHub", "Referral"),
    ("duckduckgo.com", "DuckDuckGo", "Organic Search"),
    ("t.co", "Twitter", "Organic Social"),
];
const COUNTRIES: [&str; 8] = ["DK", "SE", "DE", "US", "GB", "FR", "NL", "NO"];
const DEVICES: [(&str, &str, &str); 4] = [
    ("Desktop", "Chrome", "Windows"),
    ("Desktop", "Firefox", "Mac"),
    ("Mobile", "Safari", "iOS"),
    ("Tablet", "Chrome", "Android"),
];

/// `n` events of about 4 pageviews per visit over the 30 days before `now`.
fn events(n: usize, now: DateTime<Utc>) -> impl Iterator<Item = EventRow> {
    let start = now.timestamp() as u32 - 30 * 86_400;
    (0..n).map(move |i| {
        let visit = (i / 4) as u64;
        let h = visit.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let (referrer, source, channel) = SOURCES[(h % 6) as usize];
        let (device, browser, os) = DEVICES[((h >> 8) % 4) as usize];
        EventRow {
            site_id: 1,
            timestamp: start
                + ((visit * 2_592_000 / (n as u64 / 4 + 1)) as u32)
                + (i % 4) as u32 * 40,
            name: "pageview".into(),
            hostname: "example.com".into(),
            pathname: format!("/page/{}", (h >> 16) % 200),
            entry_page: format!("/page/{}", (h >> 24) % 200),
            visitor_id: h >> 1,
            session_id: h | 1,
            referrer: referrer.into(),
            referrer_source: source.into(),
            channel: channel.into(),
            browser: browser.into(),
            browser_version: "131".into(),
            os: os.into(),
            os_version: "10".into(),
            device: device.into(),
            country_code: COUNTRIES[((h >> 32) % 8) as usize].into(),
            scroll_depth: 255,
            ..EventRow::default()
        }
    })
}

fn dashboard() -> Vec<serde_json::Value> {
    let mut queries = vec![
        json!({"site_id": "example.com", "metrics": ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"], "date_range": "30d", "include": {"comparisons": {"mode": "previous_period"}}}),
        json!({"site_id": "example.com", "metrics": ["visitors", "pageviews"], "date_range": "30d", "dimensions": ["time:day"]}),
    ];
    for d in [
        "event:page",
        "visit:source",
        "visit:country",
        "visit:device",
        "visit:browser",
        "visit:os",
    ] {
        queries.push(json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": "30d", "dimensions": [d], "pagination": {"limit": 10}}));
    }
    queries
}

async fn time_dashboard(store: &dyn Store, site: &Site, policy: &Policy) -> f64 {
    let start = Instant::now();
    for q in dashboard() {
        let t = Instant::now();
        let parsed = model::parse(&q).expect("valid query");
        run(store, site, &parsed, policy).await.expect("answer");
        if std::env::var("FOOTFALL_BENCH_VERBOSE").is_ok() {
            eprintln!(
                "  {:>7.0} ms  {}",
                t.elapsed().as_secs_f64() * 1000.0,
                q["dimensions"]
            );
        }
    }
    start.elapsed().as_secs_f64() * 1000.0
}

async fn bench(name: &str, store: Arc<dyn Store>, n: usize, now: DateTime<Utc>) {
    store.migrate().await.expect("migrate");
    let site = store
        .add_site("example.com", "Europe/Copenhagen")
        .await
        .expect("site");
    let mut batch = Vec::with_capacity(50_000);
    for e in events(n, now) {
        batch.push(e);
        if batch.len() == 50_000 {
            store
                .insert_events(batch.as_slice().into())
                .await
                .expect("insert");
            batch.clear();
        }
    }
    store
        .insert_events(batch.as_slice().into())
        .await
        .expect("insert");
    eprintln!("{name}: {n} events stored");
    // The bench measures, it does not stop its questions: a day for all of them.
    let policy = Policy {
        now,
        raw_retention_days: 30,
        deadline: footfall::store::Deadline::after(Duration::from_secs(86_400)),
    };
    let raw = time_dashboard(store.as_ref(), &site, &policy).await;
    let start = Instant::now();
    roll_up_closed_days(store.as_ref(), &policy, usize::MAX)
        .await
        .expect("rollups");
    let rollup_secs = start.elapsed().as_secs_f64();
    let rolled = time_dashboard(store.as_ref(), &site, &policy).await;
    println!(
        "{name:<11} {n:>9} events: dashboard (8 queries) {raw:>8.0} ms from raw events, {rolled:>7.0} ms with rollups (rolling up 30 days took {rollup_secs:.1} s)"
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::var("FOOTFALL_BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let now: DateTime<Utc> = "2026-11-20T12:00:00Z".parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let own = std::env::var("FOOTFALL_BENCH_CLICKHOUSE_URL")
        .is_err()
        .then(OwnClickHouse::start);
    let url = own
        .as_ref()
        .map(|s| s.url.clone())
        .unwrap_or_else(|| std::env::var("FOOTFALL_BENCH_CLICKHOUSE_URL").unwrap_or_default());
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        runtime.block_on(bench(
            "sqlite",
            Arc::new(SqliteStore::open(dir.path()).unwrap()),
            n,
            now,
        ));
        let ch = ClickHouseConfig {
            url: url.clone(),
            user: "default".into(),
            password: String::new(),
            database: format!("footfall_dashboard_{n}"),
            cluster: None,
        };
        runtime.block_on(async {
            let admin = clickhouse::Client::default()
                .with_url(&ch.url)
                .with_validation(false);
            admin
                .query("DROP DATABASE IF EXISTS ?")
                .bind(clickhouse::sql::Identifier(&ch.database))
                .execute()
                .await
                .expect("fresh database");
            bench("clickhouse", Arc::new(ClickHouseStore::new(&ch)), n, now).await;
        });
    }
}
