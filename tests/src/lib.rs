//! Support for Footfall's end-to-end tests: both real stores (a fresh SQLite directory or a
//! fresh ClickHouse database per test), the `footfall` binary as a child process, and
//! in-process apps with a driven clock. [`both_stores!`] makes one test per store of each
//! listed test function.
//!
//! Tests find the shared ClickHouse server in `FOOTFALL_TEST_CLICKHOUSE_URL` (its data
//! directory in `FOOTFALL_TEST_CLICKHOUSE_DIR`); `scripts/test.sh` starts one. Tests that stop
//! a server start their own with `scripts/clickhouse-test-server.sh`.

pub mod browser;
pub mod seed;
pub mod volume;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use footfall::cli::serve::App;
use footfall::clock::ManualClock;
use footfall::config::{ClickHouseConfig, Config, EmbeddedStore};
use footfall::store::EventRow;
use footfall::store::Store;
use footfall::store::clickhouse::ClickHouseStore;
use footfall::store::duckdb::DuckDbStore;
use footfall::store::sqlite::SqliteStore;

/// A Chrome 131 user-agent on Windows 10.
pub const CHROME_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn geoip_city_db() -> PathBuf {
    workspace_root().join("tests/fixtures/geoip/GeoIP2-City-Test.mmdb")
}

/// The shared test server's URL.
pub fn clickhouse_url() -> String {
    std::env::var("FOOTFALL_TEST_CLICKHOUSE_URL")
        .expect("FOOTFALL_TEST_CLICKHOUSE_URL is not set: run the tests with scripts/test.sh")
}

/// Connection settings for a database named after the test, dropped first if it exists.
pub async fn fresh_database(url: &str, test: &str) -> ClickHouseConfig {
    let database = format!("t_{test}");
    let client = clickhouse::Client::default()
        .with_url(url)
        .with_validation(false);
    client
        .query("DROP DATABASE IF EXISTS ?")
        .bind(clickhouse::sql::Identifier(&database))
        .execute()
        .await
        .expect("dropping the test database");
    ClickHouseConfig {
        url: url.to_string(),
        user: "default".into(),
        password: String::new(),
        database,
        cluster: None,
    }
}

/// The shared test cluster's node URLs, comma-separated (`scripts/clickhouse-test-cluster.sh`).
pub fn cluster_urls() -> String {
    std::env::var("FOOTFALL_TEST_CLUSTER_URLS")
        .expect("FOOTFALL_TEST_CLUSTER_URLS is not set: run the tests with scripts/test.sh")
}

/// The name of the test clusters in their `remote_servers`.
pub const CLUSTER: &str = "footfall";

/// Connection settings for a database named after the test on the cluster at `urls`, dropped
/// on every node first. The name carries the process id: a replicated table's ZooKeeper path
/// is named after its database, and an earlier run's may linger.
pub async fn fresh_cluster_database(urls: &str, test: &str) -> ClickHouseConfig {
    let database = format!("t_{test}_{}", std::process::id());
    let first = urls.split(',').next().unwrap_or_default();
    let client = clickhouse::Client::default()
        .with_url(first)
        .with_validation(false);
    // A node that has just started may drop the first connection while it sets up its
    // ZooKeeper session: a few tries.
    let mut tries = 0;
    while let Err(e) = client
        .query("DROP DATABASE IF EXISTS ? ON CLUSTER ?")
        .bind(clickhouse::sql::Identifier(&database))
        .bind(clickhouse::sql::Identifier(CLUSTER))
        .execute()
        .await
    {
        tries += 1;
        assert!(tries < 10, "dropping the test database on the cluster: {e}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    ClickHouseConfig {
        url: urls.to_string(),
        user: "default".into(),
        password: String::new(),
        database,
        cluster: Some(CLUSTER.to_string()),
    }
}

/// On the test cluster: what each node is running and the end of its error log, so a failure
/// in CI (where the servers are gone afterwards) says why.
async fn cluster_diagnostics(backend: Backend) -> String {
    if backend != Backend::Cluster {
        return String::new();
    }
    let mut out = String::new();
    for (n, url) in cluster_urls().split(',').enumerate() {
        let client = clickhouse::Client::default()
            .with_url(url)
            .with_validation(false);
        let running = client
            .query("SELECT toString(elapsed), substring(query, 1, 200) FROM system.processes")
            .fetch_all::<(String, String)>()
            .await
            .map(|rows| {
                rows.into_iter()
                    .map(|(t, q)| format!("    {t} s: {q}\n"))
                    .collect::<String>()
            })
            .unwrap_or_else(|e| format!("    unreachable: {e}\n"));
        out.push_str(&format!("\nnode {} ({url}) runs:\n{running}", n + 1));
        if let Ok(dir) = std::env::var("FOOTFALL_TEST_CLUSTER_DIR") {
            let log = std::fs::read_to_string(
                Path::new(&dir).join(format!("node{}/log/error.log", n + 1)),
            )
            .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            out.push_str("  error log, last lines:\n");
            for line in tail.into_iter().rev() {
                out.push_str(&format!(
                    "    {}\n",
                    line.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    out
}

/// A client for reading what a test stored (on a cluster, through its first node).
pub fn client(ch: &ClickHouseConfig) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(ch.urls().first().copied().unwrap_or_default())
        .with_database(&ch.database)
        .with_validation(false)
}

/// Every table of a ClickHouse test database as TSV text.
pub async fn dump_clickhouse_tables(ch: &ClickHouseConfig) -> Vec<(String, String)> {
    let c = client(ch);
    let tables: Vec<String> = c
        .query("SELECT name FROM system.tables WHERE database = ? ORDER BY name")
        .bind(ch.database.as_str())
        .fetch_all()
        .await
        .unwrap();
    let mut out = Vec::new();
    for table in tables {
        let mut cursor = c
            .query("SELECT * FROM ?")
            .bind(clickhouse::sql::Identifier(&table))
            .fetch_bytes("TSV")
            .unwrap();
        let mut text = Vec::new();
        while let Some(chunk) = cursor.next().await.unwrap() {
            text.extend_from_slice(&chunk);
        }
        out.push((table, String::from_utf8_lossy(&text).into_owned()));
    }
    out
}

/// A copy of the DuckDB events file of `data_dir` (and its write-ahead log), opened on its
/// own: another process may hold the file itself.
fn duckdb_snapshot(data_dir: &Path) -> (tempfile::TempDir, DuckDbStore) {
    let copy = tempfile::tempdir().unwrap();
    let file = footfall::store::duckdb::EVENTS_FILE;
    for name in [file.to_string(), format!("{file}.wal")] {
        let from = data_dir.join(&name);
        if from.exists() {
            std::fs::copy(&from, copy.path().join(&name)).unwrap();
        }
    }
    let store = DuckDbStore::open(copy.path()).unwrap();
    (copy, store)
}

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store with everything in SQLite (`embedded_store = "sqlite"`).
    Sqlite,
    /// The default embedded store: events and rollups in DuckDB, the rest in SQLite.
    DuckDb,
    ClickHouse,
    /// Two shards of two replicas (`FOOTFALL_TEST_CLUSTER_URLS`).
    Cluster,
}

/// As [`both_stores!`], plus `mod cluster` running each function on the test cluster.
#[macro_export]
macro_rules! all_stores {
    ($($name:ident),* $(,)?) => {
        $crate::both_stores!($($name),*);
        mod cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Cluster).await })*
        }
    };
}

/// Generates `mod sqlite`, `mod duckdb` and `mod clickhouse`, each with one
/// `#[tokio::test]` per listed function; every function takes a [`Backend`].
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Sqlite).await })*
        }
        mod duckdb {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::DuckDb).await })*
        }
        mod clickhouse {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::ClickHouse).await })*
        }
    };
}

/// A fresh, migrated store for one test, and where its bytes live on disk.
pub struct TestStore {
    pub backend: Backend,
    pub store: Arc<dyn Store>,
    /// A configuration naming this store (fast flushes, the City test database).
    pub config: Config,
    /// The store's files, when the test can see them.
    pub files: Option<PathBuf>,
    /// The DuckDB store behind `store`, which lets go of its events file before a `footfall`
    /// process is started on it (one process may open it).
    duck: Option<Arc<DuckDbStore>>,
    _dir: tempfile::TempDir,
}

impl TestStore {
    pub async fn new(backend: Backend, test: &str) -> TestStore {
        let url = match backend {
            Backend::Sqlite | Backend::DuckDb => String::new(),
            Backend::ClickHouse => clickhouse_url(),
            Backend::Cluster => cluster_urls(),
        };
        Self::with_clickhouse_at(backend, test, &url).await
    }

    /// A fresh database on the ClickHouse server at `url` (a test's own server).
    pub async fn on_clickhouse(url: &str, test: &str) -> TestStore {
        Self::with_clickhouse_at(Backend::ClickHouse, test, url).await
    }

    /// A fresh database on the cluster whose nodes are at `urls` (a test's own cluster).
    pub async fn on_cluster(urls: &str, test: &str) -> TestStore {
        Self::with_clickhouse_at(Backend::Cluster, test, urls).await
    }

    async fn with_clickhouse_at(backend: Backend, test: &str, url: &str) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::load(None, Vec::new()).unwrap();
        config.flush_interval = Duration::from_millis(20);
        config.geoip_db = vec![geoip_city_db()];
        config.data_dir = dir.path().join("data");
        let mut duck = None;
        let (store, files): (Arc<dyn Store>, _) = match backend {
            Backend::Sqlite => {
                config.embedded_store = EmbeddedStore::Sqlite;
                (
                    Arc::new(SqliteStore::open(&config.data_dir).unwrap()),
                    Some(config.data_dir.clone()),
                )
            }
            Backend::DuckDb => {
                config.embedded_store = EmbeddedStore::DuckDb;
                let store = Arc::new(DuckDbStore::open(&config.data_dir).unwrap());
                duck = Some(store.clone());
                (store, Some(config.data_dir.clone()))
            }
            Backend::ClickHouse => {
                let ch = fresh_database(url, test).await;
                let files = std::env::var("FOOTFALL_TEST_CLICKHOUSE_DIR")
                    .ok()
                    .map(|d| PathBuf::from(d).join("data").join(&ch.database));
                config.clickhouse = Some(ch.clone());
                (Arc::new(ClickHouseStore::new(&ch)), files)
            }
            Backend::Cluster => {
                let ch = fresh_cluster_database(url, test).await;
                let files = std::env::var("FOOTFALL_TEST_CLUSTER_DIR")
                    .ok()
                    .map(PathBuf::from);
                config.clickhouse = Some(ch.clone());
                (Arc::new(ClickHouseStore::new(&ch)), files)
            }
        };
        if let Err(e) = store.migrate().await {
            panic!(
                "migrating the test store: {e}{}",
                cluster_diagnostics(backend).await
            );
        }
        TestStore {
            backend,
            store,
            config,
            files,
            duck,
            _dir: dir,
        }
    }

    /// Another handle on the same store, as another collector would open it. On a cluster
    /// it lists the nodes from the third on, so it reads and writes through another node.
    pub fn another_collector(&self) -> Arc<dyn Store> {
        match &self.config.clickhouse {
            Some(ch) if ch.cluster.is_some() => {
                let mut urls: Vec<&str> = ch.url.split(',').collect();
                let turn = 2.min(urls.len());
                urls.rotate_left(turn);
                Arc::new(ClickHouseStore::new(&ClickHouseConfig {
                    url: urls.join(","),
                    ..ch.clone()
                }))
            }
            Some(ch) => Arc::new(ClickHouseStore::new(ch)),
            None if self.backend == Backend::DuckDb => {
                Arc::new(DuckDbStore::open(&self.config.data_dir).unwrap())
            }
            None => Arc::new(SqliteStore::open(&self.config.data_dir).unwrap()),
        }
    }

    /// The environment that points a `footfall` process at this store. On DuckDB the test
    /// lets go of the events file here, so the process can open it.
    pub fn env(&self) -> Vec<(String, String)> {
        if let Some(duck) = &self.duck {
            duck.release();
        }
        let mut env = vec![
            (
                "FOOTFALL_DATA_DIR".to_string(),
                self.config.data_dir.display().to_string(),
            ),
            (
                "FOOTFALL_GEOIP_DB".to_string(),
                geoip_city_db().display().to_string(),
            ),
            (
                "FOOTFALL_EMBEDDED_STORE".to_string(),
                match self.config.embedded_store {
                    EmbeddedStore::DuckDb => "duckdb",
                    EmbeddedStore::Sqlite => "sqlite",
                }
                .to_string(),
            ),
        ];
        if let Some(ch) = &self.config.clickhouse {
            env.push(("FOOTFALL_CLICKHOUSE_URL".into(), ch.url.clone()));
            env.push(("FOOTFALL_CLICKHOUSE_DATABASE".into(), ch.database.clone()));
            if let Some(cluster) = &ch.cluster {
                env.push(("FOOTFALL_CLICKHOUSE_CLUSTER".into(), cluster.clone()));
            }
        }
        env
    }

    /// The site named `domain` (it must exist).
    pub async fn site(&self, domain: &str) -> footfall::store::Site {
        self.store
            .meta()
            .sites()
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.domain == domain)
            .unwrap_or_else(|| panic!("no site {domain}"))
    }

    /// Every stored event of every site, in time order. On DuckDB, while a `footfall`
    /// process holds the events file, they are read from a copy of it (and its log).
    pub async fn events(&self) -> Vec<EventRow> {
        let mut out = Vec::new();
        let snapshot = match &self.duck {
            Some(duck) => {
                duck.release();
                Some(duckdb_snapshot(&self.config.data_dir))
            }
            None => None,
        };
        let store: &dyn Store = match &snapshot {
            Some((_, copy)) => copy,
            None => self.store.as_ref(),
        };
        for site in self.store.meta().sites().await.unwrap() {
            out.extend(
                store
                    .read_events(site.id, 0, u32::MAX, 10_000_000)
                    .await
                    .unwrap(),
            );
        }
        out.sort_by(|a, b| {
            (a.timestamp, a.site_id, &a.name, &a.pathname).cmp(&(
                b.timestamp,
                b.site_id,
                &b.name,
                &b.pathname,
            ))
        });
        out
    }

    /// Polls until at least `want` events are stored or `timeout` passes.
    pub async fn wait_for_events(&self, want: usize, timeout: Duration) -> Vec<EventRow> {
        let start = Instant::now();
        loop {
            let events = self.events().await;
            if events.len() >= want || start.elapsed() > timeout {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until an event with `pathname` is stored (a barrier: events are written in the
    /// order they were accepted, so once it is there, every event accepted before it is too)
    /// and returns every stored event. Panics after `timeout`.
    pub async fn wait_for_barrier(&self, pathname: &str, timeout: Duration) -> Vec<EventRow> {
        let start = Instant::now();
        loop {
            let events = self.events().await;
            if events.iter().any(|e| e.pathname == pathname) {
                return events;
            }
            assert!(
                start.elapsed() < timeout,
                "the barrier event {pathname} was not stored within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every table of the store as text (BLOBs as hex): for searching what is stored.
    pub async fn dump_tables(&self) -> Vec<(String, String)> {
        match &self.config.clickhouse {
            Some(ch) => dump_clickhouse_tables(ch).await,
            None => {
                dump_sqlite_tables(&self.config.data_dir.join(footfall::store::sqlite::DB_FILE))
            }
        }
    }

    /// Paths of the store's files that contain `needle`.
    pub fn files_containing(&self, needle: &[u8]) -> Vec<PathBuf> {
        let Some(root) = &self.files else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if std::fs::read(&path)
                    .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
                {
                    found.push(path);
                }
            }
        }
        found
    }
}

fn dump_sqlite_tables(path: &Path) -> Vec<(String, String)> {
    use rusqlite::types::ValueRef;
    let conn = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut text = String::new();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                let cell = match row.get_ref(i).unwrap() {
                    ValueRef::Null => String::new(),
                    ValueRef::Integer(n) => n.to_string(),
                    ValueRef::Real(f) => f.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
                };
                text.push_str(&cell);
                text.push('\t');
            }
            text.push('\n');
        }
        out.push((table, text));
    }
    out
}

/// An in-process collector on a fresh store with a manual clock.
pub struct TestApp {
    pub app: App,
    pub t: TestStore,
    pub clock: Arc<ManualClock>,
}

impl TestApp {
    pub async fn start(
        backend: Backend,
        test: &str,
        sites: &[(&str, &str)],
        start: chrono::DateTime<chrono::Utc>,
    ) -> TestApp {
        Self::start_with(backend, test, sites, start, |_| {}).await
    }

    /// Like [`TestApp::start`], with `events` stored before the collector starts (so its
    /// first maintenance round rolls them up like any closed days).
    pub async fn start_seeded(
        backend: Backend,
        test: &str,
        sites: &[(&str, &str)],
        start: chrono::DateTime<chrono::Utc>,
        events: &[EventRow],
    ) -> TestApp {
        let t = TestStore::new(backend, test).await;
        for (domain, tz) in sites {
            t.store.meta().add_site(domain, tz).await.unwrap();
        }
        t.store.insert_events(events.into()).await.unwrap();
        let clock = ManualClock::new(start);
        let app = App::start(&t.config, t.store.clone(), clock.clone())
            .await
            .unwrap();
        TestApp { app, t, clock }
    }

    /// Like [`TestApp::start`], with a chance to change the configuration first.
    pub async fn start_with(
        backend: Backend,
        test: &str,
        sites: &[(&str, &str)],
        start: chrono::DateTime<chrono::Utc>,
        change: impl FnOnce(&mut Config),
    ) -> TestApp {
        let mut t = TestStore::new(backend, test).await;
        for (domain, tz) in sites {
            t.store.meta().add_site(domain, tz).await.unwrap();
        }
        change(&mut t.config);
        let clock = ManualClock::new(start);
        let app = App::start(&t.config, t.store.clone(), clock.clone())
            .await
            .unwrap();
        TestApp { app, t, clock }
    }

    /// Sends one request through the router as if from `peer`.
    pub async fn send(
        &self,
        peer: &str,
        request: axum::http::Request<axum::body::Body>,
    ) -> axum::http::Response<axum::body::Body> {
        use tower::ServiceExt;
        let peer: SocketAddr = format!("{peer}:40000").parse().unwrap();
        footfall::http::router(self.app.state.clone())
            .layer(axum::extract::connect_info::MockConnectInfo(peer))
            .oneshot(request)
            .await
            .unwrap()
    }

    /// POSTs an event body with a user-agent.
    pub async fn post_event(
        &self,
        peer: &str,
        ua: &str,
        body: &str,
    ) -> axum::http::Response<axum::body::Body> {
        let req = axum::http::Request::post("/api/event")
            .header("content-type", "text/plain")
            .header("user-agent", ua)
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        self.send(peer, req).await
    }
}

/// A free loopback port (released before it is returned).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `footfall` binary of this build.
pub fn footfall_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("footfall");
    assert!(
        bin.is_file(),
        "{} missing: run `cargo build --bin footfall` first",
        bin.display()
    );
    bin
}

/// The planner's policy in tests that ask the Stats API: now, 30 days of raw events, a
/// two-minute deadline, never sampled.
pub fn policy() -> footfall::query::run::Policy {
    footfall::query::run::Policy {
        now: chrono::Utc::now(),
        raw_retention_days: 30,
        deadline: footfall::store::Deadline::after(Duration::from_secs(120)),
        sample_threshold: 0,
    }
}

/// The number next to `word` in an import's summary line (`imported 12`, `asset 3`, `read
/// 40 lines`); 0 when the summary does not name it.
pub fn summary_figure(summary: &str, word: &str) -> u64 {
    summary
        .split([',', ':', ';', '(', ')'])
        .find_map(|part| {
            let part = part.trim();
            part.strip_prefix(word)
                .or_else(|| part.strip_suffix(word).map(|p| p.trim()))
                .and_then(|rest| rest.trim().split(' ').next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `footfall ARGS` with exactly `env` (nothing else of the test's environment), as a
/// user would at a shell: whether it succeeded, its stdout and its stderr.
pub fn footfall_command(env: &[(String, String)], args: &[&str]) -> (bool, String, String) {
    let out = Command::new(footfall_bin())
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `footfall` running as a child process, its stderr in a log file.
pub struct Process {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Process {
    /// Runs `footfall serve` with `env` (plus a listen address) and waits for `/healthz`.
    pub async fn serve(env: &[(String, String)], log: PathBuf) -> Process {
        let port = free_port();
        let mut cmd = Command::new(footfall_bin());
        cmd.arg("serve")
            .env_clear()
            .env("FOOTFALL_LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting footfall");
        let p = Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let http = reqwest::Client::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(r) = http.get(format!("{}/healthz", p.base)).send().await
                && r.status().is_success()
            {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "footfall did not start: {}",
            std::fs::read_to_string(&p.log).unwrap_or_default()
        );
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for exit and returns the exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ClickHouse server of a test's own, which it may stop and start again.
pub struct OwnClickHouse {
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl OwnClickHouse {
    pub fn start() -> OwnClickHouse {
        let dir = tempfile::tempdir().unwrap();
        let url = Self::run_script("start", dir.path());
        OwnClickHouse { dir, url }
    }

    fn run_script(action: &str, dir: &Path) -> String {
        let out = Command::new(workspace_root().join("scripts/clickhouse-test-server.sh"))
            .arg(action)
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "clickhouse {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .rsplit('=')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    pub fn stop(&self) {
        Self::run_script("stop", self.dir.path());
    }

    pub fn restart(&self) {
        Self::run_script("start", self.dir.path());
    }
}

impl Drop for OwnClickHouse {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A ClickHouse cluster of a test's own (ZooKeeper and 2 shards × 2 replicas), whose nodes it
/// may stop and start: `scripts/clickhouse-test-cluster.sh`.
pub struct OwnCluster {
    pub dir: tempfile::TempDir,
    /// The four nodes' HTTP URLs; nodes 1 and 2 are shard 1, nodes 3 and 4 shard 2.
    pub urls: Vec<String>,
}

impl OwnCluster {
    pub fn start() -> OwnCluster {
        let dir = tempfile::tempdir().unwrap();
        let out = Self::script(dir.path(), &["start"]);
        let urls = out
            .trim()
            .rsplit('=')
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::to_string)
            .collect::<Vec<_>>();
        assert_eq!(urls.len(), 4, "{out}");
        OwnCluster { dir, urls }
    }

    fn script(dir: &Path, args: &[&str]) -> String {
        let out = Command::new(workspace_root().join("scripts/clickhouse-test-cluster.sh"))
            .arg(args[0])
            .arg(dir)
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cluster {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops node `n` (1-4).
    pub fn stop_node(&self, n: usize) {
        Self::script(self.dir.path(), &["stop-node", &n.to_string()]);
    }

    pub fn start_node(&self, n: usize) {
        Self::script(self.dir.path(), &["start-node", &n.to_string()]);
    }

    /// Restarts node `n` without its `shard` and `replica` macros (before any replicated table
    /// exists: a node holding one does not start without them).
    pub fn drop_macros(&self, n: usize) {
        Self::script(self.dir.path(), &["drop-macros", &n.to_string()]);
    }

    /// The last lines of every node's server log, for a failure message.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for n in 1..=4 {
            for file in ["server.log", "error.log"] {
                let path = self.dir.path().join(format!("node{n}/log/{file}"));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                out.push_str(&format!("--- node {n} {file}\n{tail}\n"));
            }
        }
        out
    }

    /// Restarts node `n` with its macros again.
    pub fn restore_macros(&self, n: usize) {
        Self::script(self.dir.path(), &["restore-macros", &n.to_string()]);
    }

    pub fn stop_zookeeper(&self) {
        Self::script(self.dir.path(), &["stop-zookeeper"]);
    }

    /// The node URLs in the order given (1-based), comma-separated, as a collector lists them.
    pub fn url_list(&self, order: &[usize]) -> String {
        order
            .iter()
            .map(|n| self.urls[n - 1].as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        Self::script(self.dir.path(), &["stop"]);
    }
}
