//! Bot detection and user-agent parsing measured on public corpora nobody here wrote, against
//! their own labels (fetched by `scripts/fetch-corpora.sh`, which names each and its licence):
//!
//! - Matomo device-detector's fixtures (LGPL-3.0): 34,000 browser user-agents labelled with
//!   browser, OS and device type in the names Plausible stores, and 1,348 labelled bots;
//! - Intoli's `user-agents` (BSD-2-Clause): user-agents of real visits, with the navigator's
//!   own `platform` and device category and each one's share of traffic;
//! - the `isbot` crate's `fixtures/bots.txt` (MIT): 4,353 crawlers, never used for tuning.
//!
//! Each test prints its table (`scripts/test.sh` runs them with `--nocapture`; BENCHMARKS.md
//! has the figures) and fails below the targets: bot recall ≥ 0.99, browsers taken for bots
//! ≤ 0.5 %, browser family, OS family and device class each right for ≥ 97 % (device class on
//! real visits; see `corpus_user_agent_accuracy`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use footfall::ingest::bots::is_bot_user_agent;
use footfall::ingest::useragent::{ClientHints, UaInfo, UaParser};
use serde_json::Value;

fn corpora() -> Option<PathBuf> {
    let dir = std::env::var_os("FOOTFALL_TEST_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| footfall_tests::workspace_root().join("target/test-tools/corpora"));
    if dir.join("ready.2").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("FOOTFALL_TEST_REQUIRE_DATA").is_none(),
        "{} is missing: run scripts/fetch-corpora.sh",
        dir.display()
    );
    eprintln!(
        "skipped: no corpora at {} (scripts/fetch-corpora.sh)",
        dir.display()
    );
    None
}

fn jsonl(path: PathBuf) -> Vec<Value> {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What the pipeline drops as a bot: its cheap check, then the cached parse's lists.
fn dropped_as_bot(parser: &UaParser, ua: &str) -> bool {
    is_bot_user_agent(ua) || parser.parse_uncached(ua, &ClientHints::default()).is_bot
}

fn parse(parser: &UaParser, ua: &str) -> UaInfo {
    parser.parse_uncached(ua, &ClientHints::default())
}

/// The share of `items` for which `hit` holds, with up to five examples of each outcome.
struct Share {
    n: usize,
    hits: usize,
    examples: Vec<String>,
}

fn share<'a>(items: impl IntoIterator<Item = &'a str>, mut hit: impl FnMut(&str) -> bool) -> Share {
    let mut s = Share {
        n: 0,
        hits: 0,
        examples: Vec::new(),
    };
    for ua in items {
        s.n += 1;
        if hit(ua) {
            s.hits += 1;
        } else if s.examples.len() < 8 {
            s.examples.push(ua.to_string());
        }
    }
    s
}

#[test]
fn corpus_bot_recall_and_false_positives() {
    let Some(dir) = corpora() else { return };
    let parser = UaParser::new(1);
    let matomo_bots = jsonl(dir.join("matomo-bots.jsonl"));
    let isbot = std::fs::read_to_string(dir.join("isbot-bots.txt")).unwrap();
    let intoli: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("intoli-user-agents.json")).unwrap(),
    )
    .unwrap();
    let mut intoli_uas: Vec<&str> = intoli
        .iter()
        .map(|r| r["userAgent"].as_str().unwrap())
        .collect();
    intoli_uas.sort_unstable();
    intoli_uas.dedup();
    let matomo_browsers = jsonl(dir.join("matomo-browsers.jsonl"));

    let recall_matomo = share(
        matomo_bots.iter().map(|b| b["ua"].as_str().unwrap()),
        |ua| dropped_as_bot(&parser, ua),
    );
    let recall_isbot = share(
        isbot.lines().map(str::trim).filter(|l| !l.is_empty()),
        |ua| dropped_as_bot(&parser, ua),
    );
    let passed_intoli = share(intoli_uas.iter().copied(), |ua| {
        !dropped_as_bot(&parser, ua)
    });
    let passed_matomo = share(
        matomo_browsers.iter().map(|b| b["ua"].as_str().unwrap()),
        |ua| !dropped_as_bot(&parser, ua),
    );

    println!("bots: corpus | user-agents | measure | value");
    let rate = |s: &Share| s.hits as f64 / s.n as f64;
    for (name, s, measure, value) in [
        (
            "Matomo bots.yml",
            &recall_matomo,
            "recall",
            rate(&recall_matomo),
        ),
        (
            "isbot crate bots.txt (held out)",
            &recall_isbot,
            "recall",
            rate(&recall_isbot),
        ),
        (
            "Intoli user-agents (real browsers)",
            &passed_intoli,
            "taken for bots",
            1.0 - rate(&passed_intoli),
        ),
        (
            "Matomo browser fixtures",
            &passed_matomo,
            "taken for bots",
            1.0 - rate(&passed_matomo),
        ),
    ] {
        println!("bots: {name} | {} | {measure} | {:.4}", s.n, value);
        for e in &s.examples {
            println!("bots:     e.g. {measure} wrong: {e}");
        }
    }
    assert!(recall_matomo.n > 1000 && recall_isbot.n > 4000 && passed_intoli.n > 500);
    assert!(rate(&recall_matomo) >= 0.99, "recall on Matomo's bots");
    assert!(
        rate(&recall_isbot) >= 0.99,
        "recall on the isbot crate's bots"
    );
    assert!(
        1.0 - rate(&passed_intoli) <= 0.005,
        "real browsers taken for bots"
    );
    assert!(
        1.0 - rate(&passed_matomo) <= 0.005,
        "Matomo's browsers taken for bots"
    );
}

/// Browser families as the issue and the field count them.
fn browser_family(name: &str) -> &'static str {
    match name {
        "Chrome" | "Chrome Mobile" | "Chrome Mobile iOS" => "Chrome",
        "Safari" | "Mobile Safari" => "Safari",
        "Firefox" | "Firefox Mobile" | "Firefox Mobile iOS" => "Firefox",
        "Microsoft Edge" => "Edge",
        "Opera" | "Opera Mobile" | "Opera Mini" | "Opera Mini iOS" => "Opera",
        "Samsung Browser" => "Samsung Internet",
        "Internet Explorer" | "IE Mobile" => "IE",
        _ => "other",
    }
}

fn os_family(name: &str) -> &'static str {
    match name {
        "Windows" => "Windows",
        "Mac" => "macOS",
        "iOS" | "iPadOS" => "iOS",
        "Android" => "Android",
        "Chrome OS" | "Chromium OS" => "ChromeOS",
        "GNU/Linux" | "Ubuntu" | "Fedora" | "Debian" | "Mint" | "Arch Linux" | "Red Hat"
        | "Gentoo" | "SUSE" | "openSUSE" | "CentOS" | "Kubuntu" | "Xubuntu" | "Lubuntu"
        | "Mandriva" | "Slackware" | "Knoppix" | "Linux" => "Linux",
        _ => "other",
    }
}

/// Matomo's device types as Plausible files them.
fn matomo_device(kind: &str) -> &'static str {
    match kind {
        "desktop" | "tv" | "console" => "Desktop",
        "smartphone"
        | "feature phone"
        | "phablet"
        | "portable media player"
        | "wearable"
        | "camera" => "Mobile",
        "tablet" | "car browser" => "Tablet",
        _ => "other",
    }
}

fn ours_device(device: &str) -> &'static str {
    match device {
        "Desktop" => "Desktop",
        "Mobile" => "Mobile",
        "Tablet" => "Tablet",
        _ => "other",
    }
}

/// Right answers per label, counted per expected value, for the table.
#[derive(Default)]
struct Tally {
    right: f64,
    all: f64,
    by_label: BTreeMap<String, (f64, f64)>,
    wrong: Vec<String>,
}

impl Tally {
    fn add(&mut self, want: &str, got: &str, weight: f64, ua: &str) {
        let ok = want == got;
        self.all += weight;
        let e = self.by_label.entry(want.to_string()).or_default();
        e.1 += weight;
        if ok {
            self.right += weight;
            e.0 += weight;
        } else {
            if self.wrong.len() < 6 {
                self.wrong.push(format!("want {want}, got {got}: {ua}"));
            }
            // FOOTFALL_CORPORA_MISSES=FILE appends every miss, for a person to study.
            if let Some(file) = std::env::var_os("FOOTFALL_CORPORA_MISSES") {
                use std::io::Write as _;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(file)
                    .unwrap();
                writeln!(f, "want {want}\tgot {got}\t{ua}").unwrap();
            }
        }
    }

    fn accuracy(&self) -> f64 {
        self.right / self.all
    }

    fn print(&self, corpus: &str, what: &str) {
        println!(
            "user-agents: {corpus} | {what} | {:.4} | {}",
            self.accuracy(),
            self.by_label
                .iter()
                .map(|(k, (r, a))| format!("{k} {:.3} of {:.1} %", r / a, 100.0 * a / self.all))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for w in &self.wrong {
            println!("user-agents:     e.g. {w}");
        }
    }
}

#[test]
fn corpus_user_agent_accuracy() {
    let Some(dir) = corpora() else { return };
    let parser = UaParser::new(1);

    // Matomo's fixtures, one count per user-agent (Matomo's names are Plausible's).
    let (mut browser, mut os, mut device) = (Tally::default(), Tally::default(), Tally::default());
    for row in jsonl(dir.join("matomo-browsers.jsonl")) {
        let ua = row["ua"].as_str().unwrap();
        let got = parse(&parser, ua);
        let want = |k: &str| row[k].as_str().unwrap().to_string();
        browser.add(
            browser_family(&want("browser")),
            browser_family(&got.browser),
            1.0,
            ua,
        );
        os.add(os_family(&want("os")), os_family(&got.os), 1.0, ua);
        device.add(
            matomo_device(&want("device")),
            ours_device(&got.device),
            1.0,
            ua,
        );
    }
    println!("user-agents: corpus | measure | accuracy | per expected value");
    browser.print("Matomo fixtures", "browser family");
    os.print("Matomo fixtures", "OS family");
    device.print("Matomo fixtures", "device class");

    // Intoli's real visits, weighted by their share of traffic: the navigator's own platform
    // and device category are the labels.
    let intoli: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("intoli-user-agents.json")).unwrap(),
    )
    .unwrap();
    let (mut real_os, mut real_device) = (Tally::default(), Tally::default());
    for row in &intoli {
        let ua = row["userAgent"].as_str().unwrap();
        let weight = row["weight"].as_f64().unwrap();
        let got = parse(&parser, ua);
        let platform = row["platform"].as_str().unwrap_or("");
        let want_os = match platform {
            "Win32" | "Windows" => Some("Windows"),
            "MacIntel" => Some("macOS"),
            "iPhone" | "iPad" | "iPod" => Some("iOS"),
            // Phones and tablets on ARM Linux are Android; x86-64 Linux may be a desktop,
            // ChromeOS or Android, so it is not counted.
            p if p.starts_with("Linux arm") || p == "Linux aarch64" => Some("Android"),
            _ => None,
        };
        if let Some(want) = want_os {
            real_os.add(want, os_family(&got.os), weight, ua);
        }
        let want_device = match row["deviceCategory"].as_str().unwrap_or("") {
            "desktop" => "Desktop",
            "mobile" => "Mobile",
            "tablet" => "Tablet",
            _ => "other",
        };
        real_device.add(want_device, ours_device(&got.device), weight, ua);
    }
    real_os.print("Intoli real visits (weighted)", "OS family");
    real_device.print("Intoli real visits (weighted)", "device class");

    assert!(browser.all > 30_000.0 && intoli.len() > 5_000);
    for (what, t) in [
        ("Matomo browser family", &browser),
        ("Matomo OS family", &os),
        ("Intoli OS family", &real_os),
        ("Intoli device class", &real_device),
    ] {
        assert!(t.accuracy() >= 0.97, "{what}: {:.4}", t.accuracy());
    }
    // Matomo's fixtures are a parser's stress test, not traffic: a third of them are TV boxes,
    // consoles and Android tablets that only a list of device models (Matomo's own, which
    // Plausible uses) can tell from phones. Their device class is reported, and guarded
    // against getting worse, but the target is met on real visits (Intoli, above).
    assert!(
        device.accuracy() >= 0.85,
        "Matomo device class: {:.4}",
        device.accuracy()
    );
}

/// A real nginx log of one day (rhit's test data: 33,469 lines, with socket.io polling, JSON
/// APIs, webhooks, scanners sending binary junk, crawlers and HTTP clients) imported as a
/// user would, against the counts of `scripts/count_access_log.py`, which reads the log by the
/// README's rules without Footfall's code and tells bots with Matomo's device-detector (and a
/// review of the user-agents it does not list). Every count must be equal: lines by reason,
/// the bot verdict of each user-agent, pageviews and visitors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_public_access_log() {
    let Some(dir) = corpora() else { return };
    let counts: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rhit-counts.json")).unwrap())
            .unwrap();
    let count = |k: &str| counts[k].as_u64().unwrap_or(0);
    let t =
        footfall_tests::TestStore::new(footfall_tests::Backend::Sqlite, "corpus_access_log").await;
    let mut env = t.env();
    // The log is from 2021: its rollups must outlive the default five years.
    env.push(("FOOTFALL_AGGREGATE_RETENTION_DAYS".into(), "36500".into()));
    let run = |args: &[&str]| {
        let (ok, out, err) = footfall_tests::footfall_command(&env, args);
        assert!(ok, "{args:?}: {out}{err}");
        out
    };
    run(&["site", "add", "dystroy.org", "--timezone", "UTC"]);
    let log = dir.join("rhit-access.log");
    let out = run(&[
        "import",
        "access-log",
        "--site",
        "dystroy.org",
        "--exclude",
        "/gogo/*",
        "--exclude",
        "/json/*",
        log.to_str().unwrap(),
    ]);
    let got = |k: &str| footfall_tests::summary_figure(&out, k);
    println!("access-log: {}", out.lines().next().unwrap_or_default());
    println!("access-log: reason | independent count | footfall");
    let reasons = [
        "malformed",
        "not_get",
        "not_success",
        "endpoint",
        "asset",
        "excluded",
    ];
    for reason in reasons {
        println!("access-log: {reason} | {} | {}", count(reason), got(reason));
    }
    assert_eq!(got("read"), count("lines"), "{out}");
    for reason in reasons {
        assert_eq!(got(reason), count(reason), "{reason}: {out}");
    }
    // Every request for a page is either imported or dropped by the pipeline.
    let pipeline_dropped = got("bot") + got("spam_referrer") + got("bad_url");
    assert_eq!(
        got("imported") + pipeline_dropped,
        count("candidates"),
        "{out}"
    );
    // Each user-agent of a page request is a bot for Footfall exactly when it is one for
    // device-detector or for our review of what device-detector does not list.
    let parser = UaParser::new(1);
    let mut wrong = Vec::new();
    for (ua, v) in counts["user_agent_verdicts"].as_object().unwrap() {
        let lines = v[0].as_u64().unwrap();
        let (bot, by_detector) = (v[1].as_bool().unwrap(), v[2].as_bool().unwrap());
        let footfall = dropped_as_bot(&parser, ua);
        if footfall != by_detector {
            println!(
                "access-log: not in device-detector's list | {lines} lines | footfall: {} | reviewed: {} | {ua}",
                if footfall { "bot" } else { "person" },
                if bot { "bot" } else { "person" },
            );
        }
        if footfall != bot {
            wrong.push(format!("{ua} ({lines} lines)"));
        }
    }
    assert!(wrong.is_empty(), "taken for the wrong kind: {wrong:#?}");
    println!(
        "access-log: bots among page requests | {} | {}",
        count("bots"),
        pipeline_dropped
    );
    assert_eq!(pipeline_dropped, count("bots"), "{out}");
    let site = t.site("dystroy.org").await;
    let policy = footfall_tests::policy();
    let q = serde_json::json!({"site_id": "dystroy.org", "metrics": ["visitors", "pageviews"],
        "date_range": ["2021-01-22", "2021-01-22"]});
    let answer = footfall::query::run::run(
        t.store.as_ref(),
        &site,
        &footfall::query::model::parse(&q).unwrap(),
        &policy,
    )
    .await
    .unwrap();
    let metric = |i: usize| answer["results"][0]["metrics"][i].as_u64().unwrap();
    let day = &counts["days"]["2021-01-22"];
    // The day is past raw retention: the answer comes from its rollups.
    assert_eq!(metric(1), got("imported"), "{answer}");
    let (pageviews, visitors) = (
        day["pageviews"].as_u64().unwrap(),
        day["visitors"].as_u64().unwrap(),
    );
    println!("access-log: pageviews | {pageviews} | {}", metric(1));
    println!("access-log: visitors | {visitors} | {}", metric(0));
    assert_eq!((metric(1), metric(0)), (pageviews, visitors), "{answer}");
}
