//! Latency of a full dashboard's queries on each store.
//!
//! `cargo bench --bench dashboard` stores `FOOTFALL_BENCH_SIZES` (default `500000,10000000`)
//! pageviews spread over 30 days for one site in each of `FOOTFALL_BENCH_STORES` (default
//! `duckdb,clickhouse,sqlite`), then times the ten Stats API queries a dashboard opens with:
//! top stats, the daily series, and the top 10 pages, sources, browsers, operating systems,
//! countries, entry pages, exit pages and UTM sources over `30d`; unfiltered and filtered by
//! one source, from raw events, then again once the closed days are rolled up (daily rollups
//! answer the unfiltered set, the closed days' visit rows the filtered one, raw events
//! today), and after rollups with sampling allowed (at `FOOTFALL_BENCH_SAMPLING_THRESHOLD`
//! rows, default the collector's 10,000,000). It prints a table: ingest rate, the best of
//! three runs of each set, how long the rollup job took, and the store's size on disk. With
//! `FOOTFALL_BENCH_GOALS=N` the site has N pageview goals (`/page/1*`, `/page/2*`, …) before
//! the rollups, which then count them too, and a second table prints how long the Goals
//! panel's question (every goal's visitors, completions and conversion rate over 30 days)
//! took from raw events and from the goal rollups.
//! ClickHouse is `FOOTFALL_BENCH_CLICKHOUSE_URL` if set, else a throw-away server.
//!
//! At `FOOTFALL_BENCH_SQL_SEED` events or more (default 20,000,000), ClickHouse is seeded by
//! one `INSERT … SELECT … FROM numbers(N)` that makes the same rows as [`events`] (the test
//! `the_sql_seed_makes_the_rows_of_the_api_seed` checks it), since 100 million events
//! through the Events API would take most of the bench's time; its ingest column then shows
//! the seeding rate. With `FOOTFALL_BENCH_REUSE=1` a ClickHouse database that already holds
//! the events is kept rather than seeded again.
//!
//! With `FOOTFALL_BENCH_CLICKHOUSE_CLUSTER` (a cluster name in the servers' `remote_servers`)
//! and `FOOTFALL_BENCH_CLICKHOUSE_URL` listing its nodes, the ClickHouse store runs on that
//! cluster: the schema `ON CLUSTER`, the seed through the `Distributed` table, synchronously.

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
use footfall::store::{Site, Store};
use footfall_tests::OwnClickHouse;
use serde_json::json;

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

/// The best of `FOOTFALL_BENCH_RUNS` (default 3) runs of the ten queries, in ms, or why
/// they were not answered.
async fn time_dashboard(
    store: &dyn Store,
    site: &Site,
    policy: &Policy,
    filtered: bool,
) -> Result<f64, String> {
    let mut best = f64::MAX;
    for _ in 0..bench_runs() {
        let start = Instant::now();
        for q in dashboard(filtered) {
            let t = Instant::now();
            let parsed = model::parse(&q).expect("valid query");
            let answer = match run(store, site, &parsed, policy).await {
                Ok(answer) => answer,
                Err(e) => {
                    // At 100 million events a question may not fit the server's memory limit.
                    eprintln!("  not answered: {} {}: {e}", q["dimensions"], q["filters"]);
                    let e = e.to_string();
                    return Err(if e.contains("Memory limit") {
                        "memory limit".into()
                    } else {
                        e.chars().take(40).collect()
                    });
                }
            };
            if std::env::var("FOOTFALL_BENCH_VERBOSE").is_ok() {
                eprintln!(
                    "  {:>7.0} ms  {} {}  sample rate {}",
                    t.elapsed().as_secs_f64() * 1000.0,
                    q["dimensions"],
                    q["filters"],
                    answer["meta"]["sample_rate"]
                );
            }
        }
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(best)
}

/// The Goals panel's question, best of `FOOTFALL_BENCH_RUNS` runs, in ms.
async fn time_goals(store: &dyn Store, site: &Site, policy: &Policy) -> Result<f64, String> {
    let q = json!({"site_id": "example.com", "metrics": ["visitors", "events", "conversion_rate"],
        "date_range": "30d", "dimensions": ["event:goal"], "pagination": {"limit": 100}});
    let parsed = model::parse(&q).expect("valid query");
    let mut best = f64::MAX;
    for _ in 0..bench_runs() {
        let start = Instant::now();
        run(store, site, &parsed, policy)
            .await
            .map_err(|e| e.to_string().chars().take(40).collect::<String>())?;
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(best)
}

fn bench_runs() -> usize {
    std::env::var("FOOTFALL_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3usize)
        .max(1)
}

fn goal_count() -> u32 {
    std::env::var("FOOTFALL_BENCH_GOALS")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

/// A table cell: milliseconds, or why there are none.
fn cell(r: &Result<f64, String>) -> String {
    match r {
        Ok(ms) => format!("{ms:.0} ms"),
        Err(e) => format!("not answered ({e})"),
    }
}

/// One row of the printed table.
struct Row {
    store: &'static str,
    events: usize,
    ingest_per_sec: f64,
    unfiltered: Result<f64, String>,
    filtered: Result<f64, String>,
    rolled: Result<f64, String>,
    rolled_filtered: Result<f64, String>,
    sampled: Result<f64, String>,
    sampled_filtered: Result<f64, String>,
    rollup_secs: f64,
    disk_mb: f64,
    goals_raw: Result<f64, String>,
    goals_rolled: Result<f64, String>,
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

/// How the events get into the store.
enum Seed {
    /// Through the store's own insert, 10,000 events at a time.
    Api,
    /// ClickHouse's `INSERT … SELECT` over `numbers(N)`, by this client.
    Sql(Box<clickhouse::Client>),
}

async fn bench(
    name: &'static str,
    store: Arc<dyn Store>,
    files: Option<&std::path::Path>,
    n: usize,
    now: DateTime<Utc>,
    seed: Seed,
) -> Row {
    store.migrate().await.expect("migrate");
    let held = store.meta().sites().await.expect("sites");
    let site = match held.into_iter().find(|s| s.domain == "example.com") {
        Some(site) => site,
        None => store
            .meta()
            .add_site("example.com", "Europe/Copenhagen")
            .await
            .expect("site"),
    };
    let started = Instant::now();
    match seed {
        Seed::Api => {
            let mut batch = Vec::with_capacity(10_000);
            for e in footfall_tests::volume::events(n, now) {
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
        }
        Seed::Sql(client) => {
            let held: u64 = client
                .query("SELECT count() FROM events WHERE site_id = ?")
                .bind(site.id)
                .fetch_one()
                .await
                .expect("count");
            if held != n as u64 {
                client
                    .query(&footfall_tests::volume::clickhouse_events_sql(
                        site.id, n, now,
                    ))
                    .execute()
                    .await
                    .expect("seed");
            }
        }
    }
    let ingest_per_sec = n as f64 / started.elapsed().as_secs_f64();
    let held = footfall::goals::goals_of(store.as_ref(), site.id)
        .await
        .expect("goals")
        .len();
    for i in held as u32 + 1..=goal_count() {
        let goal = footfall::goals::NewGoal {
            rule: footfall::goals::Rule::Pageview {
                path: format!("/page/{i}*"),
                props: Default::default(),
            },
            display_name: None,
            currency: None,
        };
        footfall::goals::add(store.as_ref(), site.id, goal, 0)
            .await
            .expect("goal");
    }
    eprintln!("{name}: {n} events stored");
    // The bench measures, it does not stop its questions: a day for all of them.
    let policy = Policy {
        now,
        raw_retention_days: 30,
        deadline: footfall::store::Deadline::after(Duration::from_secs(86_400)),
        sample_threshold: 0,
    };
    let unfiltered = time_dashboard(store.as_ref(), &site, &policy, false).await;
    let filtered = time_dashboard(store.as_ref(), &site, &policy, true).await;
    let goals_raw = time_goals(store.as_ref(), &site, &policy).await;
    let started = Instant::now();
    roll_up_closed_days(store.as_ref(), &policy, usize::MAX)
        .await
        .expect("rollups");
    let rollup_secs = started.elapsed().as_secs_f64();
    eprintln!("{name}: closed days rolled up in {rollup_secs:.0} s");
    let rolled = time_dashboard(store.as_ref(), &site, &policy, false).await;
    let rolled_filtered = time_dashboard(store.as_ref(), &site, &policy, true).await;
    let goals_rolled = time_goals(store.as_ref(), &site, &policy).await;
    // The same once more with sampling allowed, at the collector's default threshold.
    let sampling = Policy {
        sample_threshold: std::env::var("FOOTFALL_BENCH_SAMPLING_THRESHOLD")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(10_000_000),
        ..policy
    };
    let sampled = time_dashboard(store.as_ref(), &site, &sampling, false).await;
    let sampled_filtered = time_dashboard(store.as_ref(), &site, &sampling, true).await;
    Row {
        store: name,
        events: n,
        ingest_per_sec,
        unfiltered,
        filtered,
        rolled,
        rolled_filtered,
        sampled,
        sampled_filtered,
        rollup_secs,
        disk_mb: files.map(dir_size).unwrap_or(0) as f64 / 1e6,
        goals_raw,
        goals_rolled,
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
    let sql_seed_from: usize = std::env::var("FOOTFALL_BENCH_SQL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000_000);
    let reuse = std::env::var("FOOTFALL_BENCH_REUSE").is_ok_and(|v| v == "1");
    let cluster = std::env::var("FOOTFALL_BENCH_CLICKHOUSE_CLUSTER").ok();
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
                    Seed::Api,
                )),
                "duckdb" => runtime.block_on(bench(
                    "duckdb",
                    Arc::new(DuckDbStore::open(dir.path()).unwrap()),
                    Some(dir.path()),
                    n,
                    now,
                    Seed::Api,
                )),
                "clickhouse" => {
                    let ch = ClickHouseConfig {
                        url: url.clone(),
                        user: "default".into(),
                        password: String::new(),
                        database: format!("footfall_dashboard_{n}"),
                        cluster: cluster.clone(),
                    };
                    runtime.block_on(async {
                        let admin = clickhouse::Client::default()
                            .with_url(ch.urls()[0])
                            .with_validation(false)
                            .with_setting("insert_distributed_sync", "1")
                            // A cluster's synchronous insert of 100 million rows holds more
                            // than a test node's 1 GB limit on the node that sends them.
                            .with_setting("max_memory_usage", "8000000000");
                        if !reuse {
                            let on = match &cluster {
                                Some(name) => format!(" ON CLUSTER {name}"),
                                None => String::new(),
                            };
                            admin
                                .query(&format!("DROP DATABASE IF EXISTS ?{on}"))
                                .bind(clickhouse::sql::Identifier(&ch.database))
                                .execute()
                                .await
                                .expect("fresh database");
                        }
                        let seed = if n >= sql_seed_from {
                            Seed::Sql(Box::new(admin.with_database(&ch.database)))
                        } else {
                            Seed::Api
                        };
                        bench(
                            if cluster.is_some() {
                                "clickhouse cluster"
                            } else {
                                "clickhouse"
                            },
                            Arc::new(ClickHouseStore::new(&ch)),
                            None,
                            n,
                            now,
                            seed,
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
        "\n| store | events | ingest (events/s) | 10 queries, 30 d, raw | filtered by source, raw | rolling up | after rollups | filtered, after rollups | sampling allowed | filtered, sampling allowed | disk (MB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {} | {} | {:.0} s | {} | {} | {} | {} | {} |",
            r.store,
            r.events,
            r.ingest_per_sec,
            cell(&r.unfiltered),
            cell(&r.filtered),
            r.rollup_secs,
            cell(&r.rolled),
            cell(&r.rolled_filtered),
            cell(&r.sampled),
            cell(&r.sampled_filtered),
            if r.disk_mb > 0.0 {
                format!("{:.0}", r.disk_mb)
            } else {
                "-".into()
            }
        );
    }
    if goal_count() > 0 {
        println!(
            "\n| store | events | goals | Goals panel, 30 d, raw | Goals panel, after rollups |"
        );
        println!("|---|---:|---:|---:|---:|");
        for r in &rows {
            println!(
                "| {} | {} | {} | {} | {} |",
                r.store,
                r.events,
                goal_count(),
                cell(&r.goals_raw),
                cell(&r.goals_rolled)
            );
        }
    }
}
