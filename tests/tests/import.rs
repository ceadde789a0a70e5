//! `footfall import access-log`, run as a user runs it, on every store.
//!
//! The test writes access logs in the layouts Apache and nginx write (combined, one file
//! gzip-compressed as logrotate leaves it), with the noise a real log has: assets, errors,
//! redirects, POSTs, crawlers, HTTP clients and malformed lines. It knows every visit it
//! wrote, so the expected figures come from the generated visits, not from Footfall:
//! pageviews, visitors (one per address and browser per UTC day), visits (pageviews of one
//! visitor less than 30 minutes apart), visits from Google, and the lines dropped by reason.
//! A day past raw retention must live on as rollups only. A second run imports nothing; a log
//! that has grown imports only its new lines. While `serve` runs, the import goes through it.
//! `--follow` reads a log as it is written, across a rename and a truncation, and goes on
//! where it stopped when started again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use footfall::query::model;
use footfall::query::run::run;
use footfall::store::Site;
use footfall_tests::{Backend, Process, TestStore};
use serde_json::{Value, json};

/// Real browsers' user-agents (none is a crawler).
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
];

/// Crawlers and HTTP clients, each a bot by Footfall's lists or by having no user-agent.
const BOTS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    "-",
];

const PAGES: &[&str] = &[
    "/",
    "/blog/",
    "/blog/first-post",
    "/pricing",
    "/docs/install",
];

/// A tiny deterministic generator (the test must not depend on a random seed's luck).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// One UTC day as generated: pageviews, visitors (address and browser), visits, visits from
/// Google.
type Day = (i64, BTreeSet<(String, String)>, i64, i64);

/// What the generated log holds, counted as it was written.
#[derive(Default)]
struct Expected {
    days: BTreeMap<NaiveDate, Day>,
    /// Lines by why they are not pageviews.
    dropped: BTreeMap<&'static str, u64>,
    lines: Vec<(DateTime<Utc>, String)>,
}

fn line(
    ip: &str,
    at: DateTime<Utc>,
    request: &str,
    status: u16,
    referrer: &str,
    ua: &str,
) -> String {
    format!(
        r#"{ip} - - [{}] "{request}" {status} 1234 "{referrer}" "{ua}""#,
        at.format("%d/%b/%Y:%H:%M:%S +0000")
    )
}

/// Visits on `day`: 40 visitors, each with 1 to 3 visits (an hour or more apart), each of 1
/// to 4 pageviews a few minutes apart, between 01:00 and 23:00 UTC; and the noise.
fn generate(day: NaiveDate, rng: &mut Lcg, e: &mut Expected) {
    let midnight = day.and_hms_opt(1, 0, 0).unwrap().and_utc();
    let entry = e.days.entry(day).or_default();
    for v in 0..40u64 {
        let ip = format!("198.51.{}.{}", 100 + v / 200, 1 + v % 200);
        let ua = BROWSERS[rng.next(BROWSERS.len() as u64) as usize];
        let mut at = midnight + Duration::minutes(rng.next(120) as i64);
        for _ in 0..1 + rng.next(3) {
            let google = rng.next(3) == 0;
            entry.2 += 1;
            entry.3 += i64::from(google);
            for p in 0..1 + rng.next(4) {
                let referrer = if p == 0 && google {
                    "https://www.google.com/"
                } else if p == 0 {
                    "-"
                } else {
                    "https://example.org/"
                };
                let page = PAGES[rng.next(PAGES.len() as u64) as usize];
                let status = if rng.next(5) == 0 { 304 } else { 200 };
                let request = format!("GET {page}?utm_campaign=x HTTP/1.1");
                e.lines
                    .push((at, line(&ip, at, &request, status, referrer, ua)));
                entry.0 += 1;
                entry.1.insert((ip.clone(), ua.to_string()));
                // What the page loads: never a pageview.
                let asset = line(
                    &ip,
                    at,
                    "GET /static/app.css HTTP/1.1",
                    200,
                    "https://example.org/",
                    ua,
                );
                e.lines.push((at, asset));
                *e.dropped.entry("asset").or_default() += 1;
                at += Duration::minutes(1 + rng.next(5) as i64);
            }
            at += Duration::minutes(60 + rng.next(120) as i64);
        }
        // A form post, a missing page and a redirect.
        e.lines
            .push((at, line(&ip, at, "POST /contact HTTP/1.1", 200, "-", ua)));
        *e.dropped.entry("not_get").or_default() += 1;
        e.lines
            .push((at, line(&ip, at, "GET /missing HTTP/1.1", 404, "-", ua)));
        e.lines
            .push((at, line(&ip, at, "GET /old-page HTTP/1.1", 301, "-", ua)));
        *e.dropped.entry("not_success").or_default() += 2;
    }
    for (i, bot) in BOTS.iter().enumerate() {
        for k in 0..5 {
            let at = midnight + Duration::minutes(30 * k + i as i64);
            let ip = format!("203.0.113.{}", 10 + i);
            e.lines
                .push((at, line(&ip, at, "GET /pricing HTTP/1.1", 200, "-", bot)));
            *e.dropped.entry("bot").or_default() += 1;
        }
    }
    let at = midnight + Duration::minutes(7);
    e.lines
        .push((at, "\\x16\\x03\\x01 garbage from a TLS client".to_string()));
    e.lines.push((
        at,
        format!(
            r#"198.51.100.1 - - [{}] "GET / HTTP/1.1" 200 1"#,
            at.format("%d/%b/%Y")
        ),
    ));
    *e.dropped.entry("malformed").or_default() += 2;
}

fn write_log(path: &Path, lines: &[(DateTime<Utc>, String)], gzip: bool) {
    write_log_as(path, lines, gzip, "combined");
}

/// A generated combined line in another layout (`nginx-json`, `caddy-json`), as those servers
/// write it; a line that is not one of the generator's requests (the malformed ones) as it is.
fn convert(line: &str, layout: &str) -> String {
    static REQUEST: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"^(\S+) - - \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d+) (\d+) "([^"]*)" "([^"]*)"$"#,
        )
        .unwrap()
    });
    let Some(c) = REQUEST.captures(line) else {
        return line.to_string();
    };
    let at = DateTime::parse_from_str(&c[2], "%d/%b/%Y:%H:%M:%S %z").unwrap();
    let (ip, method, uri, proto, status) = (&c[1], &c[3], &c[4], &c[5], &c[6]);
    let absent = |v: &str| {
        if v == "-" {
            String::new()
        } else {
            v.to_string()
        }
    };
    let (referrer, ua) = (absent(&c[8]), absent(&c[9]));
    match layout {
        "nginx-json" => json!({
            "time_iso8601": at.to_rfc3339(), "remote_addr": ip, "request_method": method,
            "request_uri": uri, "server_protocol": proto, "status": status,
            "body_bytes_sent": &c[7], "http_referer": referrer, "http_user_agent": ua,
            "host": "example.org",
        })
        .to_string(),
        "caddy-json" => {
            let mut headers = serde_json::Map::new();
            if !ua.is_empty() {
                headers.insert("User-Agent".into(), json!([ua]));
            }
            if !referrer.is_empty() {
                headers.insert("Referer".into(), json!([referrer]));
            }
            json!({
                "level": "info", "ts": at.timestamp() as f64 + 0.25,
                "logger": "http.log.access.log0", "msg": "handled request",
                "request": {"remote_ip": ip, "remote_port": "40000", "client_ip": ip,
                            "proto": proto, "method": method, "host": "example.org:443",
                            "uri": uri, "headers": headers},
                "bytes_read": 0, "duration": 0.002, "size": 1234,
                "status": status.parse::<u16>().unwrap(), "resp_headers": {},
            })
            .to_string()
        }
        "cloudfront" => {
            // Tab-separated, URL-encoded (a `%` in the request encoded again), UTC.
            let encode = |v: &str| -> String {
                if v.is_empty() {
                    return "-".into();
                }
                v.bytes()
                    .map(|b| match b {
                        b'%' => "%25".to_string(),
                        b' ' | b'"' | b'<' | b'>' | b'#' | b'\\' | b'\'' => format!("%{b:02X}"),
                        b if !(33..=126).contains(&b) => format!("%{b:02X}"),
                        b => (b as char).to_string(),
                    })
                    .collect()
            };
            let (stem, query) = uri.split_once('?').unwrap_or((uri, "-"));
            let utc = at.with_timezone(&Utc);
            [
                utc.format("%Y-%m-%d").to_string(),
                utc.format("%H:%M:%S").to_string(),
                "FRA56-P1".into(),
                c[7].to_string(),
                ip.to_string(),
                method.to_string(),
                "d111111abcdef8.cloudfront.net".into(),
                encode(stem),
                status.to_string(),
                encode(&referrer),
                encode(&ua),
                query.to_string(),
                "-".into(),
                "Miss".into(),
                "aBcD==".into(),
                "example.org".into(),
                "https".into(),
                "300".into(),
                "0.002".into(),
            ]
            .join("\t")
        }
        "w3c" => {
            // IIS: space-separated, `+` for a space in the user-agent, `-` when empty, UTC.
            let (stem, query) = uri.split_once('?').unwrap_or((uri, "-"));
            let utc = at.with_timezone(&Utc);
            let or_dash = |v: &str| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.replace(' ', "+")
                }
            };
            format!(
                "{} {} 172.24.45.9 {method} {stem} {query} 443 - {ip} {} {} {status} 0 0 15",
                utc.format("%Y-%m-%d"),
                utc.format("%H:%M:%S"),
                or_dash(&ua),
                or_dash(&referrer),
            )
        }
        other => panic!("no layout {other}"),
    }
}

fn write_log_as(path: &Path, lines: &[(DateTime<Utc>, String)], gzip: bool, layout: &str) {
    let mut sorted: Vec<&(DateTime<Utc>, String)> = lines.iter().collect();
    sorted.sort_by_key(|(at, _)| *at);
    let header = match layout {
        "cloudfront" => {
            "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken\n"
        }
        "w3c" => {
            "#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n#Date: 2026-01-01 00:00:00\n#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\n"
        }
        _ => "",
    };
    let text: String = std::iter::once(header.to_string())
        .chain(sorted.iter().map(|(_, l)| match layout {
            "combined" => format!("{l}\n"),
            other => format!("{}\n", convert(l, other)),
        }))
        .collect();
    if gzip {
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(path).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(path, text).unwrap();
    }
}

fn footfall(env: &[(String, String)], args: &[&str]) -> (String, String) {
    let (ok, stdout, stderr) = footfall_tests::footfall_command(env, args);
    assert!(ok, "{args:?}: {stdout}{stderr}");
    (stdout, stderr)
}

/// `footfall import access-log --site example.org FILE…` on `t`'s store; its summary.
fn import(t: &TestStore, files: &[&Path]) -> String {
    let mut args = vec!["import", "access-log", "--site", "example.org"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    // `env` lets go of DuckDB's file for the process.
    footfall(&t.env(), &args).0
}

use footfall_tests::summary_figure as figure;

async fn ask(t: &TestStore, site: &Site, q: Value) -> Value {
    run(
        t.store.as_ref(),
        site,
        &model::parse(&q).unwrap(),
        &footfall_tests::policy(),
    )
    .await
    .unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// Per day: [visitors, visits, pageviews], as the Stats API answers.
async fn daily(
    t: &TestStore,
    site: &Site,
    first: NaiveDate,
    last: NaiveDate,
) -> BTreeMap<NaiveDate, [i64; 3]> {
    let answer = ask(
        t,
        site,
        json!({"site_id": "example.org", "metrics": ["visitors", "visits", "pageviews"],
               "date_range": [first.to_string(), last.to_string()], "dimensions": ["time:day"]}),
    )
    .await;
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let m = |i: usize| r["metrics"][i].as_i64().unwrap();
            (
                r["dimensions"][0].as_str().unwrap().parse().unwrap(),
                [m(0), m(1), m(2)],
            )
        })
        .filter(|(_, m): &(NaiveDate, [i64; 3])| m[2] > 0)
        .collect()
}

/// Visits whose source is Google from `first` to `last`, as the Stats API answers.
async fn google_visits(t: &TestStore, site: &Site, first: NaiveDate, last: NaiveDate) -> i64 {
    let sources = ask(
        t,
        site,
        json!({"site_id": "example.org", "metrics": ["visits"],
               "date_range": [first.to_string(), last.to_string()], "dimensions": ["visit:source"]}),
    )
    .await;
    sources["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["dimensions"][0] == "Google")
        .map(|r| r["metrics"][0].as_i64().unwrap())
        .sum()
}

async fn site(t: &TestStore) -> Site {
    t.site("example.org").await
}

async fn an_access_log_gives_the_counts_of_its_lines(b: Backend) {
    let t = TestStore::new(b, "import_access_log").await;
    let dir = tempfile::tempdir().unwrap();
    let today = Utc::now().date_naive();
    // Two closed days in one rotated, compressed file, yesterday in the live file, and a day
    // from before the raw retention of 30 days.
    let old = today - Duration::days(40);
    let days = [
        today - Duration::days(3),
        today - Duration::days(2),
        today - Duration::days(1),
    ];
    let mut rng = Lcg(7);
    let mut rotated = Expected::default();
    for d in [old, days[0], days[1]] {
        generate(d, &mut rng, &mut rotated);
    }
    let mut live = Expected::default();
    generate(days[2], &mut rng, &mut live);
    let rotated_path = dir.path().join("access.log.1.gz");
    let live_path = dir.path().join("access.log");
    write_log(&rotated_path, &rotated.lines, true);
    write_log(&live_path, &live.lines, false);

    let env = t.env();
    footfall(&env, &["site", "add", "example.org", "--timezone", "UTC"]);
    let salts_before = t.store.meta().salts().await.unwrap().len();
    let out = import(&t, &[&rotated_path, &live_path]);
    let mut expected = rotated.days;
    expected.extend(live.days);
    let mut dropped = rotated.dropped;
    for (k, v) in live.dropped {
        *dropped.entry(k).or_default() += v;
    }
    let pageviews: i64 = expected.values().map(|d| d.0).sum();
    assert_eq!(figure(&out, "imported") as i64, pageviews, "{out}");
    for (reason, n) in &dropped {
        assert_eq!(figure(&out, reason), *n, "{reason} in {out}");
    }
    assert!(
        out.contains(&format!("{}:", rotated_path.display())),
        "malformed lines are named: {out}"
    );

    // Every figure a user reads, day by day, against the generated visits.
    let site = site(&t).await;
    let answered = daily(&t, &site, old, today).await;
    let wanted: BTreeMap<NaiveDate, [i64; 3]> = expected
        .iter()
        .map(|(d, (pv, visitors, visits, _))| (*d, [visitors.len() as i64, *visits, *pv]))
        .collect();
    assert_eq!(answered, wanted);
    assert_eq!(
        google_visits(&t, &site, days[0], days[2]).await,
        days.iter().map(|d| expected[d].3).sum::<i64>()
    );

    // The day before raw retention lives on as rollups only.
    let raw_old = t
        .events()
        .await
        .iter()
        .filter(|e| {
            DateTime::from_timestamp(i64::from(e.timestamp), 0)
                .unwrap()
                .date_naive()
                == old
        })
        .count();
    assert_eq!(raw_old, 0, "raw events past retention are purged");
    // No salt of the import is stored, and no address or user-agent is.
    assert_eq!(t.store.meta().salts().await.unwrap().len(), salts_before);
    if t.files.is_some() {
        for needle in ["198.51.100.17", BROWSERS[2]] {
            assert!(
                t.files_containing(needle.as_bytes()).is_empty(),
                "{needle} stored"
            );
        }
    }

    // The same files again: nothing twice.
    let again = import(&t, &[&rotated_path, &live_path]);
    assert_eq!(figure(&again, "imported"), 0, "{again}");
    assert_eq!(daily(&t, &site, old, today).await, wanted);

    // An import cut off after a batch was stored but before its prefix was noted: with
    // every note gone, each batch is found by its id, and nothing is stored twice.
    // (A handle of its own: SQLite's purge rewrites the file, which the test's first handle
    // would not see.)
    {
        let store = t.another_collector();
        let noted = store.meta().records("access_log_import").await.unwrap();
        assert!(!noted.is_empty());
        for (id, _) in noted {
            let deleted = store.meta().delete_record("access_log_import", &id).await;
            assert!(deleted.unwrap(), "{id}");
        }
    }
    let resumed = import(&t, &[&rotated_path, &live_path]);
    // The day past raw retention is rolled up and its raw events gone: it is left as it is.
    let old_pageviews = expected[&old].0;
    assert_eq!(figure(&resumed, "imported"), 0, "{resumed}");
    assert_eq!(
        figure(&resumed, "already_imported") as i64,
        pageviews - old_pageviews,
        "{resumed}"
    );
    // (and its crawlers' lines, which reach the day before the bot check)
    let old_bot_lines = (BOTS.len() * 5) as i64;
    assert_eq!(
        figure(&resumed, "day_has_data") as i64,
        old_pageviews + old_bot_lines,
        "{resumed}"
    );
    assert_eq!(daily(&t, &site, old, today).await, wanted);

    // The live log grows: only its new lines count.
    let mut more = Expected::default();
    let mut extra_lines = Vec::new();
    let late = days[2].and_hms_opt(23, 30, 0).unwrap().and_utc();
    for v in 0..3 {
        let ip = format!("192.0.2.{}", 1 + v);
        extra_lines.push((
            late,
            line(&ip, late, "GET /pricing HTTP/1.1", 200, "-", BROWSERS[0]),
        ));
    }
    more.lines = extra_lines;
    let mut all = live.lines.clone();
    all.extend(more.lines.clone());
    write_log(&live_path, &all, false);
    let grown = import(&t, &[&live_path]);
    assert_eq!(figure(&grown, "imported"), 3, "{grown}");
    let mut wanted_now = wanted.clone();
    let y = wanted_now.get_mut(&days[2]).unwrap();
    *y = [y[0] + 3, y[1] + 3, y[2] + 3];
    assert_eq!(daily(&t, &site, old, today).await, wanted_now);
}

async fn an_import_goes_through_a_running_collector(b: Backend) {
    let t = TestStore::new(b, "import_while_serving").await;
    let dir = tempfile::tempdir().unwrap();
    let env = t.env();
    footfall(&env, &["site", "add", "example.org", "--timezone", "UTC"]);
    let day = Utc::now().date_naive() - Duration::days(2);
    let mut e = Expected::default();
    generate(day, &mut Lcg(11), &mut e);
    let path = dir.path().join("access.log");
    write_log(&path, &e.lines, false);
    let server = Process::serve(&env, dir.path().join("serve.log")).await;
    let (out, _) = footfall(
        &env,
        &[
            "import",
            "access-log",
            "--site",
            "example.org",
            path.to_str().unwrap(),
        ],
    );
    let (pv, visitors, visits, _) = &e.days[&day];
    assert_eq!(figure(&out, "imported") as i64, *pv, "{out}");
    // Standard input cannot be handed over, and says so.
    let (ok, _, stderr) = footfall_tests::footfall_command(
        &env,
        &["import", "access-log", "--site", "example.org", "-"],
    );
    assert!(!ok);
    assert!(stderr.contains("save the log to a file"), "{stderr}");
    server.signal("TERM");
    drop(server);
    let site = site(&t).await;
    assert_eq!(
        daily(&t, &site, day, day).await,
        BTreeMap::from([(day, [visitors.len() as i64, *visits, *pv])])
    );
}

/// `footfall import access-log --follow` running as a child, its stderr collected as it comes.
struct Following {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Following {
    fn start(env: &[(String, String)], log: &Path) -> Following {
        let mut child = std::process::Command::new(footfall_tests::footfall_bin())
            .args(["import", "access-log", "--follow", "--site", "example.org"])
            .arg(log)
            .env_clear()
            .envs(env.iter().cloned())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (mut pipe, text) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut pipe, &mut buf) {
                if n == 0 {
                    break;
                }
                text.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Following { child, stderr }
    }

    /// Waits until its progress says it has read `lines` lines.
    fn wait_for_lines(&mut self, lines: usize) {
        let start = std::time::Instant::now();
        loop {
            let read = self
                .stderr
                .lock()
                .unwrap()
                .lines()
                .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
                .max()
                .unwrap_or(0);
            if read >= lines {
                return;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the follow ended: {}",
                self.stderr.lock().unwrap()
            );
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "read {read} of {lines} lines: {}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Sends `signal` and returns the summary it prints as it ends.
    fn stop(self, signal: &str) -> String {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let out = self.child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            self.stderr.lock().unwrap()
        );
        stdout
    }
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// A log followed as the server writes it: lines appended in bursts (one of them in two
/// writes), the log renamed away with a last line written to the old file before the new one
/// is made (logrotate's `create`), then truncated in place (`copytruncate`). Stopped, then
/// started again on a log that has grown by another day: only the new day is read. The
/// figures per day are those of the generated visits. With `serving`, the follow runs inside
/// a running collector and ends when the command is interrupted.
async fn a_followed_log_is_read_as_it_is_written(b: Backend, serving: bool) {
    let t = TestStore::new(b, "import_follow").await;
    let dir = tempfile::tempdir().unwrap();
    let env = t.env();
    footfall(&env, &["site", "add", "example.org", "--timezone", "UTC"]);
    let today = Utc::now().date_naive();
    let (first, second) = (today - Duration::days(2), today - Duration::days(1));
    let mut day1 = Expected::default();
    generate(first, &mut Lcg(21), &mut day1);
    let mut day2 = Expected::default();
    generate(second, &mut Lcg(22), &mut day2);
    let sorted = |e: &Expected| -> Vec<String> {
        let mut lines = e.lines.clone();
        lines.sort_by_key(|(at, _)| *at);
        lines.into_iter().map(|(_, l)| l).collect()
    };
    let (lines1, lines2) = (sorted(&day1), sorted(&day2));
    let n = lines1.len();
    let (a, b2, c, d) = (n * 4 / 10, n * 7 / 10, n * 85 / 100, n);
    let log = dir.path().join("access.log");
    append(&log, &lines1[..a]);
    let server = if serving {
        Some(Process::serve(&env, dir.path().join("serve.log")).await)
    } else {
        None
    };
    let mut follow = Following::start(&env, &log);
    follow.wait_for_lines(a);
    // A burst, its last line written in two pieces.
    append(&log, &lines1[a..b2 - 1]);
    let last = &lines1[b2 - 1];
    let (head, tail) = last.split_at(last.len() / 2);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(head.as_bytes())
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    append(&log, &[tail.to_string()]);
    follow.wait_for_lines(b2);
    // Renamed away: the server writes on to the old file until it makes the new one.
    let half = (b2 + c) / 2;
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    append(&dir.path().join("access.log.1"), &lines1[b2..half]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    append(&log, &lines1[half..c]);
    follow.wait_for_lines(c);
    // Truncated in place after a copy.
    std::fs::copy(&log, dir.path().join("access.log.2")).unwrap();
    std::fs::File::create(&log).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    append(&log, &lines1[c..d]);
    follow.wait_for_lines(d);
    let out = follow.stop("INT");
    assert_eq!(
        figure(&out, "imported") as i64,
        day1.days[&first].0,
        "{out}"
    );
    assert!(out.contains("followed 2 rotations"), "{out}");
    assert_eq!(
        figure(&out, "malformed"),
        day1.dropped["malformed"],
        "{out}"
    );
    // Started again on a log that has grown: the lines read before are skipped.
    append(&log, &lines2);
    let mut follow = Following::start(&env, &log);
    follow.wait_for_lines(d - c + lines2.len());
    let out = follow.stop("TERM");
    assert_eq!(
        figure(&out, "imported") as i64,
        day2.days[&second].0,
        "{out}"
    );
    assert_eq!(figure(&out, "already_imported") as usize, d - c, "{out}");
    if let Some(server) = server {
        server.signal("TERM");
        drop(server);
    }
    let site = site(&t).await;
    let want = |e: &Expected, day: NaiveDate| {
        let (pv, visitors, visits, _) = &e.days[&day];
        (day, [visitors.len() as i64, *visits, *pv])
    };
    assert_eq!(
        daily(&t, &site, first, second).await,
        BTreeMap::from([want(&day1, first), want(&day2, second)])
    );
}

/// nginx's JSON, Caddy's, CloudFront's and IIS's (W3C) logs give the figures of the requests
/// they hold, with their layout named or told apart by `auto`.
async fn other_layouts_give_the_counts_of_their_lines(b: Backend) {
    let t = TestStore::new(b, "import_other_layouts").await;
    let dir = tempfile::tempdir().unwrap();
    let env = t.env();
    footfall(&env, &["site", "add", "example.org", "--timezone", "UTC"]);
    let today = Utc::now().date_naive();
    // A day in each layout, as a site that moved from server to server: (layout, --format,
    // compressed).
    let layouts = [
        ("nginx-json", "nginx-json", false),
        ("caddy-json", "auto", true),
        ("cloudfront", "cloudfront", true),
        ("w3c", "auto", false),
    ];
    let mut rng = Lcg(5);
    let mut e = Expected::default();
    let first_day = today - Duration::days(layouts.len() as i64 + 1);
    let mut imported = 0;
    for (i, (layout, format, gzip)) in layouts.iter().enumerate() {
        let day = first_day + Duration::days(i as i64);
        let mut one = Expected::default();
        generate(day, &mut rng, &mut one);
        let path = dir.path().join(format!("{layout}.log"));
        write_log_as(&path, &one.lines, *gzip, layout);
        let (out, _) = footfall(
            &t.env(),
            &[
                "import",
                "access-log",
                "--site",
                "example.org",
                "--format",
                format,
                path.to_str().unwrap(),
            ],
        );
        imported += figure(&out, "imported");
        assert_eq!(figure(&out, "malformed"), 2, "{layout}: {out}");
        assert_eq!(
            figure(&out, "bot"),
            (BOTS.len() * 5) as u64,
            "{layout}: {out}"
        );
        assert_eq!(
            figure(&out, "asset"),
            one.dropped["asset"],
            "{layout}: {out}"
        );
        e.days.extend(one.days);
    }
    let pageviews: i64 = e.days.values().map(|d| d.0).sum();
    assert_eq!(imported as i64, pageviews);
    let site = site(&t).await;
    let wanted: BTreeMap<NaiveDate, [i64; 3]> = e
        .days
        .iter()
        .map(|(d, (pv, visitors, visits, _))| (*d, [visitors.len() as i64, *visits, *pv]))
        .collect();
    assert_eq!(daily(&t, &site, first_day, today).await, wanted);
    // Visits from Google, whichever layout carried the referrer.
    assert_eq!(
        google_visits(&t, &site, first_day, today).await,
        e.days.values().map(|d| d.3).sum::<i64>()
    );
}

async fn bad_arguments_are_refused_with_a_reason(b: Backend) {
    let t = TestStore::new(b, "import_bad_arguments").await;
    let env = t.env();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let log = log.to_str().unwrap();
    let refused = |args: &[&str], reason: &str| {
        let mut all = vec!["import", "access-log"];
        all.extend(args);
        let (ok, _, stderr) = footfall_tests::footfall_command(&env, &all);
        assert!(!ok, "{all:?}");
        assert!(stderr.contains(reason), "{all:?}: {stderr}");
    };
    refused(&["--site", "example.org", log], "no site `example.org`");
    footfall(&env, &["site", "add", "example.org"]);
    refused(&["--site", "example.org", "/no/such/file"], "no such file");
    refused(
        &["--site", "example.org", "--exclude", "admin", log],
        "--exclude `admin`",
    );
    refused(
        &["--site", "example.org", "--format", "xml", log],
        "invalid value 'xml'",
    );
    refused(
        &["--site", "example.org", "-", "-"],
        "standard input (-) can be named once",
    );
    refused(
        &["--site", "example.org", "--follow", log, "-"],
        "--follow reads on at the end of a file",
    );
    let gz = dir.path().join("access.log.2.gz");
    write_log(&gz, &[], true);
    refused(
        &["--site", "example.org", "--follow", gz.to_str().unwrap()],
        "a compressed file cannot be followed",
    );
    // An empty log is no error: nothing to import.
    let (out, _) = footfall(
        &env,
        &["import", "access-log", "--site", "example.org", log],
    );
    assert!(out.contains("read 0 lines, imported 0 pageviews"), "{out}");
}

footfall_tests::all_stores!(
    an_access_log_gives_the_counts_of_its_lines,
    other_layouts_give_the_counts_of_their_lines,
    bad_arguments_are_refused_with_a_reason
);

mod serving {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duckdb() {
        super::an_import_goes_through_a_running_collector(footfall_tests::Backend::DuckDb).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clickhouse() {
        super::an_import_goes_through_a_running_collector(footfall_tests::Backend::ClickHouse).await
    }
}

mod following {
    use footfall_tests::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_on_its_own() {
        super::a_followed_log_is_read_as_it_is_written(Backend::Sqlite, false).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duckdb_through_serve() {
        super::a_followed_log_is_read_as_it_is_written(Backend::DuckDb, true).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clickhouse_through_serve() {
        super::a_followed_log_is_read_as_it_is_written(Backend::ClickHouse, true).await
    }
}
