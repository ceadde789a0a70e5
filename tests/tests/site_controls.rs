//! A site owner's controls, on every store: exclusions that drop requests before anything is
//! hashed (`footfall site rules`), retention per site enforced by the hourly purge and
//! followed by the planner, and purging a site's events by page or by date, resetting its
//! statistics and deleting it (`footfall site purge|reset|delete`). Every figure is checked
//! against a count of what the test sent or stored.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use chrono::{Days, NaiveDate, Utc};
use footfall::store::{EventRow, RollupRow};
use footfall_tests::{Backend, TestApp, TestStore, footfall_command, policy};
use serde_json::{Value, json};

footfall_tests::all_stores!(
    a_sites_exclusions_drop_requests_before_they_are_hashed,
    a_sites_shorter_retention_is_enforced_and_followed,
    a_site_is_purged_by_page_and_date_then_reset_and_deleted
);

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

fn run(env: &[(String, String)], args: &[&str]) -> String {
    let (ok, out, err) = footfall_command(env, args);
    assert!(ok, "{args:?}: {err}");
    out
}

fn fails(env: &[(String, String)], args: &[&str], says: &str) {
    let (ok, out, err) = footfall_command(env, args);
    assert!(!ok, "{args:?} was accepted: {out}");
    assert!(err.contains(says), "{args:?}: {err}");
}

async fn metrics(t: &TestApp) -> String {
    let r = t
        .send(
            "127.0.0.1",
            Request::get("/metrics").body(Body::empty()).unwrap(),
        )
        .await;
    let bytes = axum::body::to_bytes(r.into_body(), 1_000_000)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn dropped(metrics: &str, reason: &str) -> u64 {
    let key = format!("footfall_events_dropped_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} missing in {metrics}"))
}

async fn a_sites_exclusions_drop_requests_before_they_are_hashed(b: Backend) {
    let t = TestApp::start(
        b,
        "exclusions",
        &[("example.com", "UTC"), ("other.org", "UTC")],
        Utc::now(),
    )
    .await;
    // As `footfall serve` does: commands reach the collector through its control socket
    // (on DuckDB it alone may open the events file).
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    footfall::control::serve(&t.t.config.data_dir, t.app.maintenance.clone(), stopped)
        .await
        .unwrap();
    let env = t.t.env();
    let out = run(
        &env,
        &[
            "site",
            "rules",
            "example.com",
            "--exclude-ip",
            "198.51.100.0/24",
            "--exclude-ip",
            "2001:db8::/32",
            "--exclude-country",
            "cn",
            "--exclude-page",
            "/admin/*",
            "--exclude-page",
            "*/preview",
            "--allow-hostname",
            "example.com",
            "--allow-hostname",
            "*.example.com",
        ],
    );
    assert!(
        out.contains("excluded addresses\t198.51.100.0/24 2001:db8::/32")
            && out.contains("excluded countries\tCN")
            && out.contains("allowed host names\texample.com *.example.com"),
        "{out}"
    );
    // Mistakes are named, and nothing is saved.
    fails(
        &env,
        &["site", "rules", "example.com", "--exclude-ip", "300.1.1.1"],
        "not an IP address",
    );
    fails(
        &env,
        &[
            "site",
            "rules",
            "example.com",
            "--exclude-country",
            "Sweden",
        ],
        "two-letter",
    );
    fails(&env, &["site", "rules", "nowhere.net"], "no site");
    t.app.maintenance.tick().await.unwrap();
    let before = dropped(&metrics(&t).await, "excluded");

    // (peer, url, stored on example.com?): 2.2.3.0/24 is GB and 175.16.199.0/24 CN in
    // MaxMind's test GeoIP file.
    let cases = [
        ("2.2.3.1", "https://example.com/", true),
        ("2.2.3.2", "https://shop.example.com/cart", true),
        ("2.2.3.3", "https://example.com/blog/post", true),
        ("198.51.100.7", "https://example.com/", false),
        ("[2001:db8:5::1]", "https://example.com/", false),
        ("175.16.199.9", "https://example.com/", false),
        ("2.2.3.4", "https://example.com/admin/users", false),
        ("2.2.3.5", "https://example.com/blog/post/preview", false),
        ("2.2.3.6", "https://staging.example.net/", false),
        ("2.2.3.7", "https://example.com.evil.net/", false),
        ("2.2.3.8", "https://example.com/admin", true),
    ];
    for (peer, url, _) in &cases {
        let body = json!({"n": "pageview", "u": url, "d": "example.com"}).to_string();
        let r = t.post_event(peer, CHROME, &body).await;
        assert!(r.status().is_success(), "{peer} {url}: {}", r.status());
    }
    // The same excluded address on a site without rules is recorded.
    let body = json!({"n": "pageview", "u": "https://other.org/", "d": "other.org"}).to_string();
    assert!(
        t.post_event("198.51.100.7", CHROME, &body)
            .await
            .status()
            .is_success()
    );
    let kept: Vec<&str> = cases
        .iter()
        .filter(|(_, _, kept)| *kept)
        .map(|(_, url, _)| *url)
        .collect();
    let events =
        t.t.wait_for_events(kept.len() + 1, std::time::Duration::from_secs(30))
            .await;
    let site = t.t.site("example.com").await;
    let mut stored: Vec<String> = events
        .iter()
        .filter(|e| e.site_id == site.id)
        .map(|e| format!("https://{}{}", e.hostname, e.pathname))
        .collect();
    stored.sort();
    let mut want: Vec<String> = kept.iter().map(|u| u.to_string()).collect();
    want.sort();
    assert_eq!(stored, want);
    assert_eq!(events.len(), kept.len() + 1, "other.org keeps its event");
    let excluded = (cases.len() - kept.len()) as u64;
    assert_eq!(dropped(&metrics(&t).await, "excluded") - before, excluded);

    // An imported access log meets the same exclusions (through the running collector).
    let day = Utc::now() - chrono::Duration::days(3);
    let stamp = day.format("%d/%b/%Y:12:00:00 +0000");
    let log = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        log.path(),
        format!(
            "198.51.100.9 - - [{stamp}] \"GET /imported-excluded HTTP/1.1\" 200 512 \"-\" \"{CHROME}\"\n\
             2.2.3.9 - - [{stamp}] \"GET /imported HTTP/1.1\" 200 512 \"-\" \"{CHROME}\"\n"
        ),
    )
    .unwrap();
    let out = run(
        &env,
        &[
            "import",
            "access-log",
            "--site",
            "example.com",
            &log.path().display().to_string(),
        ],
    );
    assert!(
        out.contains("read 2 lines, imported 1 pageviews") && out.contains("excluded 1"),
        "{out}"
    );

    // Clearing the rules records the excluded address again.
    run(&env, &["site", "rules", "example.com", "--clear"]);
    t.app.maintenance.tick().await.unwrap();
    let body =
        json!({"n": "pageview", "u": "https://example.com/again", "d": "example.com"}).to_string();
    t.post_event("198.51.100.7", CHROME, &body).await;
    // Both writes reach the store (on DuckDB the test reads a copy of the collector's file, so
    // it waits for the pages themselves, not only for a count).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let events = loop {
        let events = t.t.events().await;
        let has = |p: &str| events.iter().any(|e| e.pathname == p);
        if has("/imported") && has("/again") {
            break events;
        }
        let pages: Vec<&str> = events.iter().map(|e| e.pathname.as_str()).collect();
        assert!(std::time::Instant::now() < deadline, "stored: {pages:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(!events.iter().any(|e| e.pathname == "/imported-excluded"));
    assert_eq!(events.len(), kept.len() + 3);
    t.app.shutdown().await;
}

fn day_ago(n: u64) -> NaiveDate {
    Utc::now().date_naive() - Days::new(n)
}

fn event(site_id: u32, day: NaiveDate, visitor: u64, path: &str) -> EventRow {
    EventRow {
        site_id,
        timestamp: day.and_hms_opt(12, 0, 0).unwrap().and_utc().timestamp() as u32
            + visitor as u32 % 3600,
        name: "pageview".into(),
        hostname: "example.org".into(),
        pathname: path.into(),
        visitor_id: visitor,
        session_id: visitor,
        entry_page: path.into(),
        browser: "Chrome".into(),
        scroll_depth: 255,
        ..EventRow::default()
    }
}

async fn ask(t: &TestApp, key: &str, q: Value) -> Value {
    let req = Request::post("/api/v2/query")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(q.to_string()))
        .unwrap();
    let r = t.send("127.0.0.1", req).await;
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 10_000_000)
        .await
        .unwrap();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap()
}

async fn a_sites_shorter_retention_is_enforced_and_followed(b: Backend) {
    // Visitors per day, 3, 10 and 20 days ago, on both sites.
    let days = [(3, 4u64), (10, 5), (20, 6)];
    let t = TestApp::start(
        b,
        "site_retention",
        &[("example.org", "UTC"), ("other.org", "UTC")],
        Utc::now(),
    )
    .await;
    let (a, other) = (t.t.site("example.org").await, t.t.site("other.org").await);
    let mut rows = Vec::new();
    for (ago, n) in days {
        for v in 0..n {
            rows.push(event(a.id, day_ago(ago), ago * 100 + v, "/"));
            rows.push(event(other.id, day_ago(ago), ago * 100 + v, "/"));
        }
    }
    t.t.store.insert_events(Arc::from(rows)).await.unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    footfall::control::serve(&t.t.config.data_dir, t.app.maintenance.clone(), stopped)
        .await
        .unwrap();
    let env = t.t.env();
    fails(
        &env,
        &["site", "rules", "example.org", "--raw-days", "31"],
        "1 to 30 days",
    );
    fails(
        &env,
        &["site", "rules", "example.org", "--aggregate-days", "5"],
        "shorter than the 30 days",
    );
    let out = run(
        &env,
        &[
            "site",
            "rules",
            "example.org",
            "--raw-days",
            "7",
            "--aggregate-days",
            "15",
        ],
    );
    assert!(
        out.contains("raw events kept\t7 days\n") && out.contains("daily totals kept\t15 days\n"),
        "{out}"
    );
    // The notice states the site's own retention.
    let notice = run(&env, &["privacy-notice", "--site", "example.org"]);
    assert!(
        notice.contains("with the daily code): 7 days, then deleted automatically."),
        "{notice}"
    );
    t.app.maintenance.tick().await.unwrap();
    // The hourly purge: rollups first, then each site's retention.
    t.app.maintenance.purge().await.unwrap();

    let stored = t.t.events().await;
    let left = |site: u32| {
        let mut d: Vec<NaiveDate> = stored
            .iter()
            .filter(|e| e.site_id == site)
            .map(|e| {
                chrono::DateTime::from_timestamp(i64::from(e.timestamp), 0)
                    .unwrap()
                    .date_naive()
            })
            .collect();
        d.sort();
        d.dedup();
        d
    };
    assert_eq!(left(a.id), [day_ago(3)], "raw events past 7 days go");
    assert_eq!(
        left(other.id),
        [day_ago(20), day_ago(10), day_ago(3)],
        "the other site keeps the server's 30 days"
    );
    let rolled = |site: u32| {
        let store = t.t.store.clone();
        async move {
            store
                .rollup_days(site, day_ago(60), day_ago(1))
                .await
                .unwrap()
        }
    };
    // Every closed day within raw retention has its totals (zero on days without visits).
    assert_eq!(
        rolled(a.id).await.first(),
        Some(&day_ago(15)),
        "totals past 15 days go"
    );
    let kept = rolled(other.id).await;
    assert!(
        kept.first() <= Some(&day_ago(20)) && kept.contains(&day_ago(20)),
        "{kept:?}"
    );

    // The planner reads example.org's days before its 7 days from the rollups (not from raw
    // events, which are gone): visitors over the last 14 days are 10 and 3 days ago's.
    let key = footfall::apikey::generate(a.id, 0);
    t.t.store.meta().add_api_key(&key.record).await.unwrap();
    let answer = ask(
        &t,
        &key.secret,
        json!({"site_id": "example.org", "metrics": ["visitors", "pageviews"],
            "date_range": [day_ago(14).to_string(), day_ago(1).to_string()]}),
    )
    .await;
    assert_eq!(
        answer["results"][0]["metrics"],
        json!([5 + 4, 5 + 4]),
        "{answer}"
    );
    // A second purge finds nothing more to delete.
    t.app.maintenance.purge().await.unwrap();
    assert_eq!(t.t.events().await.len(), stored.len());
    // With a collector running, a purge goes through it (on DuckDB it holds the file).
    let day3 = day_ago(3).to_string();
    let out = run(
        &t.t.env(),
        &["site", "purge", "other.org", "--from", &day3, "--to", &day3],
    );
    assert!(out.contains("deleted 4 raw event(s)"), "{out}");
    let stored = t.t.events().await;
    assert_eq!(
        stored.iter().filter(|e| e.site_id == other.id).count(),
        5 + 6
    );
    assert_eq!(stored.iter().filter(|e| e.site_id == a.id).count(), 4);
    t.app.shutdown().await;
}

fn rollup(site_id: u32, day: NaiveDate, dimension: &str, value: &str, n: u64) -> RollupRow {
    RollupRow {
        site_id,
        day,
        dimension: dimension.into(),
        value: value.into(),
        visitors: n,
        visits: n,
        pageviews: n,
        ..RollupRow::default()
    }
}

async fn a_site_is_purged_by_page_and_date_then_reset_and_deleted(b: Backend) {
    let t = TestStore::new(b, "site_purge").await;
    for d in ["example.org", "other.org"] {
        run(&t.env(), &["site", "add", d, "--timezone", "UTC"]);
    }
    let (a, other) = (t.site("example.org").await, t.site("other.org").await);
    let (two, one, old) = (day_ago(2), day_ago(1), day_ago(40));
    // Two days of raw events (one visitor per event), and on other.org a secret page too.
    let pages_two = ["/", "/secret/a", "/secret/b", "/docs", "/", "/secret/a"];
    let pages_one = ["/", "/secret/a", "/pricing"];
    let mut rows = Vec::new();
    for (i, p) in pages_two.iter().enumerate() {
        rows.push(event(a.id, two, 1000 + i as u64, p));
    }
    for (i, p) in pages_one.iter().enumerate() {
        rows.push(event(a.id, one, 2000 + i as u64, p));
    }
    rows.push(event(other.id, two, 3000, "/secret/a"));
    t.store.insert_events(Arc::from(rows)).await.unwrap();
    footfall::query::rollup::roll_up_closed_days(t.store.as_ref(), &policy(), usize::MAX)
        .await
        .unwrap();
    // A day 40 days ago has only its daily totals (its raw events are past retention).
    t.store
        .put_rollups(&[
            rollup(a.id, old, "", "", 7),
            rollup(a.id, old, "event:page", "/", 4),
            rollup(a.id, old, "event:page", "/secret/old", 3),
            rollup(a.id, old, "visit:entry_page", "/secret/old", 3),
            rollup(a.id, old, "visit:source", "Direct / None", 7),
        ])
        .await
        .unwrap();
    let values = |dimension: &'static str, from: NaiveDate, to: NaiveDate| {
        let store = t.store.clone();
        async move {
            let mut v: Vec<(NaiveDate, String, u64)> = store
                .read_rollups(a.id, dimension, from, to)
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.day, r.value, r.pageviews))
                .collect();
            v.sort();
            v
        }
    };
    let totals = |day: NaiveDate| {
        let store = t.store.clone();
        async move {
            store
                .read_rollups(a.id, "", day, day)
                .await
                .unwrap()
                .first()
                .map(|r| r.pageviews)
        }
    };
    assert_eq!(totals(two).await, Some(6));

    // Mistakes are named and delete nothing.
    fails(&t.env(), &["site", "purge", "example.org"], "name a page");
    fails(
        &t.env(),
        &["site", "purge", "example.org", "--path", "secret"],
        "starts with / or *",
    );
    fails(
        &t.env(),
        &[
            "site",
            "purge",
            "example.org",
            "--from",
            &one.to_string(),
            "--to",
            &two.to_string(),
        ],
        "after it ends",
    );
    fails(
        &t.env(),
        &["site", "purge", "example.org", "--from", "yesterday"],
        "invalid",
    );
    fails(&t.env(), &["site", "reset", "example.org"], "--yes");
    fails(&t.env(), &["site", "delete", "example.org"], "--yes");
    assert_eq!(
        t.events().await.len(),
        pages_two.len() + pages_one.len() + 1
    );

    // By page: the secret pages' events go on example.org only; the closed days with raw
    // events are counted again, and the older day loses the secret page's rows.
    let out = run(
        &t.env(),
        &["site", "purge", "example.org", "--path", "/secret/*"],
    );
    assert!(
        out.contains("the events of 2 page path(s)")
            && out.contains("the daily totals of 1 day(s)")
            && out.contains("the daily totals of 2 closed day(s) were computed again"),
        "{out}"
    );
    let is_secret = |p: &&str| p.starts_with("/secret/");
    let left: Vec<(u32, String)> = t
        .events()
        .await
        .into_iter()
        .map(|e| (e.site_id, e.pathname))
        .collect();
    let secret_left: Vec<&(u32, String)> = left
        .iter()
        .filter(|(_, p)| p.starts_with("/secret/"))
        .collect();
    assert_eq!(secret_left, [&(other.id, "/secret/a".to_string())]);
    let kept_two = pages_two.iter().filter(|p| !is_secret(p)).count() as u64;
    let kept_one = pages_one.iter().filter(|p| !is_secret(p)).count() as u64;
    assert_eq!(totals(two).await, Some(kept_two));
    assert_eq!(totals(one).await, Some(kept_one));
    assert_eq!(
        values("event:page", two, one).await,
        [
            (two, "/".to_string(), 2),
            (two, "/docs".to_string(), 1),
            (one, "/".to_string(), 1),
            (one, "/pricing".to_string(), 1),
        ]
    );
    assert_eq!(
        values("event:page", old, old).await,
        [(old, "/".to_string(), 4)]
    );
    assert!(values("visit:entry_page", old, old).await.is_empty());
    assert_eq!(
        totals(old).await,
        Some(7),
        "an old day's totals cannot be counted again"
    );

    // By date: yesterday's events, visit rows and totals go; the day before stays.
    let out = run(
        &t.env(),
        &[
            "site",
            "purge",
            "example.org",
            "--from",
            &one.to_string(),
            "--to",
            &one.to_string(),
        ],
    );
    assert!(
        out.contains(&format!(
            "deleted {kept_one} raw event(s), the daily totals of 1 day(s)"
        )),
        "{out}"
    );
    assert_eq!(totals(one).await, None);
    assert_eq!(totals(two).await, Some(kept_two));
    let on_a = |events: &[EventRow]| events.iter().filter(|e| e.site_id == a.id).count() as u64;
    assert_eq!(on_a(&t.events().await), kept_two);

    // Things a reset keeps and a deletion takes: a goal, a key, a link, a viewer, an import.
    run(
        &t.env(),
        &["goal", "add", "--site", "example.org", "--event", "Signup"],
    );
    run(
        &t.env(),
        &["site", "rules", "example.org", "--raw-days", "14"],
    );
    let key = footfall::apikey::generate(a.id, 0);
    t.store.meta().add_api_key(&key.record).await.unwrap();
    footfall::accounts::create_share(t.store.as_ref(), a.id, "public", None, 0)
        .await
        .unwrap();
    footfall::accounts::put_user(
        t.store.as_ref(),
        &footfall::accounts::User {
            email: "viewer@example.org".into(),
            password_hash: String::new(),
            role: footfall::accounts::Role::Viewer,
            sites: vec![a.id, other.id],
            created_at: 0,
        },
    )
    .await
    .unwrap();
    let import_id = 0x8000_0001u32;
    let import = footfall::import::plausible::ImportRecord {
        id: import_id,
        site_id: a.id,
        source: "plausible".into(),
        origin: "export.zip".into(),
        first_day: old,
        last_day: old,
        days: 1,
        rows: 1,
        dimensions: Vec::new(),
        created_at: 0,
        complete: true,
    };
    t.store
        .meta()
        .put_record(
            footfall::import::plausible::IMPORT_KIND,
            &import_id.to_string(),
            &serde_json::to_string(&import).unwrap(),
        )
        .await
        .unwrap();
    t.store
        .put_rollups(&[rollup(import_id, old, "", "", 9)])
        .await
        .unwrap();

    let out = run(&t.env(), &["site", "reset", "example.org", "--yes"]);
    assert!(
        out.contains(&format!("deleted {kept_two} raw event(s)")) && out.contains("1 import(s)"),
        "{out}"
    );
    assert_eq!(on_a(&t.events().await), 0);
    assert_eq!(t.events().await.len(), 1, "other.org keeps its event");
    let everything = (NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(), day_ago(0));
    for id in [a.id, import_id] {
        assert!(
            t.store
                .rollup_days(id, everything.0, everything.1)
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert!(
        footfall::import::plausible::imports_of(t.store.as_ref(), a.id, false)
            .await
            .unwrap()
            .is_empty()
    );
    let goals = run(&t.env(), &["goal", "list", "--site", "example.org"]);
    assert!(goals.contains("Signup"), "a reset keeps the goals: {goals}");

    let out = run(&t.env(), &["site", "delete", "example.org", "--yes"]);
    assert!(
        out.contains("1 goal(s), 1 shared link(s), 1 viewer grant(s)"),
        "{out}"
    );
    let sites: Vec<String> = t
        .store
        .meta()
        .sites()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.domain)
        .collect();
    assert_eq!(sites, ["other.org"]);
    assert!(
        !t.store
            .meta()
            .api_keys()
            .await
            .unwrap()
            .iter()
            .any(|k| k.site_id == a.id)
    );
    assert!(
        footfall::accounts::shares(t.store.as_ref())
            .await
            .unwrap()
            .is_empty()
    );
    let viewer = footfall::accounts::user(t.store.as_ref(), "viewer@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(viewer.sites, [other.id]);
    assert!(
        footfall::goals::goals_of(t.store.as_ref(), a.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        footfall::sites::settings_of(t.store.as_ref(), a.id)
            .await
            .unwrap(),
        footfall::sites::SiteSettings::default()
    );
    fails(
        &t.env(),
        &["site", "purge", "example.org", "--path", "/"],
        "no site",
    );
    // The same domain can be added again, under a new id.
    run(
        &t.env(),
        &["site", "add", "example.org", "--timezone", "UTC"],
    );
    let again = t.site("example.org").await;
    assert!(again.id > other.id && again.id != a.id, "{again:?}");
    assert_eq!(t.events().await.len(), 1);
}
