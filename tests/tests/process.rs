//! The `footfall` binary as a user runs it: logs, signals, crashes, and a ClickHouse that
//! goes away. Each test but the outage one runs on both stores.

use std::time::Duration;

use footfall_tests::{Backend, CHROME_UA, OwnClickHouse, Process, TestStore, both_stores};

both_stores!(
    no_full_ip_raw_user_agent_or_salt_is_stored_or_logged,
    sigterm_drains_every_queued_event,
    an_acknowledged_batch_survives_sigkill,
    users_are_managed_from_the_cli,
    the_data_directory_is_the_owners_alone,
);

const PROBE_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 PrivacyProbe/7.3";

fn env_for(t: &TestStore, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = t.env();
    env.push(("FOOTFALL_TRUSTED_PROXIES".into(), "127.0.0.1/32".into()));
    env.push(("FOOTFALL_FLUSH_INTERVAL_MS".into(), "50".into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// `footfall site add` through the CLI, as a user would.
fn add_site(env: &[(String, String)], domain: &str) {
    let out = std::process::Command::new(footfall_tests::footfall_bin())
        .args(["site", "add", domain, "--timezone", "Europe/Copenhagen"])
        .env_clear()
        .envs(env.iter().cloned())
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
        .body(format!(
            r#"{{"n":"pageview","u":"https://example.com{path}","d":"example.com","r":"https://news.ycombinator.com/item?id=1"}}"#
        ))
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(reqwest::StatusCode::BAD_GATEWAY)
}

async fn written(http: &reqwest::Client, base: &str) -> u64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("footfall_events_written_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn no_full_ip_raw_user_agent_or_salt_is_stored_or_logged(b: Backend) {
    let t = TestStore::new(b, "privacy").await;
    add_site(&t.env(), "example.com");
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut p = Process::serve(
        &env_for(&t, &[("FOOTFALL_LOG", "trace")]),
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
    assert_eq!(t.wait_for_events(3, Duration::from_secs(10)).await.len(), 3);
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(30)), Some(0));

    let salts: Vec<String> = t
        .store
        .meta()
        .salts()
        .await
        .unwrap()
        .iter()
        .map(|(_, s)| s.0.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    assert!(!salts.is_empty());
    let logs = p.log_text();
    assert!(
        logs.contains("footfall is listening"),
        "the log was captured: {logs}"
    );
    let mut forbidden: Vec<String> = ips.iter().map(|s| s.to_string()).collect();
    forbidden.extend(
        [
            "2.2.3.78",
            "2.2.3.79",
            "2001:480:10::abcd",
            "PrivacyProbe",
            PROBE_UA,
        ]
        .map(String::from),
    );
    for needle in &forbidden {
        assert!(!logs.contains(needle.as_str()), "log contains {needle}");
    }
    for salt in &salts {
        assert!(!logs.contains(salt.as_str()), "log contains a salt");
    }
    for (table, text) in t.dump_tables().await {
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
    for needle in ["PrivacyProbe", "2.2.3.77", "175.16.199.201"] {
        let found = t.files_containing(needle.as_bytes());
        assert!(found.is_empty(), "{needle} on disk: {found:?}");
    }
    // Truncated addresses were still good enough for the city.
    let mut cities: Vec<String> = t.events().await.into_iter().map(|e| e.city).collect();
    cities.sort();
    assert_eq!(cities, ["Boxford", "Changchun", "San Diego"]);
}

async fn sigterm_drains_every_queued_event(b: Backend) {
    let t = TestStore::new(b, "sigterm").await;
    add_site(&t.env(), "example.com");
    let log = tempfile::NamedTempFile::new().unwrap();
    // A long interval and a large batch: nothing is written until shutdown.
    let env = env_for(
        &t,
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
    assert!(
        t.events().await.is_empty(),
        "still queued before the signal"
    );
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(30)), Some(0), "{}", p.log_text());
    assert_eq!(t.events().await.len(), 300);
}

async fn an_acknowledged_batch_survives_sigkill(b: Backend) {
    let t = TestStore::new(b, "sigkill").await;
    add_site(&t.env(), "example.com");
    let log = tempfile::NamedTempFile::new().unwrap();
    let env = env_for(&t, &[("FOOTFALL_FLUSH_INTERVAL_MS", "20")]);
    let mut p = Process::serve(&env, log.path().to_path_buf()).await;
    let http = reqwest::Client::new();
    for i in 0..200 {
        post(
            &http,
            &p.base,
            &format!("2.2.3.{}", i % 250),
            CHROME_UA,
            &format!("/{i}"),
        )
        .await;
    }
    // Wait until the store has acknowledged all of them, then kill without warning.
    let start = std::time::Instant::now();
    while written(&http, &p.base).await < 200 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(written(&http, &p.base).await, 200);
    p.signal("KILL");
    p.wait(Duration::from_secs(10));
    drop(p);
    // A new process on the same store finds every acknowledged event.
    let log2 = tempfile::NamedTempFile::new().unwrap();
    let p2 = Process::serve(&env, log2.path().to_path_buf()).await;
    assert_eq!(
        post(&http, &p2.base, "2.2.3.1", CHROME_UA, "/after").await,
        202
    );
    let events = t.wait_for_events(201, Duration::from_secs(10)).await;
    assert_eq!(events.len(), 201);
    assert_eq!(
        events.iter().filter(|e| e.pathname != "/after").count(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_outage_loses_nothing() {
    let server = OwnClickHouse::start();
    let ch = footfall_tests::fresh_database(&server.url, "outage").await;
    let data = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = [
        ("FOOTFALL_CLICKHOUSE_URL", ch.url.as_str()),
        ("FOOTFALL_CLICKHOUSE_DATABASE", ch.database.as_str()),
        ("FOOTFALL_DATA_DIR", data.path().to_str().unwrap()),
        ("FOOTFALL_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("FOOTFALL_FLUSH_INTERVAL_MS", "50"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    add_site(&env, "example.com");
    let log = tempfile::NamedTempFile::new().unwrap();
    let p = Process::serve(&env, log.path().to_path_buf()).await;
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
    let client = footfall_tests::client(&ch);
    let count = async || {
        client
            .query("SELECT count() FROM events")
            .fetch_one::<u64>()
            .await
            .unwrap_or(0)
    };
    let start = std::time::Instant::now();
    while count().await < 500 && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count().await, 500, "every event exactly once");
    let logs = p.log_text();
    assert_eq!(
        logs.matches("store write failed").count(),
        1,
        "one error per outage: {logs}"
    );
    assert_eq!(logs.matches("store is back").count(), 1, "{logs}");
}

/// Runs `footfall ARGS` with `stdin` piped in; returns (success, stdout, stderr).
fn footfall_with_stdin(
    env: &[(String, String)],
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(footfall_tests::footfall_bin())
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn users_are_managed_from_the_cli(b: Backend) {
    let t = TestStore::new(b, "cli_users").await;
    let env = env_for(&t, &[]);
    add_site(&env, "shop.test");
    let password = "first password 1";
    let (ok, out, err) = footfall_with_stdin(
        &env,
        &["user", "add", "Boss@Shop.test", "--admin"],
        &format!("{password}\n"),
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "added boss@shop.test (admin)");
    let (ok, _, err) = footfall_with_stdin(
        &env,
        &["user", "add", "eve@shop.test", "--site", "shop.test"],
        "viewer password\n",
    );
    assert!(ok, "{err}");
    for (args, stdin, why) in [
        (
            vec!["user", "add", "boss@shop.test"],
            "another password\n",
            "already exists",
        ),
        (
            vec!["user", "add", "short@shop.test"],
            "short\n",
            "at least 10 characters",
        ),
        (
            vec!["user", "add", "x@shop.test", "--site", "nope.test"],
            "long enough pw\n",
            "no site nope.test",
        ),
        (
            vec!["user", "add", "not an email"],
            "long enough pw\n",
            "not an e-mail address",
        ),
        (
            vec!["user", "passwd", "ghost@shop.test"],
            "long enough pw\n",
            "no user ghost@shop.test",
        ),
    ] {
        let (ok, _, err) = footfall_with_stdin(&env, &args, stdin);
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let (ok, out, _) = footfall_with_stdin(&env, &["user", "list"], "");
    assert!(ok);
    assert_eq!(
        out,
        "boss@shop.test\tadmin\t\neve@shop.test\tviewer\tshop.test\n"
    );

    // The admin logs in to the running collector with the password given on stdin.
    let footfall = Process::serve(&env, t.config.data_dir.with_file_name("cli_users.log")).await;
    let http = reqwest::Client::new();
    let login = |pw: &'static str| {
        http.post(format!("{}/api/auth/login", footfall.base))
            .header("content-type", "application/json")
            .body(serde_json::json!({"email": "boss@shop.test", "password": pw}).to_string())
            .send()
    };
    assert_eq!(login("first password 1").await.unwrap().status(), 200);
    let (ok, out, err) = footfall_with_stdin(
        &env,
        &["user", "passwd", "boss@shop.test"],
        "second password 2\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("sessions are ended"), "{out}");
    assert_eq!(login("first password 1").await.unwrap().status(), 401);
    assert_eq!(login("second password 2").await.unwrap().status(), 200);
    let (ok, _, err) = footfall_with_stdin(&env, &["user", "delete", "eve@shop.test"], "");
    assert!(ok, "{err}");
    let (_, out, _) = footfall_with_stdin(&env, &["user", "list"], "");
    assert!(!out.contains("eve@"), "{out}");
    // No password is stored or logged as given.
    for (table, text) in t.dump_tables().await {
        assert!(
            !text.contains(password) && !text.contains("second password"),
            "{table}"
        );
    }
    assert!(!footfall.log_text().contains("password 2"));
}

/// The data directory, the spool and the database files are created `0700`/`0600` whatever
/// the umask (the test's is the usual 022), and an existing directory is tightened.
async fn the_data_directory_is_the_owners_alone(b: Backend) {
    use std::os::unix::fs::PermissionsExt as _;
    let t = TestStore::new(b, "private_files").await;
    add_site(&t.env(), "example.com");
    let data_dir = t.config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let p = Process::serve(&env_for(&t, &[]), log.path().to_path_buf()).await;
    let http = reqwest::Client::new();
    assert_eq!(post(&http, &p.base, "2.2.3.77", CHROME_UA, "/x").await, 202);
    assert_eq!(t.wait_for_events(1, Duration::from_secs(10)).await.len(), 1);
    let mut seen = 0;
    let mut stack = vec![data_dir.clone()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
            seen += 1;
        }
    }
    if matches!(b, Backend::Sqlite | Backend::DuckDb) {
        assert!(seen >= 3, "footfall.db, its WAL and shared memory at least");
    }
    drop(p);
}

/// Opens a connection that sends `prefix` at once, then one byte of `trickle` a second; returns
/// how long the server kept it open (until a read saw the end or a write failed), at most
/// `limit`.
async fn trickle(
    base: &str,
    prefix: &'static [u8],
    trickle: &'static [u8],
    limit: Duration,
) -> Option<Duration> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = base.trim_start_matches("http://").to_string();
    let started = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.ok()?;
    stream.write_all(prefix).await.ok()?;
    let mut bytes = trickle.iter().cycle();
    let mut buf = [0u8; 1024];
    while started.elapsed() < limit {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                // An answer (408 or 400) is fine; the close that follows is what counts.
                Ok(n) if n > 0 => continue,
                _ => return Some(started.elapsed()),
            },
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                let byte = [*bytes.next().unwrap_or(&b'x')];
                if stream.write_all(&byte).await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
    None
}

/// 5,000 connections that send a request one byte a second cannot hold the collector: every
/// other client still gets 202 meanwhile, and each slow connection is closed once its request
/// head is late (`HEADER_TIMEOUT`), as are a kept-alive connection left idle and a body sent
/// one byte a second (`BODY_TIMEOUT`). Prints the other clients' latencies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_and_others_still_served() {
    use footfall::http::server::{BODY_TIMEOUT, HEADER_TIMEOUT};
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let t = TestStore::new(Backend::Sqlite, "slow_clients").await;
    add_site(&t.env(), "example.com");
    let log = tempfile::NamedTempFile::new().unwrap();
    let p = Process::serve(&env_for(&t, &[]), log.path().to_path_buf()).await;
    let limit = HEADER_TIMEOUT * 4;
    let spawn = |prefix: &'static [u8], bytes: &'static [u8]| {
        let base = p.base.clone();
        tokio::spawn(async move { trickle(&base, prefix, bytes, limit).await })
    };
    let slow: Vec<_> = (0..5000)
        .map(|_| {
            spawn(
                b"P",
                b"OST /api/event HTTP/1.1\r\nHost: x\r\nX-Slow: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
            )
        })
        .collect();
    let idle = spawn(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"");
    let body = spawn(
        b"POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 200\r\n\r\n{",
        b"\"",
    );
    // Let the slow connections open, then serve others while they trickle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let http = reqwest::Client::new();
    let mut latencies = Vec::new();
    for i in 0..200 {
        let started = std::time::Instant::now();
        let status = post(
            &http,
            &p.base,
            &format!("2.2.4.{}", i % 200 + 1),
            CHROME_UA,
            "/during",
        )
        .await;
        latencies.push(started.elapsed());
        assert_eq!(status, 202, "request {i} while 5,000 connections trickle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    let mut closed_after = Vec::new();
    for s in slow {
        closed_after.push(
            s.await
                .unwrap()
                .expect("a slow connection was never closed"),
        );
    }
    closed_after.sort();
    let idle = idle
        .await
        .unwrap()
        .expect("an idle kept-alive connection was never closed");
    let body = body
        .await
        .unwrap()
        .expect("a trickling body was never cut off");
    eprintln!(
        "slow clients: 200 events during 5,000 trickling connections, p50 {:?}, p99 {:?}, max {:?}; trickling connections closed after {:?}..{:?} (header deadline {HEADER_TIMEOUT:?}); idle kept-alive closed after {idle:?}; trickling body cut after {body:?} (body deadline {BODY_TIMEOUT:?})",
        latencies[100],
        latencies[198],
        latencies[199],
        closed_after[0],
        closed_after[closed_after.len() - 1],
    );
    // The collector is still healthy afterwards.
    assert_eq!(
        post(&http, &p.base, "2.2.5.1", CHROME_UA, "/after").await,
        202
    );
}
