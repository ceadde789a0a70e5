//! Never lose an event: the `footfall` binary under steady load while its store goes away, while
//! it is killed, while its spool fills up, and after its spool is damaged. Every request sends a
//! unique path, so what was acknowledged can be compared with what was stored, row by row.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use footfall_tests::{Backend, CHROME_UA, OwnClickHouse, Process, TestStore, both_stores};

both_stores!(acknowledged_events_survive_sigkill_under_load);

/// What a load run saw: paths answered 202, and how many requests got each other status.
#[derive(Default)]
struct Outcome {
    acked: BTreeSet<String>,
    refused_503: usize,
    retry_after_seen: bool,
    other: usize,
}

/// Sends pageviews with unique paths from `senders` concurrent clients until `stop` is set,
/// each pausing `pause` between requests; `props` pads each event (to fill a spool quickly).
fn load(
    base: &str,
    senders: usize,
    pause: Duration,
    props: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Arc<Mutex<Outcome>>, Vec<tokio::task::JoinHandle<()>>) {
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let tasks = (0..senders)
        .map(|s| {
            let (http, base, outcome, stop) =
                (http.clone(), base.to_string(), outcome.clone(), stop.clone());
            tokio::spawn(async move {
                let padding = "x".repeat(props);
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let path = format!("/s{s}/{i}");
                    i += 1;
                    let body = format!(
                        r#"{{"n":"pageview","u":"https://example.com{path}","d":"example.com","p":{{"pad":"{padding}"}}}}"#
                    );
                    let r = http
                        .post(format!("{base}/api/event"))
                        .header("user-agent", CHROME_UA)
                        .header("x-forwarded-for", format!("2.2.{s}.{}", i % 250))
                        .header("content-type", "text/plain")
                        .body(body)
                        .send()
                        .await;
                    {
                        let mut o = outcome.lock().unwrap();
                        match r {
                            Ok(r) if r.status() == 202 => {
                                o.acked.insert(path);
                            }
                            Ok(r) if r.status() == 503 => {
                                o.refused_503 += 1;
                                o.retry_after_seen |= r.headers().contains_key("retry-after");
                            }
                            _ => o.other += 1,
                        }
                    }
                    tokio::time::sleep(pause).await;
                }
            })
        })
        .collect();
    (outcome, tasks)
}

async fn stop_load(stop: &std::sync::atomic::AtomicBool, tasks: Vec<tokio::task::JoinHandle<()>>) {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
}

fn env_with(base: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = base;
    env.push(("FOOTFALL_TRUSTED_PROXIES".into(), "127.0.0.1/32".into()));
    env.push(("FOOTFALL_FLUSH_INTERVAL_MS".into(), "100".into()));
    // The load comes from few addresses; the per-IP limit is not what these tests are about.
    env.push(("FOOTFALL_RATE_LIMIT_PER_IP".into(), "0".into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn add_site(env: &[(String, String)]) {
    let out = std::process::Command::new(footfall_tests::footfall_bin())
        .args(["site", "add", "example.com"])
        .env_clear()
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the store holds `want` events (or 90 s pass), then returns their paths.
async fn stored_paths(t: &TestStore, want: usize) -> Vec<String> {
    let events = t.wait_for_events(want, Duration::from_secs(90)).await;
    // A moment more, to see any extra (duplicate) row arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = if events.len() >= want {
        t.events().await
    } else {
        events
    };
    events.into_iter().map(|e| e.pathname).collect()
}

/// Every acknowledged path is stored exactly once.
fn assert_each_acked_once(acked: &BTreeSet<String>, stored: &[String]) {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let duplicates: Vec<&String> = stored.iter().filter(|p| !seen.insert(p.as_str())).collect();
    assert!(
        duplicates.is_empty(),
        "stored twice: {:?}",
        &duplicates[..duplicates.len().min(10)]
    );
    let missing: Vec<&String> = acked
        .iter()
        .filter(|p| !seen.contains(p.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events are missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

async fn metric(base: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_second_store_outage_under_steady_load_loses_nothing() {
    let server = OwnClickHouse::start();
    let t = TestStore::on_clickhouse(&server.url, "outage_60s").await;
    let env = env_with(t.env(), &[]);
    add_site(&env);
    let p = Process::serve(&env, t.config.data_dir.with_file_name("outage.log")).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (outcome, tasks) = load(&p.base, 4, Duration::from_millis(20), 0, stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = outcome.lock().unwrap().acked.len();
    eprintln!("{before} accepted before the outage; stopping ClickHouse for 60 s");
    server.stop();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let during = outcome.lock().unwrap().acked.len() - before;
    let spooled = metric(&p.base, "footfall_spool_bytes").await;
    eprintln!(
        "{during} accepted during the outage; spool holds {spooled} bytes; starting ClickHouse"
    );
    assert!(during > 1000, "ingest went on during the outage: {during}");
    assert!(spooled > 0);
    server.restart();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_load(&stop, tasks).await;
    let o = std::mem::take(&mut *outcome.lock().unwrap());
    eprintln!(
        "{} accepted, {} refused with 503, {} other",
        o.acked.len(),
        o.refused_503,
        o.other
    );
    assert_eq!(o.refused_503 + o.other, 0, "nothing was refused");
    let stored = stored_paths(&t, o.acked.len()).await;
    assert_eq!(stored.len(), o.acked.len());
    assert_each_acked_once(&o.acked, &stored);
    assert!(
        p.log_text().contains("store is back; writes resumed"),
        "{}",
        p.log_text()
    );
}

async fn acknowledged_events_survive_sigkill_under_load(b: Backend) {
    let t = TestStore::new(b, "sigkill_load").await;
    let env = env_with(t.env(), &[]);
    add_site(&env);
    let mut p = Process::serve(&env, t.config.data_dir.with_file_name("kill1.log")).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (outcome, tasks) = load(&p.base, 8, Duration::from_millis(1), 0, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Killed in the middle of the load: requests are in flight, batches half written.
    p.signal("KILL");
    p.wait(Duration::from_secs(10));
    stop_load(&stop, tasks).await;
    let acked = outcome.lock().unwrap().acked.clone();
    eprintln!("{} acknowledged before the kill", acked.len());
    assert!(acked.len() > 200, "the load ran: {}", acked.len());
    drop(p);
    // The restarted collector writes what the killed one had spooled.
    let p2 = Process::serve(&env, t.config.data_dir.with_file_name("kill2.log")).await;
    let stored = stored_paths(&t, acked.len()).await;
    assert_each_acked_once(&acked, &stored);
    // Events spooled whose answer the kill cut off may be stored too, but only once each.
    assert!(stored.len() >= acked.len());
    drop(p2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_answers_503_and_loses_nothing() {
    let server = OwnClickHouse::start();
    let t = TestStore::on_clickhouse(&server.url, "spool_full").await;
    let env = env_with(t.env(), &[("FOOTFALL_SPOOL_MAX_MB", "1")]);
    add_site(&env);
    let p = Process::serve(&env, t.config.data_dir.with_file_name("full.log")).await;
    server.stop();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // About 2 KB per event: the 1 MiB spool is full after about 500.
    let (outcome, tasks) = load(&p.base, 4, Duration::from_millis(2), 1900, stop.clone());
    let start = Instant::now();
    while outcome.lock().unwrap().refused_503 < 50 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the spool never filled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_load(&stop, tasks).await;
    let o = std::mem::take(&mut *outcome.lock().unwrap());
    eprintln!(
        "{} accepted, {} refused with 503",
        o.acked.len(),
        o.refused_503
    );
    assert!(o.retry_after_seen, "503 carries Retry-After");
    assert!(
        o.acked.len() > 100 && o.acked.len() < 1000,
        "{}",
        o.acked.len()
    );
    assert_eq!(o.other, 0);
    assert!(metric(&p.base, "footfall_spool_full_total").await > 0);
    assert!(metric(&p.base, "footfall_spool_bytes").await <= 1024 * 1024);
    server.restart();
    let stored = stored_paths(&t, o.acked.len()).await;
    assert_eq!(stored.len(), o.acked.len(), "refused events were not kept");
    assert_each_acked_once(&o.acked, &stored);
    // With room again, events are accepted again.
    let start = Instant::now();
    while metric(&p.base, "footfall_spool_bytes").await > 0 {
        assert!(start.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = reqwest::Client::new()
        .post(format!("{}/api/event", p.base))
        .header("user-agent", CHROME_UA)
        .header("content-type", "text/plain")
        .body(r#"{"n":"pageview","u":"https://example.com/again","d":"example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_spool_segment_is_replayed_up_to_the_damage() {
    let server = OwnClickHouse::start();
    let t = TestStore::on_clickhouse(&server.url, "spool_corrupt").await;
    let env = env_with(t.env(), &[("FOOTFALL_DRAIN_TIMEOUT_SECS", "1")]);
    add_site(&env);
    let mut p = Process::serve(&env, t.config.data_dir.with_file_name("corrupt1.log")).await;
    server.stop();
    let http = reqwest::Client::new();
    let mut acked = Vec::new();
    for i in 0..40 {
        let path = format!("/c/{i:02}");
        let r = http
            .post(format!("{}/api/event", p.base))
            .header("user-agent", CHROME_UA)
            .header("x-forwarded-for", format!("2.2.3.{i}"))
            .header("content-type", "text/plain")
            .body(format!(
                r#"{{"n":"pageview","u":"https://example.com{path}","d":"example.com"}}"#
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        acked.push(path);
    }
    // Stopped while the store is down: the events stay in the spool.
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(30)), Some(0), "{}", p.log_text());
    assert!(
        p.log_text().contains("stay in the spool"),
        "{}",
        p.log_text()
    );
    let spool = t.config.data_dir.join("spool");
    let mut segments: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    assert_eq!(segments.len(), 1, "{segments:?}");
    // Flip a byte in the middle of the segment: the records before it are intact.
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&segments[0], &bytes).unwrap();

    server.restart();
    let p2 = Process::serve(&env, t.config.data_dir.with_file_name("corrupt2.log")).await;
    let start = Instant::now();
    while metric(&p2.base, "footfall_spool_bytes").await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            p2.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stored: Vec<String> = t.events().await.into_iter().map(|e| e.pathname).collect();
    stored.sort();
    eprintln!("{} of 40 replayed", stored.len());
    // Each request was its own record (they came one at a time): the ones before the damage
    // are stored, in order, once each; the damaged one and those after it are reported.
    assert!(stored.len() >= 10 && stored.len() < 40, "{}", stored.len());
    assert_eq!(stored, acked[..stored.len()]);
    assert_eq!(metric(&p2.base, "footfall_spool_corrupt_total").await, 1);
    let log = p2.log_text();
    assert!(log.contains("spool segment damaged"), "{log}");
    let aside: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".corrupt"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged tail is kept for inspection");
}
