//! Footfall on a ClickHouse cluster under faults, with two collectors sending at once.
//!
//! One cluster of the test's own (ZooKeeper, two shards of two replicas) and two collectors:
//! A lists the nodes 1, 2, 3, 4 and B lists 3, 4, 1, 2, so they write through different nodes.
//! In turn: a replica stops during ingest and comes back; a whole shard stops and comes back;
//! then the mistakes an operator can make at start. Every event sent is answered 202 and is
//! stored exactly once; queries are answered while a replica is down; the replica catches up.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use footfall::cli::serve::App;
use footfall::clock::ManualClock;
use footfall::config::{ClickHouseConfig, Config};
use footfall::store::clickhouse::ClickHouseStore;
use footfall::store::{Store, StoreError};
use footfall_tests::{CHROME_UA, OwnCluster, footfall_bin, fresh_cluster_database};
use tower::ServiceExt;

struct Collector {
    app: App,
    store: Arc<ClickHouseStore>,
    _dir: tempfile::TempDir,
}

async fn collector(ch: &ClickHouseConfig, urls: String) -> Collector {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(None, Vec::new()).unwrap();
    config.flush_interval = Duration::from_millis(20);
    config.data_dir = dir.path().join("data");
    config.clickhouse = Some(ClickHouseConfig {
        url: urls,
        ..ch.clone()
    });
    let store = Arc::new(ClickHouseStore::new(config.clickhouse.as_ref().unwrap()));
    store.migrate().await.unwrap();
    let app = App::start(&config, store.clone(), ManualClock::new(Utc::now()))
        .await
        .unwrap();
    Collector {
        app,
        store,
        _dir: dir,
    }
}

async fn send(c: &Collector, path: &str, visitor: u32) {
    let body = format!(r#"{{"n":"pageview","u":"https://example.com{path}","d":"example.com"}}"#);
    let req = Request::post("/api/event")
        .header("user-agent", CHROME_UA)
        .body(Body::from(body))
        .unwrap();
    let ip = std::net::Ipv4Addr::from(0x0a00_0000 | visitor);
    let peer = std::net::SocketAddr::new(ip.into(), 1234);
    let r = footfall::http::router(c.app.state.clone())
        .layer(axum::extract::connect_info::MockConnectInfo(peer))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{path}");
    assert_eq!(r.headers().get("x-footfall-dropped"), None, "{path}");
}

/// Waits until the collector has written everything it accepted.
async fn settle(c: &Collector, within: Duration) {
    let m = &c.app.state.metrics;
    let deadline = Instant::now() + within;
    while m.written.load(Ordering::SeqCst) < m.accepted.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "{} of {} accepted events written",
            m.written.load(Ordering::SeqCst),
            m.accepted.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many events the cluster holds, and how many distinct pages (every page is sent once).
async fn stored(url: &str, database: &str) -> (u64, u64) {
    clickhouse::Client::default()
        .with_url(url)
        .with_database(database)
        .with_validation(false)
        .query("SELECT count(), uniqExact(pathname) FROM events")
        .fetch_one()
        .await
        .unwrap()
}

async fn local_count(url: &str, database: &str) -> u64 {
    clickhouse::Client::default()
        .with_url(url)
        .with_database(database)
        .with_validation(false)
        .query("SELECT count() FROM events_local")
        .fetch_one()
        .await
        .unwrap_or(u64::MAX)
}

/// How many databases named `name` the node at `url` has.
async fn databases(url: &str, name: String) -> u64 {
    clickhouse::Client::default()
        .with_url(url)
        .with_validation(false)
        .query("SELECT count() FROM system.databases WHERE name = ?")
        .bind(name)
        .fetch_one::<u64>()
        .await
        .unwrap()
}

async fn blocking(f: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(f).await.unwrap();
}

/// Sends `n` events through each collector, 25 ms apart, each on its own page; `during` runs
/// once, after a third of them.
async fn load(a: &Collector, b: &Collector, tag: &str, n: usize, during: impl AsyncFnOnce()) {
    let mut during = Some(during);
    for i in 0..n {
        if i == n / 3
            && let Some(f) = during.take()
        {
            f().await;
        }
        send(a, &format!("/{tag}/a/{i}"), i as u32).await;
        send(b, &format!("/{tag}/b/{i}"), 100_000 + i as u32).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_on_a_cluster_lose_nothing_when_a_replica_or_a_shard_stops() {
    let cluster = Arc::new(OwnCluster::start());
    let ch = fresh_cluster_database(&cluster.url_list(&[1, 2, 3, 4]), "faults").await;

    // Before anything exists: a node without its macros is named, and nothing is created.
    let c = cluster.clone();
    blocking(move || c.drop_macros(4)).await;
    match ClickHouseStore::new(&ch).migrate().await {
        Err(StoreError::Migration { message, .. }) => {
            assert!(
                message.contains("has no `replica` macro")
                    || message.contains("has no `shard` macro"),
                "{message}"
            );
        }
        other => panic!("a node without macros was accepted: {other:?}"),
    }
    for url in &cluster.urls {
        assert_eq!(databases(url, ch.database.clone()).await, 0);
    }
    let c = cluster.clone();
    blocking(move || c.restore_macros(4)).await;
    // Two collectors creating the schema at the same moment, through different nodes.
    let setup = ClickHouseStore::new(&ch);
    let other = ClickHouseStore::new(&ClickHouseConfig {
        url: cluster.url_list(&[4]),
        ..ch.clone()
    });
    let (one, two) = tokio::join!(setup.migrate(), other.migrate());
    let (one, two) = match (one, two) {
        (Ok(one), Ok(two)) => (one, two),
        (one, two) => panic!("{one:?}\n{two:?}\n{}", cluster.log_tails()),
    };
    assert!(!one.is_empty() || !two.is_empty());
    assert!(
        setup.migrate().await.unwrap().is_empty(),
        "nothing left to run"
    );
    let site = setup.meta().add_site("example.com", "UTC").await.unwrap();
    let key = footfall::apikey::generate(site.id, 0);
    setup.meta().add_api_key(&key.record).await.unwrap();
    // B reads through node 3: wait for the site to reach it.
    let b_store = ClickHouseStore::new(&ClickHouseConfig {
        url: cluster.url_list(&[3]),
        ..ch.clone()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while b_store.meta().sites().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the site never reached node 3");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = collector(&ch, cluster.url_list(&[1, 2, 3, 4])).await;
    let b = collector(&ch, cluster.url_list(&[3, 4, 1, 2])).await;
    assert!(b.store.current_url().ends_with(&cluster.urls[2]));

    // The collectors agree on today's salt (the smallest written, once replication brings
    // both to each node; each refreshes every 10 s), so a visitor has one hash whichever
    // collector it reaches.
    let salt = |c: &Collector| {
        c.app
            .state
            .pipeline
            .salts
            .load()
            .as_ref()
            .as_ref()
            .and_then(|s| s.for_day(chrono::Utc::now().date_naive()).map(|s| s.0))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while salt(&a).is_none() || salt(&a) != salt(&b) {
        assert!(
            Instant::now() < deadline,
            "the collectors hold different salts"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 1. Replica 2 of shard 1 stops for a while during steady load from both collectors.
    let c = cluster.clone();
    load(&a, &b, "replica", 120, async || {
        blocking(move || c.stop_node(2)).await;
    })
    .await;
    // Queries are answered with the replica down.
    let req = Request::post("/api/v2/query")
        .header("authorization", format!("Bearer {}", key.secret))
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"site_id":"example.com","metrics":["visitors","pageviews"],"date_range":"day"}"#,
        ))
        .unwrap();
    let peer = std::net::SocketAddr::new([127, 0, 0, 1].into(), 1);
    let r = footfall::http::router(a.app.state.clone())
        .layer(axum::extract::connect_info::MockConnectInfo(peer))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    settle(&a, Duration::from_secs(60)).await;
    settle(&b, Duration::from_secs(60)).await;
    // The replica comes back and the two replicas of shard 1 converge: an insert that
    // replica 2 took just before it stopped reaches replica 1 now. Then every event is there,
    // once.
    let c = cluster.clone();
    blocking(move || c.start_node(2)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let one = local_count(&cluster.urls[0], &ch.database).await;
        let two = local_count(&cluster.urls[1], &ch.database).await;
        if one == two && stored(&cluster.urls[0], &ch.database).await == (240, 240) {
            assert!(
                one > 0 && one < 240,
                "shard 1 holds part of the events: {one}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas of shard 1 at {one} and {two}; stored {:?}",
            stored(&cluster.urls[0], &ch.database).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 2. All of shard 2 stops: the collectors keep answering 202, hold the events in their
    // spools, and store them once when the shard is back. B's first two nodes are the ones
    // that stopped, so it moves on to node 1.
    let c = cluster.clone();
    blocking(move || {
        c.stop_node(3);
        c.stop_node(4);
    })
    .await;
    load(&a, &b, "shard", 90, async || {}).await;
    let held = |c: &Collector| {
        let m = &c.app.state.metrics;
        m.accepted.load(Ordering::SeqCst) - m.written.load(Ordering::SeqCst)
    };
    assert!(
        held(&a) > 0 && held(&b) > 0,
        "events wait while a shard is away"
    );
    assert!(b.store.current_url().ends_with(&cluster.urls[0]));
    let c = cluster.clone();
    blocking(move || {
        c.start_node(3);
        c.start_node(4);
    })
    .await;
    settle(&a, Duration::from_secs(120)).await;
    settle(&b, Duration::from_secs(120)).await;
    // A read may reach the shard's replica that is still fetching what its twin took; wait for
    // the shard to converge. Never more than once each.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (rows, pages) = stored(&cluster.urls[0], &ch.database).await;
        assert_eq!(rows, pages, "an event stored twice");
        if rows == 420 {
            break;
        }
        assert!(Instant::now() < deadline, "{rows} of 420 events stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (three, four) = (
        local_count(&cluster.urls[2], &ch.database).await,
        local_count(&cluster.urls[3], &ch.database).await,
    );
    assert!(three > 0, "shard 2 holds part of the events");
    let deadline = Instant::now() + Duration::from_secs(60);
    while local_count(&cluster.urls[2], &ch.database).await
        != local_count(&cluster.urls[3], &ch.database).await
    {
        assert!(
            Instant::now() < deadline,
            "shard 2's replicas at {three} and {four} do not converge"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ra, rb) = (a.app.shutdown().await, b.app.shutdown().await);
    assert_eq!((ra.left_in_spool, rb.left_in_spool), (0, 0));
    assert_eq!(ra.written + rb.written, 420);

    // 3. Mistakes at start: each named, and nothing created.
    let databases = |name: String| databases(&cluster.urls[0], name);
    let unknown = ClickHouseConfig {
        cluster: Some("nope".into()),
        database: format!("t_unknown_cluster_{}", std::process::id()),
        ..ch.clone()
    };
    match ClickHouseStore::new(&unknown).migrate().await {
        Err(StoreError::Migration { message, .. }) => {
            assert!(message.contains("no cluster `nope`"), "{message}");
        }
        other => panic!("an unknown cluster was accepted: {other:?}"),
    }
    assert_eq!(databases(unknown.database.clone()).await, 0);
    // The binary says so and exits non-zero.
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(footfall_bin())
        .args(["--data-dir"])
        .arg(dir.path())
        .arg("serve")
        .env("FOOTFALL_LISTEN", "127.0.0.1:0")
        .env("FOOTFALL_CLICKHOUSE_URL", &unknown.url)
        .env("FOOTFALL_CLICKHOUSE_DATABASE", &unknown.database)
        .env("FOOTFALL_CLICKHOUSE_CLUSTER", "nope")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no cluster `nope`"), "{stderr}");

    let c = cluster.clone();
    blocking(move || c.stop_zookeeper()).await;
    let no_zk = ClickHouseConfig {
        database: format!("t_no_zookeeper_{}", std::process::id()),
        ..ch.clone()
    };
    match ClickHouseStore::new(&no_zk).migrate().await {
        Err(StoreError::Migration { message, .. }) => {
            assert!(message.contains("cannot reach ZooKeeper"), "{message}");
        }
        other => panic!("a cluster without ZooKeeper was accepted: {other:?}"),
    }
    assert_eq!(databases(no_zk.database.clone()).await, 0);
}

/// `clickhouse.url` listing several nodes: the first that answers is used and `/readyz` is
/// ready while one answers; with none answering, `ping` fails and a collector does not start.
/// Runs against the shared single test server, listed after an unreachable address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_answering_url_is_used_and_readyz_says_when_none_answers() {
    let real = footfall_tests::clickhouse_url();
    let ch = footfall_tests::fresh_database(&real, "failover").await;
    let dead = "http://127.0.0.1:1";
    let listed = ClickHouseConfig {
        url: format!("{dead},{real}"),
        ..ch.clone()
    };
    let store = ClickHouseStore::new(&listed);
    store.migrate().await.unwrap();
    assert_eq!(store.current_url(), real.trim_end_matches('/'));
    store.ping().await.unwrap();
    store.meta().add_site("example.com", "UTC").await.unwrap();
    let readyz = async |config: &ClickHouseConfig| {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::load(None, Vec::new()).unwrap();
        c.data_dir = dir.path().join("data");
        c.clickhouse = Some(config.clone());
        // As `footfall serve` does: the schema first, then the collector.
        let store = Arc::new(ClickHouseStore::new(config));
        store.migrate().await.ok()?;
        let app = App::start(&c, store, ManualClock::new(Utc::now())).await;
        let Ok(app) = app else {
            return None;
        };
        let peer = std::net::SocketAddr::new([127, 0, 0, 1].into(), 1);
        let r = footfall::http::router(app.state.clone())
            .layer(axum::extract::connect_info::MockConnectInfo(peer))
            .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        app.shutdown().await;
        Some(r.status())
    };
    assert_eq!(readyz(&listed).await, Some(StatusCode::OK));
    // Nodes that never answer: the collector cannot start (it loads sites and salts first).
    let none = ClickHouseConfig {
        url: format!("{dead},http://127.0.0.1:2"),
        ..ch.clone()
    };
    assert!(ClickHouseStore::new(&none).ping().await.is_err());
    assert_eq!(readyz(&none).await, None);
}
