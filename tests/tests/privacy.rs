//! Privacy controls, on every store. The privacy notice: `footfall privacy-notice` writes it
//! from the running configuration, so what it states follows the configuration: the
//! retention of raw events and of aggregates, whether locations are recorded, and where the
//! data is kept. Data-subject requests: `footfall subject find|erase` finds a visitor's
//! events by the address and user-agent they used, while the day's salt exists, and erases
//! them, counting their closed days again; older events cannot be linked to anyone.

use std::sync::Arc;

use chrono::{Duration, Utc};
use footfall::ingest::visitor::visitor_id;
use footfall::store::{EventRow, Salt};
use footfall_tests::{Backend, TestStore, policy};
use serde_json::json;

footfall_tests::all_stores!(
    the_notice_follows_the_configuration,
    a_visitors_events_are_found_and_erased_while_the_salt_lives
);

fn notice(env: &[(String, String)], args: &[&str]) -> String {
    let mut all = vec!["privacy-notice", "--site", "example.dk"];
    all.extend(args.iter().copied());
    let (ok, out, err) = footfall_tests::footfall_command(env, &all);
    assert!(ok, "{all:?}: {err}");
    out
}

/// `env` with `name` set to `value` (replacing any earlier value), or removed.
fn with(env: &[(String, String)], name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<_> = env.iter().filter(|(k, _)| k != name).cloned().collect();
    if let Some(v) = value {
        out.push((name.to_string(), v.to_string()));
    }
    out
}

async fn the_notice_follows_the_configuration(b: Backend) {
    let t = TestStore::new(b, "privacy_notice").await;
    let env = t.env();
    let (ok, _, err) =
        footfall_tests::footfall_command(&env, &["site", "add", "example.dk", "--timezone", "UTC"]);
    assert!(ok, "{err}");

    // The defaults: 30 days of events, 5 years of totals, locations from a GeoIP file.
    let en = notice(&env, &[]);
    assert!(
        en.starts_with("# Visitor statistics on example.dk\n"),
        "{en}"
    );
    assert!(
        en.contains("with the daily code): 30 days, then deleted automatically."),
        "{en}"
    );
    assert!(
        en.contains("no visitor code): 5 years (1825 days), then"),
        "{en}"
    );
    assert!(en.contains("The daily secrets: 48 hours."), "{en}");
    assert!(en.contains("the country, region and city, looked up from a shortened IP address"));
    assert!(
        en.contains("\\[The site owner's name, address and contact e-mail\\]"),
        "{en}"
    );
    // Where the data is kept depends on the store.
    let place = match b {
        Backend::Sqlite | Backend::DuckDb => "in database files on the server that runs",
        Backend::ClickHouse => "in a ClickHouse database that we operate",
        Backend::Cluster => "in a ClickHouse cluster (several database servers)",
    };
    assert!(en.contains(place), "{b:?}: {en}");

    // Shorter retention, no GeoIP file: the text says so.
    let changed = with(
        &with(&env, "FOOTFALL_RAW_RETENTION_DAYS", Some("14")),
        "FOOTFALL_GEOIP_DB",
        None,
    );
    let changed = with(&changed, "FOOTFALL_AGGREGATE_RETENTION_DAYS", Some("400"));
    let en14 = notice(&changed, &[]);
    assert!(
        en14.contains("with the daily code): 14 days, then"),
        "{en14}"
    );
    assert!(!en14.contains("30 days"), "{en14}");
    assert!(en14.contains("no visitor code): 400 days, then"), "{en14}");
    assert!(en14.contains("no location: no geolocation database is configured"));
    assert!(!en14.contains("region and city"));

    // In Danish, as HTML, naming who is responsible (markup in it stays text).
    let da = notice(
        &changed,
        &[
            "--lang",
            "da",
            "--format",
            "html",
            "--controller",
            "Eksempel ApS <privacy@example.dk>",
        ],
    );
    assert!(
        da.starts_with("<h1>Besøgsstatistik på example.dk</h1>\n"),
        "{da}"
    );
    assert!(
        da.contains("<p>Eksempel ApS &lt;privacy@example.dk&gt; er dataansvarlig"),
        "{da}"
    );
    assert!(
        da.contains("med den daglige kode): 14 dage, derefter"),
        "{da}"
    );
    assert!(da.contains("De daglige hemmeligheder: 48 timer."), "{da}");
    assert!(da.contains("ingen placering"), "{da}");
    assert!(da.contains("artikel 11"), "{da}");
    assert_eq!(da.matches("<h2>").count(), 8);

    // Mistakes are named.
    for (args, reason) in [
        (vec!["--lang", "fr"], "invalid value 'fr'"),
        (vec!["--format", "pdf"], "invalid value 'pdf'"),
    ] {
        let mut all = vec!["privacy-notice", "--site", "example.dk"];
        all.extend(args.iter().copied());
        let (ok, _, err) = footfall_tests::footfall_command(&env, &all);
        assert!(!ok && err.contains(reason), "{args:?}: {err}");
    }
    let (ok, _, err) =
        footfall_tests::footfall_command(&env, &["privacy-notice", "--site", "nowhere.example"]);
    assert!(!ok && err.contains("nowhere.example"), "{err}");
    let long = "x".repeat(501);
    let (ok, _, err) = footfall_tests::footfall_command(
        &env,
        &[
            "privacy-notice",
            "--site",
            "example.dk",
            "--controller",
            &long,
        ],
    );
    assert!(!ok && err.contains("longer than 500"), "{err}");
}

async fn a_visitors_events_are_found_and_erased_while_the_salt_lives(b: Backend) {
    let t = TestStore::new(b, "subject").await;
    let env = t.env();
    for domain in ["example.org", "other.org"] {
        let (ok, _, err) =
            footfall_tests::footfall_command(&env, &["site", "add", domain, "--timezone", "UTC"]);
        assert!(ok, "{err}");
    }
    let sites = t.store.meta().sites().await.unwrap();
    let id = |d: &str| sites.iter().find(|s| s.domain == d).unwrap().id;
    let today = Utc::now().date_naive();
    let yesterday = today - Duration::days(1);
    let salts = [(yesterday, Salt([7; 32])), (today, Salt([9; 32]))];
    for (day, salt) in &salts {
        t.store.meta().put_salt(*day, salt).await.unwrap();
    }
    let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    let (ip_a, ip_b) = ("203.0.113.9", "203.0.113.10");
    // An event as the collector writes it: hashed with its day's salt.
    let event = |domain: &str, ip: &str, day: usize, hour: u32, name: &str, path: &str| {
        let (date, salt) = &salts[day];
        EventRow {
            site_id: id(domain),
            timestamp: date.and_hms_opt(hour, 0, 0).unwrap().and_utc().timestamp() as u32,
            name: name.into(),
            hostname: domain.into(),
            pathname: path.into(),
            visitor_id: visitor_id(salt, domain, ip.parse().unwrap(), ua),
            session_id: u64::from(hour) * 1000 + day as u64,
            browser: "Firefox".into(),
            scroll_depth: 255,
            ..EventRow::default()
        }
    };
    let mut old = event("example.org", ip_a, 0, 9, "pageview", "/old");
    // Three days ago: that day's salt is gone, and with it any link to the address.
    old.timestamp -= 2 * 86_400;
    old.visitor_id = 4242;
    let rows = vec![
        event("example.org", ip_a, 0, 9, "pageview", "/"),
        event("example.org", ip_a, 0, 9, "pageview", "/pricing"),
        event("example.org", ip_a, 1, 0, "pageview", "/"),
        event("example.org", ip_a, 1, 0, "Signup", "/signup"),
        event("other.org", ip_a, 1, 0, "pageview", "/docs"),
        event("example.org", ip_b, 0, 10, "pageview", "/b-only"),
        event("example.org", ip_b, 1, 0, "pageview", "/b-only"),
        old,
    ];
    t.store.insert_events(Arc::from(rows)).await.unwrap();
    footfall::query::rollup::roll_up_closed_days(t.store.as_ref(), &policy(), usize::MAX)
        .await
        .unwrap();
    let visitors_yesterday = |t: &TestStore| {
        let q = footfall::query::model::parse(&json!({"site_id": "example.org",
            "metrics": ["visitors", "pageviews"],
            "date_range": [yesterday.to_string(), yesterday.to_string()]}))
        .unwrap();
        let site = sites
            .iter()
            .find(|s| s.domain == "example.org")
            .unwrap()
            .clone();
        let store = t.store.clone();
        async move {
            footfall::query::run::run(store.as_ref(), &site, &q, &policy())
                .await
                .unwrap()["results"][0]["metrics"]
                .clone()
        }
    };
    assert_eq!(visitors_yesterday(&t).await, json!([2, 3]));

    let subject = |args: &[&str]| {
        let mut all = vec!["subject"];
        all.extend(args.iter().copied());
        let (ok, out, err) = footfall_tests::footfall_command(&t.env(), &all);
        // Neither the address nor the user-agent is logged.
        assert!(!err.contains(ip_a) && !err.contains("Firefox/133"), "{err}");
        (ok, out, err)
    };
    // Access: the events of both days whose salts exist, on every site, and no one else's.
    let (ok, out, err) = subject(&["find", "--ip", ip_a, "--ua", ua]);
    assert!(ok, "{err}");
    assert!(out.contains("example.org: 4 event(s)"), "{out}");
    assert!(out.contains("other.org: 1 event(s)"), "{out}");
    assert!(out.contains("pageview example.org/pricing"), "{out}");
    assert!(out.contains("Signup example.org/signup"), "{out}");
    assert!(!out.contains("/b-only") && !out.contains("/old"), "{out}");
    assert!(out.contains("GDPR Article 11"), "{out}");
    let (ok, out, _) = subject(&["find", "--ip", ip_a, "--ua", ua, "--site", "other.org"]);
    assert!(
        ok && !out.contains("example.org:") && out.contains("other.org: 1"),
        "{out}"
    );

    // Erasure on one site: its events go, yesterday is counted again without them.
    let (ok, out, err) = subject(&["erase", "--ip", ip_a, "--ua", ua, "--site", "example.org"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "Deleted 4 event(s); the daily totals of {yesterday} were computed again"
        )),
        "{out}"
    );
    let left: Vec<String> = t
        .events()
        .await
        .into_iter()
        .map(|e| format!("{}{}", e.hostname, e.pathname))
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(
        left,
        [
            "example.org/b-only",
            "example.org/b-only",
            "example.org/old",
            "other.org/docs"
        ],
    );
    assert_eq!(visitors_yesterday(&t).await, json!([1, 1]));
    let (ok, out, _) = subject(&["find", "--ip", ip_a, "--ua", ua, "--site", "example.org"]);
    assert!(
        ok && out.starts_with("No events match this address and user-agent"),
        "{out}"
    );

    // Mistakes are named.
    for (args, reason) in [
        (
            vec!["find", "--ip", "nope", "--ua", ua],
            "not an IP address",
        ),
        (vec!["find", "--ip", ip_a, "--ua", ""], "must not be empty"),
        (
            vec![
                "find",
                "--ip",
                ip_a,
                "--ua",
                ua,
                "--site",
                "nowhere.example",
            ],
            "no site",
        ),
    ] {
        let (ok, _, err) = subject(&args);
        assert!(!ok && err.contains(reason), "{args:?}: {err}");
    }
}
