//! Differential test: the same few thousand varied requests (several sites, days, time zones,
//! sources, devices, countries, bots) go through a collector on each store: SQLite, DuckDB, one
//! ClickHouse node and the ClickHouse cluster. All four must end up with the same rows and give
//! the same Stats API answers. Visitor hashes agree because every store is given the same
//! salt for each day before its collector would draw one (salts are random per day, so three
//! separate stores would otherwise differ); session ids are random, so sessions are compared
//! by which rows share one.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, Duration as Span, Utc};
use footfall::cli::serve::App;
use footfall::clock::ManualClock;
use footfall::ingest::visitor::Salt;
use footfall::store::EventRow;
use footfall_tests::{Backend, TestStore};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const SITES: [(&str, &str); 3] = [
    ("shop.example", "Europe/Copenhagen"),
    ("blog.example", "America/New_York"),
    ("docs.example", "UTC"),
];
const UAS: [&str; 8] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
    "curl/8.5.0",
];
const IPS: [&str; 7] = [
    "2.2.3.",
    "175.16.199.",
    "214.0.1.",
    "89.160.20.",
    "10.9.8.",
    "203.0.113.",
    "2001:480:10::",
];
const REFERRERS: [&str; 8] = [
    "",
    "https://www.google.com/",
    "https://l.facebook.com/l.php",
    "https://news.ycombinator.com/item?id=1",
    "https://github.com/org/repo",
    "https://semalt.com/",
    "https://blog.other.net/post",
    "https://duckduckgo.com/",
];
const QUERIES: [&str; 5] = [
    "",
    "?utm_source=newsletter&utm_medium=email",
    "?utm_source=google&utm_medium=cpc&utm_campaign=x",
    "?ref=producthunt",
    "?x=1",
];

struct Side {
    app: App,
    t: TestStore,
    clock: Arc<ManualClock>,
}

async fn side(b: Backend, start: DateTime<Utc>, salt: &Salt) -> Side {
    let t = TestStore::new(b, "differential").await;
    for (domain, tz) in SITES {
        t.store.meta().add_site(domain, tz).await.unwrap();
    }
    t.store
        .meta()
        .put_salt(start.date_naive(), salt)
        .await
        .unwrap();
    let clock = ManualClock::new(start);
    let app = App::start(&t.config, t.store.clone(), clock.clone())
        .await
        .unwrap();
    Side { app, t, clock }
}

async fn send(s: &Side, peer: &str, ua: &str, body: &str) {
    use tower::ServiceExt;
    let req = Request::post("/api/event")
        .header("user-agent", ua)
        .body(Body::from(body.to_string()))
        .unwrap();
    let peer = std::net::SocketAddr::new(peer.parse().unwrap(), 1234);
    let r = footfall::http::router(s.app.state.clone())
        .layer(axum::extract::connect_info::MockConnectInfo(peer))
        .oneshot(req)
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// Rows without their random session and batch ids, sorted, plus which rows share a session.
fn canonical(mut rows: Vec<EventRow>) -> (Vec<String>, Vec<usize>) {
    let key = |e: &EventRow| {
        let mut e = e.clone();
        e.session_id = 0;
        e.batch_id = 0;
        serde_json::to_string(&e).unwrap()
    };
    rows.sort_by_cached_key(key);
    let keys: Vec<String> = rows.iter().map(key).collect();
    let mut first_of_session = std::collections::HashMap::new();
    let groups = rows
        .iter()
        .enumerate()
        .map(|(i, e)| *first_of_session.entry(e.session_id).or_insert(i))
        .collect();
    (keys, groups)
}

/// Waits until the collector has written every event it accepted.
async fn settle(s: &Side) {
    use std::sync::atomic::Ordering;
    let m = &s.app.state.metrics;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while m.written.load(Ordering::SeqCst) < m.accepted.load(Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "events not written");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn ask(s: &Side, key: &str, q: &serde_json::Value) -> serde_json::Value {
    use tower::ServiceExt;
    let req = Request::post("/api/v2/query")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(q.to_string()))
        .unwrap();
    let peer = std::net::SocketAddr::new([127, 0, 0, 1].into(), 1234);
    let r = footfall::http::router(s.app.state.clone())
        .layer(axum::extract::connect_info::MockConnectInfo(peer))
        .oneshot(req)
        .await
        .unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 10_000_000)
        .await
        .unwrap();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap()
}

/// The goals of every site: pages, the sign-ups (with their revenue), one plan's sign-ups.
fn goals() -> Vec<footfall::goals::NewGoal> {
    use footfall::goals::{NewGoal, Rule};
    vec![
        NewGoal {
            rule: Rule::Pageview {
                path: "/p1*".into(),
                props: Default::default(),
            },
            display_name: None,
            currency: None,
        },
        NewGoal {
            rule: Rule::Event {
                name: "Signup".into(),
                props: Default::default(),
            },
            display_name: None,
            currency: Some("EUR".into()),
        },
        NewGoal {
            rule: Rule::Event {
                name: "Signup".into(),
                props: [("plan".to_string(), "p1".to_string())].into(),
            },
            display_name: Some("Signup p1".into()),
            currency: None,
        },
    ]
}

/// Stats API questions over the whole run: totals, every kind of breakdown, time series,
/// filters, a custom event's properties, and goals.
fn questions(domain: &str) -> Vec<serde_json::Value> {
    use serde_json::json;
    let range = json!(["2026-11-16", "2026-11-21"]);
    let all = json!([
        "visitors",
        "visits",
        "pageviews",
        "events",
        "views_per_visit",
        "bounce_rate",
        "visit_duration"
    ]);
    let mut out = vec![json!({"site_id": domain, "metrics": all, "date_range": range})];
    for dimension in [
        "visit:source",
        "visit:channel",
        "visit:referrer",
        "visit:utm_source",
        "visit:country",
        "visit:city",
        "visit:device",
        "visit:browser",
        "visit:os",
        "visit:entry_page",
        "visit:exit_page",
        "event:page",
        "event:name",
        "time:day",
        "time:hour",
    ] {
        out.push(json!({"site_id": domain, "metrics": ["visitors", "visits", "pageviews", "bounce_rate"], "date_range": range, "dimensions": [dimension], "order_by": [["visitors", "desc"], [dimension, "asc"]]}));
    }
    out.push(json!({"site_id": domain, "metrics": ["visitors", "events", "conversion_rate"], "date_range": range, "dimensions": ["event:props:plan"], "filters": [["is", "event:name", ["Signup"]]], "order_by": [["visitors", "desc"], ["event:props:plan", "asc"]]}));
    // Goals, their conversion rates and revenue, and what visits did.
    out.push(json!({"site_id": domain, "metrics": ["visitors", "events", "conversion_rate", "total_revenue"], "date_range": range, "dimensions": ["event:goal"], "order_by": [["visitors", "desc"], ["event:goal", "asc"]]}));
    out.push(json!({"site_id": domain, "metrics": ["visitors", "conversion_rate", "group_conversion_rate", "average_revenue"], "date_range": range, "dimensions": ["visit:source"], "filters": [["is", "event:goal", ["Signup"]]], "order_by": [["visitors", "desc"], ["visit:source", "asc"]]}));
    out.push(json!({"site_id": domain, "metrics": ["visitors", "visits", "pageviews"], "date_range": range, "dimensions": ["visit:device"], "filters": [["has_done", ["is", "event:goal", ["Signup"]]]], "order_by": [["visitors", "desc"], ["visit:device", "asc"]]}));
    out.push(json!({"site_id": domain, "metrics": ["visitors", "bounce_rate"], "date_range": range, "filters": [["has_not_done", ["contains", "event:goal", ["Visit"]]]]}));
    out.push(json!({"site_id": domain, "metrics": ["visitors", "events", "group_conversion_rate", "total_revenue"], "date_range": range, "dimensions": ["time:day"], "filters": [["is", "event:goal", ["Signup"]]]}));
    out.push(json!({"site_id": domain, "metrics": ["visitors", "visits", "visit_duration"], "date_range": range, "dimensions": ["visit:device"], "filters": [["is_not", "visit:country", ["DK"]], ["contains", "event:page", ["/p1"]]], "order_by": [["visitors", "desc"], ["visit:device", "asc"]]}));
    // Visit-level questions, which closed days answer from their visit rows.
    out.push(json!({"site_id": domain, "metrics": ["visitors", "visits", "bounce_rate", "visit_duration"], "date_range": range, "dimensions": ["visit:exit_page"], "filters": [["is_not", "visit:country", ["DK"]]], "order_by": [["visitors", "desc"], ["visit:exit_page", "asc"]]}));
    out.push(json!({"site_id": domain, "metrics": ["visitors", "visits", "pageviews", "percentage"], "date_range": range, "dimensions": ["visit:browser", "time:day"], "filters": [["is", "visit:channel", ["Organic Search", "Direct"]]], "order_by": [["visitors", "desc"], ["visit:browser", "asc"], ["time:day", "asc"]]}));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_stores_keep_the_same_rows_and_answer_alike() {
    let start: DateTime<Utc> = "2026-11-16T06:00:00Z".parse().unwrap();
    let salt = Salt([0x5a; 32]);
    let a = side(Backend::Sqlite, start, &salt).await;
    let b = side(Backend::ClickHouse, start, &salt).await;
    let c = side(Backend::Cluster, start, &salt).await;
    let d = side(Backend::DuckDb, start, &salt).await;
    let mut rng = StdRng::seed_from_u64(20261125);
    let mut sent = 0;
    for day in 0..5 {
        for _ in 0..700 {
            let (domain, _) = SITES[rng.random_range(0..SITES.len())];
            let ua = UAS[rng.random_range(0..UAS.len())];
            let prefix = IPS[rng.random_range(0..IPS.len())];
            let ip = format!("{prefix}{}", rng.random_range(1..40));
            let referrer = REFERRERS[rng.random_range(0..REFERRERS.len())];
            let query = QUERIES[rng.random_range(0..QUERIES.len())];
            let path = format!("/p{}", rng.random_range(0..12));
            let body = match rng.random_range(0..10) {
                0 => format!(
                    r#"{{"n":"Signup","u":"https://{domain}{path}","d":"{domain}","p":{{"plan":"p{}"}},"$":{{"amount":"{}.5","currency":"EUR"}}}}"#,
                    rng.random_range(0..3),
                    rng.random_range(1..99)
                ),
                1 => format!(
                    r#"{{"n":"engagement","u":"https://{domain}{path}","d":"{domain}","e":{},"sd":{}}}"#,
                    rng.random_range(0..60_000),
                    rng.random_range(0..101)
                ),
                _ => format!(
                    r#"{{"n":"pageview","u":"https://{domain}{path}{query}","d":"{domain}","r":"{referrer}","w":{}}}"#,
                    rng.random_range(320..2560)
                ),
            };
            for s in [&a, &b, &c, &d] {
                send(s, &ip, ua, &body).await;
            }
            sent += 1;
            let step = Span::seconds(rng.random_range(0..90));
            for s in [&a, &b, &c, &d] {
                s.clock.advance(step);
            }
        }
        let next = start + Span::days(day + 1);
        let next_salt = Salt([0x5a_u8.wrapping_add(day as u8 + 1); 32]);
        for s in [&a, &b, &c, &d] {
            settle(s).await;
            s.t.store
                .meta()
                .put_salt(next.date_naive(), &next_salt)
                .await
                .unwrap();
            s.clock.set(next);
            s.app.maintenance.tick().await.unwrap();
        }
    }
    assert_eq!(sent, 3500);
    // The same Stats API answers from every store, for every site: first with goals that no
    // day's rollups count yet (raw events answer them), then after a rollup round counted
    // them on the closed days, when the goal rollups answer what they can, alike.
    let mut keys = Vec::new();
    for (site_id, _) in (1u32..).zip(SITES) {
        let key = footfall::apikey::generate(site_id, 0);
        for s in [&a, &b, &c, &d] {
            settle(s).await;
            s.t.store.meta().add_api_key(&key.record).await.unwrap();
            for goal in goals() {
                footfall::goals::add(s.t.store.as_ref(), site_id, goal, 0)
                    .await
                    .unwrap();
            }
        }
        keys.push(key);
    }
    let mut asked = 0;
    let mut from_raw = std::collections::BTreeMap::new();
    for round in ["raw events", "goal rollups"] {
        if round == "goal rollups" {
            for s in [&a, &b, &c, &d] {
                let days = s.app.maintenance.roll_up(usize::MAX).await.unwrap();
                assert!(days > 0, "the goals are counted on the closed days");
            }
        }
        for ((domain, _), key) in SITES.iter().zip(&keys) {
            for q in questions(domain) {
                let answer = ask(&a, &key.secret, &q).await;
                match from_raw.get(&q.to_string()) {
                    None => {
                        from_raw.insert(q.to_string(), answer.clone());
                    }
                    Some(before) => assert_eq!(&answer, before, "the rollups differ on {q}"),
                }
                assert!(
                    !answer["results"].as_array().unwrap().is_empty(),
                    "{q}: no results"
                );
                assert_eq!(
                    answer,
                    ask(&b, &key.secret, &q).await,
                    "ClickHouse differs on {q}"
                );
                assert_eq!(
                    answer,
                    ask(&c, &key.secret, &q).await,
                    "the cluster differs on {q}"
                );
                assert_eq!(
                    answer,
                    ask(&d, &key.secret, &q).await,
                    "DuckDB differs on {q}"
                );
                asked += 1;
            }
        }
    }
    assert_eq!(asked, 2 * 3 * 25);
    let (ra, rb, rc, rd) = (
        a.app.shutdown().await,
        b.app.shutdown().await,
        c.app.shutdown().await,
        d.app.shutdown().await,
    );
    assert_eq!(ra.written, rb.written);
    assert_eq!(ra.written, rc.written);
    assert_eq!(ra.written, rd.written);
    let rows_a = a.t.events().await;
    let rows_b = b.t.events().await;
    let rows_c = c.t.events().await;
    let rows_d = d.t.events().await;
    assert_eq!(rows_a.len() as u64, ra.written);
    assert!(
        rows_a.len() > 1500,
        "bots and spam dropped, most kept: {}",
        rows_a.len()
    );
    let kinds = |rows: &[EventRow], f: fn(&EventRow) -> &str| {
        rows.iter()
            .map(f)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert!(
        kinds(&rows_a, |e| e.country_code.as_str()) >= 4,
        "countries vary"
    );
    assert!(kinds(&rows_a, |e| e.channel.as_str()) >= 5, "channels vary");
    assert!(kinds(&rows_a, |e| e.device.as_str()) >= 3, "devices vary");
    let (ka, ga) = canonical(rows_a);
    for (name, rows) in [
        ("ClickHouse", rows_b),
        ("the cluster", rows_c),
        ("DuckDB", rows_d),
    ] {
        let (kb, gb) = canonical(rows);
        assert_eq!(ka.len(), kb.len(), "{name}");
        for (x, y) in ka.iter().zip(&kb) {
            assert_eq!(x, y, "{name}");
        }
        assert_eq!(ga, gb, "the same rows share sessions on {name}");
    }
}
