//! Sustained insert throughput of each store, in events per second.
//!
//! `cargo bench --bench store_insert` writes `FOOTFALL_BENCH_EVENTS` (default 500,000) events
//! in batches of `FOOTFALL_BENCH_BATCH` (default 10,000), the writer's default, into a fresh
//! SQLite store and a fresh ClickHouse database, and prints events/second for each. ClickHouse
//! is `FOOTFALL_BENCH_CLICKHOUSE_URL` if set, else a throw-away server of its own (Debian's
//! package, installed if missing).

use std::sync::Arc;
use std::time::Instant;

use footfall::config::ClickHouseConfig;
use footfall::store::clickhouse::ClickHouseStore;
use footfall::store::sqlite::SqliteStore;
use footfall::store::{EventRow, Store};
use footfall_tests::OwnClickHouse;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn events(n: usize) -> Vec<EventRow> {
    let paths = [
        "/",
        "/pricing",
        "/blog/why-footfall",
        "/docs/install",
        "/about",
    ];
    let sources = [
        ("", "", "Direct"),
        ("google.com", "Google", "Organic Search"),
        ("news.ycombinator.com/item", "Hacker News", "Organic Social"),
    ];
    let start = 1_764_028_800u32;
    (0..n)
        .map(|i| {
            let (referrer, source, channel) = sources[i % sources.len()];
            EventRow {
                site_id: 1 + (i % 3) as u32,
                timestamp: start + (i as u32 / 20),
                name: "pageview".into(),
                hostname: "example.com".into(),
                pathname: paths[i % paths.len()].into(),
                visitor_id: (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                session_id: (i as u64 / 4).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
                referrer: referrer.into(),
                referrer_source: source.into(),
                channel: channel.into(),
                browser: "Chrome".into(),
                browser_version: "131".into(),
                os: "Windows".into(),
                os_version: "10".into(),
                device: "Desktop".into(),
                country_code: "DK".into(),
                region: "DK-84".into(),
                city: "Copenhagen".into(),
                screen_width: 1440,
                scroll_depth: 255,
                ..EventRow::default()
            }
        })
        .collect()
}

async fn measure(name: &str, store: Arc<dyn Store>, rows: &[EventRow], batch: usize) {
    store.migrate().await.expect("migrate");
    let chunks: Vec<Arc<[EventRow]>> = rows.chunks(batch).map(Arc::from).collect();
    let start = Instant::now();
    for chunk in chunks {
        store.insert_events(chunk).await.expect("insert");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<11} {:>9} events in {secs:>7.2} s = {:>10.0} events/s (batches of {batch})",
        rows.len(),
        rows.len() as f64 / secs
    );
}

fn main() {
    let n = env_number("FOOTFALL_BENCH_EVENTS", 500_000);
    let batch = env_number("FOOTFALL_BENCH_BATCH", 10_000).max(1);
    let rows = events(n);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(measure(
        "sqlite",
        Arc::new(SqliteStore::open(dir.path()).unwrap()),
        &rows,
        batch,
    ));

    // Started before it is needed, stopped when dropped at the end.
    let own_server = std::env::var("FOOTFALL_BENCH_CLICKHOUSE_URL")
        .is_err()
        .then(OwnClickHouse::start);
    let url = match &own_server {
        Some(server) => server.url.clone(),
        None => std::env::var("FOOTFALL_BENCH_CLICKHOUSE_URL").unwrap_or_default(),
    };
    let ch = ClickHouseConfig {
        url,
        user: "default".into(),
        password: String::new(),
        database: "footfall_bench".into(),
        cluster: None,
    };
    runtime.block_on(async {
        let admin = ClickHouseStore::new(&ch);
        admin.migrate().await.expect("migrate");
        measure("clickhouse", Arc::new(admin), &rows, batch).await;
    });
}
