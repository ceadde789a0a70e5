//! Ingest against a real ClickHouse, in process, with a driven clock.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration as Span, NaiveDate, Utc};
use footfall::ingest::visitor::visitor_id;
use footfall_tests::{CHROME_UA, TestApp, client, count, wait_for_count};
use serde::Deserialize;

fn start_time() -> DateTime<Utc> {
    "2026-11-20T10:00:00Z".parse().unwrap()
}

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize, clickhouse::Row)]
struct Stored {
    site_id: u32,
    timestamp: u32,
    name: String,
    hostname: String,
    pathname: String,
    visitor_id: u64,
    session_id: u64,
    referrer: String,
    referrer_source: String,
    channel: String,
    utm_medium: String,
    utm_source: String,
    utm_campaign: String,
    browser: String,
    browser_version: String,
    os: String,
    os_version: String,
    device: String,
    country_code: String,
    region: String,
    city: String,
    props_keys: Vec<String>,
    props_values: Vec<String>,
}

async fn stored(t: &TestApp) -> Vec<Stored> {
    client(&t.ch)
        .query("SELECT site_id, toUInt32(timestamp) AS timestamp, name, hostname, pathname, visitor_id, session_id, referrer, referrer_source, channel, utm_medium, utm_source, utm_campaign, browser, browser_version, os, os_version, device, country_code, region, city, props_keys, props_values FROM events ORDER BY timestamp, name")
        .fetch_all()
        .await
        .unwrap()
}

fn pageview(path: &str) -> String {
    format!(r#"{{"n":"pageview","u":"https://example.com{path}","d":"example.com","r":null}}"#)
}

#[tokio::test]
async fn pageview_lands_with_every_field() {
    let t = TestApp::start(
        "pageview_lands",
        &[("example.com", "Europe/Copenhagen")],
        start_time(),
    )
    .await;
    let body = r#"{"n":"pageview","u":"https://www.example.com/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=launch&session=secret","d":"example.com","r":"https://www.google.com/search?q=x","p":{"plan":"pro"}}"#;
    let r = t.post_event("2.2.3.77", CHROME_UA, body).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.headers().get("x-footfall-dropped").is_none());
    assert_eq!(wait_for_count(&t.ch, "1", 1, WAIT).await, 1);
    let rows = stored(&t).await;
    let e = &rows[0];
    assert_eq!((e.site_id, e.name.as_str()), (1, "pageview"));
    assert_eq!(e.timestamp as i64, start_time().timestamp());
    assert_eq!(
        (e.hostname.as_str(), e.pathname.as_str()),
        ("example.com", "/pricing")
    );
    assert_eq!(
        (e.referrer.as_str(), e.referrer_source.as_str()),
        ("google.com/search", "Google")
    );
    assert_eq!(
        e.channel, "Organic Search",
        "a search referrer outranks a non-paid UTM medium"
    );
    assert_eq!(
        (
            e.utm_medium.as_str(),
            e.utm_source.as_str(),
            e.utm_campaign.as_str()
        ),
        ("email", "newsletter", "launch")
    );
    assert_eq!(
        (e.browser.as_str(), e.browser_version.as_str()),
        ("Chrome", "131")
    );
    assert_eq!(
        (e.os.as_str(), e.os_version.as_str(), e.device.as_str()),
        ("Windows", "10", "Desktop")
    );
    assert_eq!(
        (e.country_code.as_str(), e.region.as_str(), e.city.as_str()),
        ("GB", "GB-ENG", "Boxford")
    );
    assert_eq!(
        (e.props_keys.clone(), e.props_values.clone()),
        (vec!["plan".to_string()], vec!["pro".to_string()])
    );
    // The hash is the keyed hash of (site, full IP, UA) under today's stored salt.
    let salts = t.store.salts().await.unwrap();
    let today = salts
        .iter()
        .find(|(d, _)| *d == start_time().date_naive())
        .unwrap();
    assert_eq!(
        e.visitor_id,
        visitor_id(
            &today.1,
            "example.com",
            "2.2.3.77".parse().unwrap(),
            CHROME_UA
        )
    );
    assert_ne!(e.session_id, 0);
}

#[tokio::test]
async fn sessions_end_after_thirty_minutes_and_hashes_change_daily() {
    let t = TestApp::start("sessions_daily", &[("example.com", "UTC")], start_time()).await;
    let t = &t;
    let send = |path: &str| {
        let body = pageview(path);
        async move { t.post_event("2.2.3.77", CHROME_UA, &body).await }
    };
    send("/a").await;
    t.clock.advance(Span::minutes(29));
    send("/b").await;
    t.clock.advance(Span::minutes(31));
    send("/c").await;
    assert_eq!(wait_for_count(&t.ch, "1", 3, WAIT).await, 3);
    let rows = stored(t).await;
    assert_eq!(
        rows[0].session_id, rows[1].session_id,
        "within 30 minutes: same session"
    );
    assert_ne!(
        rows[1].session_id, rows[2].session_id,
        "after 31 minutes: a new session"
    );
    assert!(
        rows.iter().all(|r| r.visitor_id == rows[0].visitor_id),
        "same visitor all day"
    );

    // Next day: a new salt, so a new hash for the same person.
    t.clock.advance(Span::days(1));
    t.app.maintenance.tick().await.unwrap();
    send("/d").await;
    assert_eq!(wait_for_count(&t.ch, "1", 4, WAIT).await, 4);
    let rows = stored(t).await;
    assert_ne!(rows[3].visitor_id, rows[0].visitor_id);
    // The new day's salt is the ratchet of the previous one.
    let salts = t.store.salts().await.unwrap();
    assert_eq!(salts.len(), 2);
    assert_eq!(salts[1].1, salts[0].1.ratchet());
}

#[tokio::test]
async fn a_session_continues_across_midnight() {
    let t = TestApp::start(
        "midnight",
        &[("example.com", "UTC")],
        "2026-11-20T23:50:00Z".parse().unwrap(),
    )
    .await;
    t.post_event("2.2.3.77", CHROME_UA, &pageview("/late"))
        .await;
    t.clock.advance(Span::minutes(20));
    t.app.maintenance.tick().await.unwrap();
    t.post_event("2.2.3.77", CHROME_UA, &pageview("/early"))
        .await;
    assert_eq!(wait_for_count(&t.ch, "1", 2, WAIT).await, 2);
    let rows = stored(&t).await;
    assert_ne!(rows[0].visitor_id, rows[1].visitor_id, "new day, new hash");
    assert_eq!(
        rows[0].session_id, rows[1].session_id,
        "but the visit goes on"
    );
}

#[tokio::test]
async fn bots_spam_and_unknown_sites_are_dropped_with_reasons() {
    let t = TestApp::start("drops", &[("example.com", "UTC")], start_time()).await;
    let cases = [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", pageview("/"), "bot"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36", pageview("/"), "bot"),
        ("", pageview("/"), "bot"),
        (CHROME_UA, r#"{"n":"pageview","u":"https://other.org/","d":"other.org"}"#.to_string(), "unknown_site"),
        (CHROME_UA, r#"{"n":"pageview","u":"https://example.com/","d":"example.com","r":"https://semalt.com/"}"#.to_string(), "spam_referrer"),
    ];
    for (ua, body, reason) in &cases {
        let r = t.post_event("2.2.3.77", ua, body).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(r.headers()["x-footfall-dropped"], *reason, "{ua} {body}");
    }
    // One real event afterwards proves the writer ran; none of the dropped ones is there.
    t.post_event("2.2.3.77", CHROME_UA, &pageview("/real"))
        .await;
    assert_eq!(wait_for_count(&t.ch, "1", 1, WAIT).await, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&t.ch, "1").await, 1);
    let metrics = t.app.state.metrics.render();
    assert!(
        metrics.contains("footfall_events_dropped_total{reason=\"bot\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("footfall_events_dropped_total{reason=\"unknown_site\"} 1"));
    assert!(metrics.contains("footfall_events_dropped_total{reason=\"spam_referrer\"} 1"));
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_nothing_is_written() {
    let t = TestApp::start("bad_input", &[("example.com", "UTC")], start_time()).await;
    let cases: Vec<(String, StatusCode, &str)> = vec![
        ("{oops".into(), StatusCode::BAD_REQUEST, "not valid JSON"),
        (
            r#"{"u":"https://example.com/"}"#.into(),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (r#"{"n":"pageview"}"#.into(), StatusCode::BAD_REQUEST, "url"),
        (
            r#"{"n":"pageview","u":"data:text/html,hi","d":"example.com"}"#.into(),
            StatusCode::BAD_REQUEST,
            "http",
        ),
        (
            r#"{"n":"pageview","u":"https://example.com/","p":{"a":[1]}}"#.into(),
            StatusCode::BAD_REQUEST,
            "flat",
        ),
        (
            format!(
                r#"{{"n":"pageview","u":"https://example.com/","p":{{"k":"{}"}}}}"#,
                "x".repeat(9000)
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        ),
    ];
    for (body, status, needle) in &cases {
        let r = t.post_event("2.2.3.77", CHROME_UA, body).await;
        assert_eq!(r.status(), *status, "{body:.80}");
        let bytes = axum::body::to_bytes(r.into_body(), 10_000).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(json["error"].as_str().unwrap().contains(needle), "{json}");
    }
    let invalid_utf8 = Request::post("/api/event")
        .header("user-agent", CHROME_UA)
        .body(Body::from(vec![b'{', 0xff, b'}']))
        .unwrap();
    assert_eq!(
        t.send("2.2.3.77", invalid_utf8).await.status(),
        StatusCode::BAD_REQUEST
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&t.ch, "1").await, 0);
}

#[tokio::test]
async fn pixel_stores_and_answers_a_gif_even_when_dropped() {
    let t = TestApp::start("pixel", &[("example.com", "UTC")], start_time()).await;
    let req = |query: &str, ua: &str| {
        Request::get(format!("/api/event.gif?{query}"))
            .header("user-agent", ua)
            .body(Body::empty())
            .unwrap()
    };
    let r = t
        .send(
            "2.2.3.77",
            req(
                "n=pageview&u=https%3A%2F%2Fexample.com%2Fnewsletter&d=example.com",
                CHROME_UA,
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/gif");
    let r = t
        .send(
            "2.2.3.77",
            req(
                "n=pageview&u=https%3A%2F%2Fexample.com%2F&d=example.com",
                "curl/8.0",
            ),
        )
        .await;
    assert_eq!(r.headers()["content-type"], "image/gif");
    assert_eq!(r.headers()["x-footfall-dropped"], "bot");
    let bytes = axum::body::to_bytes(r.into_body(), 1000).await.unwrap();
    assert!(bytes.starts_with(b"GIF89a"));
    assert_eq!(
        wait_for_count(&t.ch, "pathname = '/newsletter'", 1, WAIT).await,
        1
    );
}

#[tokio::test]
async fn trusted_proxy_header_is_used_only_from_the_proxy() {
    let ch = footfall_tests::fresh_database(&footfall_tests::clickhouse_url(), "proxies").await;
    let store: std::sync::Arc<dyn footfall::store::Store> =
        std::sync::Arc::new(footfall::store::clickhouse_store::ClickHouseStore::new(&ch));
    store.migrate().await.unwrap();
    store.add_site("example.com", "UTC").await.unwrap();
    let mut config = footfall_tests::test_config(ch.clone());
    config.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let clock = footfall::clock::ManualClock::new(start_time());
    let app = footfall::cli::serve::App::start(&config, store.clone(), clock.clone())
        .await
        .unwrap();
    let t = TestApp {
        app,
        store,
        clock,
        ch,
    };
    let forwarded = |path: &str| {
        Request::post("/api/event")
            .header("user-agent", CHROME_UA)
            .header("x-forwarded-for", "175.16.199.9")
            .body(Body::from(pageview(path)))
            .unwrap()
    };
    t.send("10.1.2.3", forwarded("/via-proxy")).await;
    t.send("2.2.3.77", forwarded("/direct")).await;
    assert_eq!(wait_for_count(&t.ch, "1", 2, WAIT).await, 2);
    let rows = stored(&t).await;
    let by_path = |p: &str| rows.iter().find(|r| r.pathname == p).unwrap();
    assert_eq!(by_path("/via-proxy").city, "Changchun");
    assert_eq!(
        by_path("/direct").city,
        "Boxford",
        "a spoofed header from a non-proxy is ignored"
    );
}

#[tokio::test]
async fn salts_are_deleted_after_48_hours_and_purge_drops_old_days() {
    let t = TestApp::start("salts_retention", &[("example.com", "UTC")], start_time()).await;
    let first_day: NaiveDate = start_time().date_naive();
    let first_salt = t.store.salts().await.unwrap()[0].1.clone();
    t.post_event("2.2.3.77", CHROME_UA, &pageview("/old")).await;
    assert_eq!(wait_for_count(&t.ch, "1", 1, WAIT).await, 1);

    t.clock.advance(Span::days(1));
    t.app.maintenance.tick().await.unwrap();
    assert!(
        t.store
            .salts()
            .await
            .unwrap()
            .iter()
            .any(|(d, _)| *d == first_day),
        "kept for midnight sessions"
    );

    t.clock.advance(Span::days(1));
    t.app.maintenance.tick().await.unwrap();
    let salts = t.store.salts().await.unwrap();
    assert!(
        salts.iter().all(|(d, _)| *d > first_day),
        "48 hours on, the first salt is gone"
    );
    let hex: String = first_salt.0.iter().map(|b| format!("{b:02x}")).collect();
    for (table, text) in footfall_tests::dump_tables(&t.ch).await {
        assert!(!text.contains(&hex), "salt still readable in {table}");
    }
    if let Ok(dir) = std::env::var("FOOTFALL_TEST_CLICKHOUSE_DIR") {
        let found = std::process::Command::new("grep")
            .args(["-rl", &hex, &dir])
            .output()
            .unwrap();
        assert!(
            found.stdout.is_empty(),
            "salt bytes remain on disk: {}",
            String::from_utf8_lossy(&found.stdout)
        );
    }

    // Retention (30 days): an event 30 days old stays; at 31 days its partition is dropped.
    t.clock.advance(Span::days(28));
    assert_eq!(t.app.maintenance.purge().await.unwrap(), 0);
    assert_eq!(count(&t.ch, "1").await, 1);
    t.clock.advance(Span::days(1));
    assert_eq!(t.app.maintenance.purge().await.unwrap(), 1);
    assert_eq!(count(&t.ch, "1").await, 0);
}

#[tokio::test]
async fn cors_preflight_allows_post_from_any_origin_without_credentials() {
    let t = TestApp::start("cors", &[("example.com", "UTC")], start_time()).await;
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/api/event")
        .header("origin", "https://example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .unwrap();
    let r = t.send("2.2.3.77", preflight).await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(
        r.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        r.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
}
