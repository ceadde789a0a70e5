//! Latency of a full dashboard's queries on each store.
//!
//! `cargo bench --bench dashboard` stores `FOOTFALL_BENCH_SIZES` (default `500000,10000000`)
//! pageviews spread over 30 days for one site in each of `FOOTFALL_BENCH_STORES` (default
//! `duckdb,clickhouse,sqlite`), then times the ten Stats API queries a dashboard opens with:
//! top stats, the daily series, and the top 10 pages, sources, browsers, operating systems,
//! countries, entry pages, exit pages and UTM sources over `30d`; unfiltered and filtered by
//! one source, from raw events, then unfiltered once the closed days are rolled up. It prints
//! a table: ingest rate, the best of three runs of each set, and the store's size on disk.
//! ClickHouse is `FOOTFALL_BENCH_CLICKHOUSE_URL` if set, else a throw-away server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use footfall::config::ClickHouseConfig;
use footfall::query::model;
use footfall::query::rollup::roll_up_closed_days;
use footfall::query::run::{Policy, run};
use footfall::store::clickhouse::ClickHouseStore;
use footfall::store::duckdb::DuckDbStore;
use footfall::store::sqlite::SqliteStore;
use footfall::store::{EventRow, Site, Store};
use footfall_tests::OwnClickHouse;
use serde_json::json;

/// Referrers: (referrer, source, channel).
const SOURCES: [(&str, &str, &str); 12] = [
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
const COUNTRIES: [&str; 8] = ["DK", "SE", "DE", "US", "GB", "FR", "NL", "NO"];
const DEVICES: [(&str, &str); 4] = [
    ("Desktop", "Windows"),
    ("Desktop", "Mac"),
    ("Mobile", "iOS"),
    ("Tablet", "Android"),
];
const UTM_SOURCES: [&str; 5] = ["", "", "newsletter", "mastodon", "partner"];

/// `n` pageviews over the 30 days before `now`: about 8 per visitor (two visits of four), 300
/// pages, 12 referrers, 40 browsers (the shape issue 17 measured with).
fn events(n: usize, now: DateTime<Utc>) -> impl Iterator<Item = EventRow> {
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
            visitor_id: v >> 1,
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

/// The ten queries a dashboard opens with, over 30 days, optionally filtered by source.
fn dashboard(filtered: bool) -> Vec<serde_json::Value> {
    let filters = if filtered {
        json!([["is", "visit:source", ["Google"]]])
    } else {
        json!([])
    };
    let mut queries = vec![
        json!({"site_id": "example.com", "metrics": ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"], "date_range": "30d", "filters": filters}),
        json!({"site_id": "example.com", "metrics": ["visitors", "pageviews"], "date_range": "30d", "dimensions": ["time:day"], "filters": filters}),
    ];
    for d in [
        "event:page",
        "visit:source",
        "visit:browser",
        "visit:os",
        "visit:country",
        "visit:entry_page",
        "visit:exit_page",
        "visit:utm_source",
    ] {
        queries.push(json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": "30d", "dimensions": [d], "filters": filters, "pagination": {"limit": 10}}));
    }
    queries
}

/// The best of `FOOTFALL_BENCH_RUNS` (default 3) runs of the ten queries, in ms.
async fn time_dashboard(store: &dyn Store, site: &Site, policy: &Policy, filtered: bool) -> f64 {
    let runs: usize = std::env::var("FOOTFALL_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let mut best = f64::MAX;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        for q in dashboard(filtered) {
            let t = Instant::now();
            let parsed = model::parse(&q).expect("valid query");
            run(store, site, &parsed, policy).await.expect("answer");
            if std::env::var("FOOTFALL_BENCH_VERBOSE").is_ok() {
                eprintln!(
                    "  {:>7.0} ms  {} {}",
                    t.elapsed().as_secs_f64() * 1000.0,
                    q["dimensions"],
                    q["filters"]
                );
            }
        }
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
    }
    best
}

/// One row of the printed table.
struct Row {
    store: &'static str,
    events: usize,
    ingest_per_sec: f64,
    unfiltered_ms: f64,
    filtered_ms: f64,
    rolled_ms: f64,
    disk_mb: f64,
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn bench(
    name: &'static str,
    store: Arc<dyn Store>,
    files: Option<&std::path::Path>,
    n: usize,
    now: DateTime<Utc>,
) -> Row {
    store.migrate().await.expect("migrate");
    let site = store
        .meta()
        .add_site("example.com", "Europe/Copenhagen")
        .await
        .expect("site");
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for e in events(n, now) {
        batch.push(e);
        if batch.len() == 10_000 {
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
    let ingest_per_sec = n as f64 / started.elapsed().as_secs_f64();
    eprintln!("{name}: {n} events stored");
    // The bench measures, it does not stop its questions: a day for all of them.
    let policy = Policy {
        now,
        raw_retention_days: 30,
        deadline: footfall::store::Deadline::after(Duration::from_secs(86_400)),
    };
    let unfiltered_ms = time_dashboard(store.as_ref(), &site, &policy, false).await;
    let filtered_ms = time_dashboard(store.as_ref(), &site, &policy, true).await;
    roll_up_closed_days(store.as_ref(), &policy, usize::MAX)
        .await
        .expect("rollups");
    let rolled_ms = time_dashboard(store.as_ref(), &site, &policy, false).await;
    Row {
        store: name,
        events: n,
        ingest_per_sec,
        unfiltered_ms,
        filtered_ms,
        rolled_ms,
        disk_mb: files.map(dir_size).unwrap_or(0) as f64 / 1e6,
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("FOOTFALL_BENCH_SIZES")
        .unwrap_or_else(|_| "500000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let stores = std::env::var("FOOTFALL_BENCH_STORES")
        .unwrap_or_else(|_| "duckdb,clickhouse,sqlite".into());
    let stores: Vec<&str> = stores.split(',').map(str::trim).collect();
    let now: DateTime<Utc> = "2026-11-20T12:00:00Z".parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let own = (stores.contains(&"clickhouse")
        && std::env::var("FOOTFALL_BENCH_CLICKHOUSE_URL").is_err())
    .then(OwnClickHouse::start);
    let url = own
        .as_ref()
        .map(|s| s.url.clone())
        .unwrap_or_else(|| std::env::var("FOOTFALL_BENCH_CLICKHOUSE_URL").unwrap_or_default());
    let mut rows = Vec::new();
    for n in sizes {
        for store in &stores {
            let dir = tempfile::tempdir().unwrap();
            let row = match *store {
                "sqlite" => runtime.block_on(bench(
                    "sqlite",
                    Arc::new(SqliteStore::open(dir.path()).unwrap()),
                    Some(dir.path()),
                    n,
                    now,
                )),
                "duckdb" => runtime.block_on(bench(
                    "duckdb",
                    Arc::new(DuckDbStore::open(dir.path()).unwrap()),
                    Some(dir.path()),
                    n,
                    now,
                )),
                "clickhouse" => {
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
                        bench(
                            "clickhouse",
                            Arc::new(ClickHouseStore::new(&ch)),
                            None,
                            n,
                            now,
                        )
                        .await
                    })
                }
                other => panic!("FOOTFALL_BENCH_STORES: unknown store {other}"),
            };
            rows.push(row);
        }
    }
    println!(
        "\n| store | events | ingest (events/s) | 10 queries, 30 d | filtered by source | after rollups | disk (MB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {:.0} ms | {:.0} ms | {:.0} ms | {} |",
            r.store,
            r.events,
            r.ingest_per_sec,
            r.unfiltered_ms,
            r.filtered_ms,
            r.rolled_ms,
            if r.disk_mb > 0.0 {
                format!("{:.0}", r.disk_mb)
            } else {
                "-".into()
            }
        );
    }
}
