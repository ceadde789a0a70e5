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
use footfall::store::clickhouse_store::ClickHouseStore;
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
    let setup = ClickHouseStore::new(&ch);
    setup.migrate().await.unwrap();
    let site = setup.add_site("example.com", "UTC").await.unwrap();
    let key = footfall::apikey::generate(site.id, 0);
    setup.add_api_key(&key.record).await.unwrap();
    // B reads through node 3: wait for the site to reach it.
    let b_store = ClickHouseStore::new(&ClickHouseConfig {
        url: cluster.url_list(&[3]),
        ..ch.clone()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while b_store.sites().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the site never reached node 3");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = collector(&ch, cluster.url_list(&[1, 2, 3, 4])).await;
    let b = collector(&ch, cluster.url_list(&[3, 4, 1, 2])).await;
    assert!(b.store.current_url().ends_with(&cluster.urls[2]));

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
    assert_eq!(stored(&cluster.urls[0], &ch.database).await, (240, 240));
    // The replica comes back and catches up with its twin.
    let c = cluster.clone();
    blocking(move || c.start_node(2)).await;
    let twin = local_count(&cluster.urls[0], &ch.database).await;
    assert!(
        twin > 0 && twin < 240,
        "shard 1 holds part of the events: {twin}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while local_count(&cluster.urls[1], &ch.database).await != twin {
        assert!(
            Instant::now() < deadline,
            "replica 2 did not catch up: {} of {twin}",
            local_count(&cluster.urls[1], &ch.database).await
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
    assert_eq!(
        stored(&cluster.urls[0], &ch.database).await,
        (420, 420),
        "every event once"
    );
    let (ra, rb) = (a.app.shutdown().await, b.app.shutdown().await);
    assert_eq!((ra.left_in_spool, rb.left_in_spool), (0, 0));
    assert_eq!(ra.written + rb.written, 420);

    // 3. Mistakes at start: each named, and nothing created.
    let databases = |name: String| {
        let url = cluster.urls[0].clone();
        async move {
            clickhouse::Client::default()
                .with_url(url)
                .with_validation(false)
                .query("SELECT count() FROM system.databases WHERE name = ?")
                .bind(name)
                .fetch_one::<u64>()
                .await
                .unwrap()
        }
    };
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
