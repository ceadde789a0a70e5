//! The `footfall` binary as a user runs it: logs, signals, and a ClickHouse that goes away.

use std::time::Duration;

use footfall::config::ClickHouseConfig;
use footfall_tests::{
    CHROME_UA, OwnClickHouse, Process, clickhouse_url, count, dump_tables, fresh_database,
    wait_for_count,
};

const PROBE_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 PrivacyProbe/7.3";

fn env_for(ch: &ClickHouseConfig, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let geoip = footfall_tests::geoip_city_db().display().to_string();
    let base = [
        ("FOOTFALL_CLICKHOUSE_URL", ch.url.as_str()),
        ("FOOTFALL_CLICKHOUSE_DATABASE", ch.database.as_str()),
        ("FOOTFALL_GEOIP_DB", geoip.as_str()),
        ("FOOTFALL_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("FOOTFALL_FLUSH_INTERVAL_MS", "50"),
    ];
    base.iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn add_site(ch: &ClickHouseConfig, domain: &str) {
    let out = std::process::Command::new(footfall_tests::footfall_bin())
        .args(["site", "add", domain, "--timezone", "Europe/Copenhagen"])
        .env_clear()
        .env("FOOTFALL_CLICKHOUSE_URL", &ch.url)
        .env("FOOTFALL_CLICKHOUSE_DATABASE", &ch.database)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(domain));
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    ip: &str,
    ua: &str,
    path: &str,
) -> reqwest::StatusCode {
    http.post(format!("{base}/api/event"))
        .header("user-agent", ua)
        .header("x-forwarded-for", ip)
        .header("content-type", "text/plain")
        .body(format!(r#"{{"n":"pageview","u":"https://example.com{path}","d":"example.com","r":"https://news.ycombinator.com/item?id=1"}}"#))
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(reqwest::StatusCode::BAD_GATEWAY)
}

#[tokio::test]
async fn no_full_ip_raw_user_agent_or_salt_is_stored_or_logged() {
    let ch = fresh_database(&clickhouse_url(), "privacy").await;
    add_site(&ch, "example.com").await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut p = Process::serve(
        &env_for(&ch, &[("FOOTFALL_LOG", "trace")]),
        log.path().to_path_buf(),
    )
    .await;
    let http = reqwest::Client::new();
    let ips = ["2.2.3.77", "175.16.199.201", "2001:480:10::abcd:1234"];
    for (i, ip) in ips.iter().enumerate() {
        assert_eq!(
            post(&http, &p.base, ip, PROBE_UA, &format!("/p{i}")).await,
            202
        );
    }
    // Bad and dropped requests must not leak either.
    post(
        &http,
        &p.base,
        "2.2.3.78",
        "curl/8.0 PrivacyProbe/7.3",
        "/bot",
    )
    .await;
    http.post(format!("{}/api/event", p.base))
        .header("user-agent", PROBE_UA)
        .header("x-forwarded-for", "2.2.3.79")
        .body("{broken")
        .send()
        .await
        .unwrap();
    assert_eq!(
        wait_for_count(&ch, "1", 3, Duration::from_secs(10)).await,
        3
    );
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(30)), Some(0));

    let salts: Vec<String> = footfall_tests::client(&ch)
        .query("SELECT salt FROM salts")
        .fetch_all()
        .await
        .unwrap();
    assert!(!salts.is_empty());
    let logs = p.log_text();
    assert!(
        logs.contains("footfall is listening"),
        "the log was captured: {logs}"
    );
    let mut forbidden: Vec<String> = ips.iter().map(|s| s.to_string()).collect();
    forbidden.extend([
        "2.2.3.78".into(),
        "2.2.3.79".into(),
        "2001:480:10::abcd".into(),
        "PrivacyProbe".into(),
        PROBE_UA.into(),
    ]);
    for needle in &forbidden {
        assert!(!logs.contains(needle.as_str()), "log contains {needle}");
    }
    for salt in &salts {
        assert!(!logs.contains(salt.as_str()), "log contains a salt");
    }
    for (table, text) in dump_tables(&ch).await {
        for needle in &forbidden {
            assert!(
                !text.contains(needle.as_str()),
                "table {table} contains {needle}"
            );
        }
        if table != "salts" {
            for salt in &salts {
                assert!(
                    !text.contains(salt.as_str()),
                    "table {table} contains a salt"
                );
            }
        }
    }
    // Truncated addresses were still good enough for the city.
    assert_eq!(count(&ch, "city = 'Boxford'").await, 1);
    assert_eq!(count(&ch, "city = 'Changchun'").await, 1);
    assert_eq!(count(&ch, "city = 'San Diego'").await, 1);
    if let Ok(dir) = std::env::var("FOOTFALL_TEST_CLICKHOUSE_DIR") {
        let db_dir = format!("{dir}/data/{}", ch.database);
        for needle in ["PrivacyProbe", "2.2.3.77", "175.16.199.201"] {
            let found = std::process::Command::new("grep")
                .args(["-rl", needle, &db_dir])
                .output()
                .unwrap();
            assert!(
                found.stdout.is_empty(),
                "{needle} on disk: {}",
                String::from_utf8_lossy(&found.stdout)
            );
        }
    }
}

#[tokio::test]
async fn sigterm_drains_every_queued_event() {
    let ch = fresh_database(&clickhouse_url(), "sigterm").await;
    add_site(&ch, "example.com").await;
    let log = tempfile::NamedTempFile::new().unwrap();
    // A long interval and a large batch: nothing is written until shutdown.
    let env = env_for(
        &ch,
        &[
            ("FOOTFALL_FLUSH_INTERVAL_MS", "600000"),
            ("FOOTFALL_BATCH_SIZE", "100000"),
        ],
    );
    let mut p = Process::serve(&env, log.path().to_path_buf()).await;
    let http = reqwest::Client::new();
    for i in 0..300 {
        let ip = format!("2.2.3.{}", i % 250);
        assert_eq!(
            post(&http, &p.base, &ip, CHROME_UA, &format!("/{i}")).await,
            202
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&ch, "1").await, 0, "still queued before the signal");
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(30)), Some(0), "{}", p.log_text());
    assert_eq!(count(&ch, "1").await, 300);
}

#[tokio::test]
async fn events_survive_a_clickhouse_outage() {
    let server = OwnClickHouse::start();
    let ch = fresh_database(&server.url, "outage").await;
    add_site(&ch, "example.com").await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let p = Process::serve(&env_for(&ch, &[]), log.path().to_path_buf()).await;
    let http = reqwest::Client::new();
    let mut accepted = 0u64;
    let mut send = async |from: usize, to: usize| {
        for i in from..to {
            if post(
                &http,
                &p.base,
                &format!("2.2.3.{}", i % 250),
                CHROME_UA,
                &format!("/{i}"),
            )
            .await
                == 202
            {
                accepted += 1;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    send(0, 100).await;
    server.stop();
    send(100, 300).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    send(300, 400).await;
    server.restart();
    send(400, 500).await;
    assert_eq!(accepted, 500, "the queue had room for everything");
    assert_eq!(
        wait_for_count(&ch, "1", 500, Duration::from_secs(60)).await,
        500
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&ch, "1").await, 500, "every event exactly once");
    let logs = p.log_text();
    assert_eq!(
        logs.matches("store write failed").count(),
        1,
        "one error per outage: {logs}"
    );
    assert_eq!(logs.matches("store is back").count(), 1, "{logs}");
}
