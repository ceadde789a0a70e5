//! Moving an older Footfall's events out of `footfall.db` into the DuckDB events file, as a
//! user upgrading meets it: `footfall migrate` killed in the middle of the move, then run
//! again, and `footfall serve` while purges are asked for from the command line.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use footfall::store::duckdb::DuckDbStore;
use footfall::store::sqlite::SqliteStore;
use footfall::store::{EventRow, EventStore, EventWriter, MetaStore, Store};
use footfall_tests::{Process, footfall_bin};

const DAYS: u32 = 40;
const PER_DAY: u32 = 40_000;

fn event(i: u32, start: u32) -> EventRow {
    let day = i / PER_DAY;
    EventRow {
        site_id: 1,
        timestamp: start + day * 86_400 + (i % PER_DAY) * 2,
        name: if i.is_multiple_of(5) {
            "Signup"
        } else {
            "pageview"
        }
        .into(),
        hostname: "example.com".into(),
        pathname: format!("/p/{i}"),
        visitor_id: u64::from(i) * 7919,
        session_id: u64::from(i / 3) | (1 << 63),
        referrer_source: ["", "Google", "GitHub"][(i % 3) as usize].into(),
        browser: "Firefox".into(),
        props_keys: vec!["n".into()],
        props_values: vec![i.to_string()],
        batch_id: u64::from(i / 1000) + 1,
        scroll_depth: 255,
        ..EventRow::default()
    }
}

fn env(dir: &std::path::Path) -> Vec<(String, String)> {
    vec![("FOOTFALL_DATA_DIR".to_string(), dir.display().to_string())]
}

fn sqlite_count(dir: &std::path::Path) -> i64 {
    let db = rusqlite::Connection::open(dir.join("footfall.db")).unwrap();
    db.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap()
}

/// Per path, how many events the store holds (each path is sent once).
async fn paths(store: &dyn Store) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in store.read_events(1, 0, u32::MAX, u32::MAX).await.unwrap() {
        *out.entry(e.pathname).or_default() += 1;
    }
    out
}

/// A killed move loses nothing and copies nothing twice; the second run finishes it, and
/// every event is then in the events file exactly once, with nothing left in footfall.db.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_killed_in_the_middle_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = 1_790_000_000 - 1_790_000_000 % 86_400;
    let total = DAYS * PER_DAY;
    {
        let old = SqliteStore::open(&data).unwrap();
        old.migrate().await.unwrap();
        old.meta().add_site("example.com", "UTC").await.unwrap();
        let mut batch = Vec::with_capacity(50_000);
        for i in 0..total {
            batch.push(event(i, start));
            if batch.len() == 50_000 {
                old.insert_events(Arc::from(std::mem::take(&mut batch)))
                    .await
                    .unwrap();
            }
        }
        old.insert_events(Arc::from(batch)).await.unwrap();
    }
    assert_eq!(sqlite_count(&data), i64::from(total));

    // First run: killed once a few days have moved.
    let log = dir.path().join("migrate1.log");
    let mut child = Command::new(footfall_bin())
        .arg("migrate")
        .env_clear()
        .envs(env(&data))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let began = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("days=\"3/") || text.contains("days=3/") {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "no progress: {text}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished early: {text}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = sqlite_count(&data);
    assert!(
        left > 0 && left < i64::from(total),
        "the kill came in the middle of the move: {left} of {total} events left in footfall.db"
    );

    // Second run: finishes the move.
    let out = Command::new(footfall_bin())
        .arg("migrate")
        .env_clear()
        .envs(env(&data))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("moved {left} events")),
        "{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(sqlite_count(&data), 0);

    let store = DuckDbStore::open(&data).unwrap();
    let seen = paths(&store).await;
    assert_eq!(seen.len(), total as usize, "every event moved");
    assert!(
        seen.values().all(|n| *n == 1),
        "none twice: {:?}",
        seen.iter().find(|(_, n)| **n != 1)
    );
    let sample = store
        .read_events(1, start + 5 * 86_400, start + 5 * 86_400 + 10, 100)
        .await
        .unwrap();
    let want: Vec<EventRow> = (5 * PER_DAY..5 * PER_DAY + 5)
        .map(|i| event(i, start))
        .collect();
    assert_eq!(sample, want, "rows move unchanged");
    // The sites stay where they were.
    assert_eq!(store.meta().sites().await.unwrap().len(), 1);
}

/// While `footfall serve` holds the events file, `footfall purge` and `footfall site add`
/// still work: the purge through the running collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_work_while_serve_holds_the_events_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut env = env(&data);
    env.push(("FOOTFALL_RAW_RETENTION_DAYS".into(), "2".into()));
    let now = chrono::Utc::now().timestamp() as u32;
    {
        let store = DuckDbStore::open(&data).unwrap();
        store.migrate().await.unwrap();
        store.meta().add_site("example.com", "UTC").await.unwrap();
        let old: Vec<EventRow> = (0..100)
            .map(|i| EventRow {
                timestamp: now - 10 * 86_400 + i,
                ..event(i, 0)
            })
            .chain((0..50).map(|i| EventRow {
                timestamp: now - 60 + i,
                ..event(1000 + i, 0)
            }))
            .collect();
        store.insert_events(Arc::from(old)).await.unwrap();
    }
    let p = Process::serve(&env, dir.path().join("serve.log")).await;
    let run = |args: &[&str]| {
        let (ok, stdout, stderr) = footfall_tests::footfall_command(&env, args);
        (ok, stdout + stderr.as_str())
    };
    let (ok, out) = run(&["purge"]);
    assert!(ok, "{out}");
    assert!(out.contains("through the running footfall"), "{out}");
    let (ok, out) = run(&["site", "add", "second.example", "--timezone", "UTC"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["migrate"]);
    assert!(ok, "{out}");
    drop(p);
    let store = DuckDbStore::open(&data).unwrap();
    let left = store.read_events(1, 0, u32::MAX, 1000).await.unwrap();
    assert_eq!(
        left.len(),
        50,
        "the 10-day-old events are purged, today's kept"
    );
    assert_eq!(store.meta().sites().await.unwrap().len(), 2);
}
