//! Ingest end to end, in process, with a driven clock: every test runs on both stores.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration as Span, NaiveDate, Utc};
use footfall::ingest::visitor::visitor_id;
use footfall_tests::{Backend, CHROME_UA, TestApp, both_stores};

both_stores!(
    pageview_lands_with_every_field,
    sessions_end_after_thirty_minutes_and_hashes_change_daily,
    a_session_continues_across_midnight,
    an_event_is_hashed_with_its_own_days_salt,
    bots_spam_and_unknown_sites_are_dropped_with_reasons,
    bad_input_gets_a_clear_error_and_nothing_is_written,
    pixel_stores_and_answers_a_gif_even_when_dropped,
    trusted_proxy_header_is_used_only_from_the_proxy,
    only_the_header_the_proxy_sets_names_the_client,
    open_visits_are_capped_when_a_client_changes_its_user_agent,
    metrics_ask_for_the_token_when_one_is_set,
    damaged_spool_tails_go_with_raw_retention,
    salts_are_deleted_after_48_hours_and_purge_drops_old_days,
    cors_preflight_allows_post_from_any_origin_without_credentials,
);

const WAIT: Duration = Duration::from_secs(10);

fn start_time() -> DateTime<Utc> {
    "2026-11-20T10:00:00Z".parse().unwrap()
}

fn pageview(path: &str) -> String {
    format!(r#"{{"n":"pageview","u":"https://example.com{path}","d":"example.com","r":null}}"#)
}

async fn pageview_lands_with_every_field(b: Backend) {
    let t = TestApp::start(
        b,
        "pageview_lands",
        &[("example.com", "Europe/Copenhagen")],
        start_time(),
    )
    .await;
    let body = r#"{"n":"pageview","u":"https://www.example.com/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=launch&session=secret","d":"example.com","r":"https://www.google.com/search?q=x","w":1280,"p":{"plan":"pro"},"$":{"amount":"9.99","currency":"EUR"}}"#;
    let r = t.post_event("2.2.3.77", CHROME_UA, body).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.headers().get("x-footfall-dropped").is_none());
    let rows = t.t.wait_for_events(1, WAIT).await;
    assert_eq!(rows.len(), 1);
    let e = &rows[0];
    assert_eq!((e.site_id, e.name.as_str()), (1, "pageview"));
    assert_eq!(i64::from(e.timestamp), start_time().timestamp());
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
    assert_eq!(
        (e.revenue_micros, e.revenue_currency.as_str()),
        (9_990_000, "EUR")
    );
    assert_eq!(
        (e.screen_width, e.interactive, e.scroll_depth),
        (1280, 1, 255)
    );
    // The hash is the keyed hash of (site, full IP, UA) under today's stored salt.
    let salts = t.t.store.meta().salts().await.unwrap();
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

async fn sessions_end_after_thirty_minutes_and_hashes_change_daily(b: Backend) {
    let t = TestApp::start(b, "sessions_daily", &[("example.com", "UTC")], start_time()).await;
    let send = |path: &str| {
        let body = pageview(path);
        let t = &t;
        async move { t.post_event("2.2.3.77", CHROME_UA, &body).await }
    };
    send("/a").await;
    t.clock.advance(Span::minutes(29));
    send("/b").await;
    t.clock.advance(Span::minutes(31));
    send("/c").await;
    let rows = t.t.wait_for_events(3, WAIT).await;
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
    let rows = t.t.wait_for_events(4, WAIT).await;
    assert_ne!(rows[3].visitor_id, rows[0].visitor_id);
    // The new day's salt is drawn on its own: not the old ratchet of the previous one
    // (`derive_key` of it), which would let one leaked salt unmask every later day.
    let salts = t.t.store.meta().salts().await.unwrap();
    assert_eq!(salts.len(), 2);
    assert_ne!(salts[1].1, salts[0].1);
    let old_ratchet =
        blake3::derive_key("footfall 2026-11 daily visitor salt ratchet", &salts[0].1.0);
    assert_ne!(salts[1].1.0, old_ratchet);
}

/// Each day's salt is drawn an hour before the day, so the first events after UTC midnight
/// are hashed with their own day's salt even before the next maintenance round (or through a
/// store outage); a day whose salt is not held drops its events as `no_salt` rather than
/// hashing them with another day's.
async fn an_event_is_hashed_with_its_own_days_salt(b: Backend) {
    let t = TestApp::start(
        b,
        "own_day_salt",
        &[("example.com", "UTC")],
        "2026-11-20T23:40:00Z".parse().unwrap(),
    )
    .await;
    let day = |s: &str| s.parse::<NaiveDate>().unwrap();
    let salts = t.t.store.meta().salts().await.unwrap();
    let of = |d: NaiveDate| salts.iter().find(|(x, _)| *x == d).unwrap().1.clone();
    assert_eq!(
        salts.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
        vec![day("2026-11-20"), day("2026-11-21")],
        "tomorrow's salt exists from 23:00"
    );
    t.post_event("2.2.3.77", CHROME_UA, &pageview("/late"))
        .await;
    // Past midnight, with no maintenance round since 23:40.
    t.clock.advance(Span::minutes(25));
    let r = t
        .post_event("2.2.3.77", CHROME_UA, &pageview("/early"))
        .await;
    assert!(r.headers().get("x-footfall-dropped").is_none());
    let rows = t.t.wait_for_barrier("/early", WAIT).await;
    let ip = "2.2.3.77".parse().unwrap();
    let late = rows.iter().find(|e| e.pathname == "/late").unwrap();
    let early = rows.iter().find(|e| e.pathname == "/early").unwrap();
    assert_eq!(
        late.visitor_id,
        visitor_id(&of(day("2026-11-20")), "example.com", ip, CHROME_UA)
    );
    assert_eq!(
        early.visitor_id,
        visitor_id(&of(day("2026-11-21")), "example.com", ip, CHROME_UA)
    );
    assert_eq!(
        late.session_id, early.session_id,
        "the visit goes on across midnight"
    );
    // A day later still without maintenance (a store outage): no salt for the 22nd is held,
    // so its events are dropped, not hashed with the 21st's.
    t.clock.advance(Span::days(1));
    let r = t
        .post_event("2.2.3.77", CHROME_UA, &pageview("/outage"))
        .await;
    assert_eq!(r.headers()["x-footfall-dropped"], "no_salt");
}

async fn a_session_continues_across_midnight(b: Backend) {
    let t = TestApp::start(
        b,
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
    let rows = t.t.wait_for_events(2, WAIT).await;
    assert_ne!(rows[0].visitor_id, rows[1].visitor_id, "new day, new hash");
    assert_eq!(
        rows[0].session_id, rows[1].session_id,
        "but the visit goes on"
    );
}

async fn bots_spam_and_unknown_sites_are_dropped_with_reasons(b: Backend) {
    let t = TestApp::start(b, "drops", &[("example.com", "UTC")], start_time()).await;
    let cases = [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", pageview("/"), "bot"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36", pageview("/"), "bot"),
        ("", pageview("/"), "bot"),
        (CHROME_UA, r#"{"n":"pageview","u":"https://other.org/","d":"other.org"}"#.to_string(), "unknown_site"),
        (CHROME_UA, r#"{"n":"pageview","u":"https://example.com/","d":"example.com","r":"https://semalt.com/"}"#.to_string(), "spam_referrer"),
        (CHROME_UA, r#"{"n":"engagement","u":"https://example.com/","d":"example.com","e":1000}"#.to_string(), "no_session"),
    ];
    for (ua, body, reason) in &cases {
        let r = t.post_event("2.2.3.77", ua, body).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(r.headers()["x-footfall-dropped"], *reason, "{ua} {body}");
    }
    // A barrier: one real event afterwards. Events are written in the order they were
    // accepted, so once it is stored, none of the dropped ones can still arrive.
    t.post_event("2.2.3.77", CHROME_UA, &pageview("/real"))
        .await;
    let rows = t.t.wait_for_barrier("/real", WAIT).await;
    assert_eq!(
        rows.iter().map(|e| e.pathname.as_str()).collect::<Vec<_>>(),
        vec!["/real"]
    );
    let metrics = t.app.state.metrics.render();
    for line in [
        "footfall_events_dropped_total{reason=\"bot\"} 3",
        "footfall_events_dropped_total{reason=\"unknown_site\"} 1",
        "footfall_events_dropped_total{reason=\"spam_referrer\"} 1",
        "footfall_events_dropped_total{reason=\"no_session\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
}

async fn bad_input_gets_a_clear_error_and_nothing_is_written(b: Backend) {
    let t = TestApp::start(b, "bad_input", &[("example.com", "UTC")], start_time()).await;
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
    // A barrier: a valid event sent last is stored; nothing refused before it is.
    let r = t
        .post_event("2.2.3.77", CHROME_UA, &pageview("/barrier"))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let rows = t.t.wait_for_barrier("/barrier", WAIT).await;
    assert_eq!(
        rows.iter().map(|e| e.pathname.as_str()).collect::<Vec<_>>(),
        vec!["/barrier"]
    );
}

async fn pixel_stores_and_answers_a_gif_even_when_dropped(b: Backend) {
    let t = TestApp::start(b, "pixel", &[("example.com", "UTC")], start_time()).await;
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
    // With a referrer (an e-mail's web view, say), from another visitor.
    let r = t
        .send(
            "81.2.69.160",
            req(
                "n=pageview&u=https%3A%2F%2Fexample.com%2Fpromo&d=example.com&r=https%3A%2F%2Fnews.ycombinator.com%2Fitem",
                CHROME_UA,
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // A pixel is a pageview: without `n` it is one, and without `u` its page is the Referer
    // (the page that shows the image).
    let r = t
        .send(
            "81.2.69.161",
            req(
                "d=example.com&u=https%3A%2F%2Fexample.com%2Fno-name",
                CHROME_UA,
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("x-footfall-error").is_none());
    let with_referer = Request::get("/api/event.gif?d=example.com")
        .header("user-agent", CHROME_UA)
        .header(
            "referer",
            "https://example.com/from-referer?utm_source=mail",
        )
        .body(Body::empty())
        .unwrap();
    let r = t.send("81.2.69.162", with_referer).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("x-footfall-error").is_none());
    // A request with a mistake still answers a GIF, so no image shows as broken; the status
    // and a header name the mistake, and nothing is stored.
    for (query, status, needle) in [
        (
            "d=example.com",
            StatusCode::BAD_REQUEST,
            "missing required field `url`",
        ),
        (
            "n=pageview&u=https%3A%2F%2Fexample.com%2F&p=%7Bbroken",
            StatusCode::BAD_REQUEST,
            "props",
        ),
        (
            "n=pageview&u=ftp%3A%2F%2Fexample.com%2F",
            StatusCode::BAD_REQUEST,
            "http or https",
        ),
    ] {
        let r = t.send("2.2.3.77", req(query, CHROME_UA)).await;
        assert_eq!(r.status(), status, "{query}");
        assert_eq!(r.headers()["content-type"], "image/gif", "{query}");
        let error = r.headers()["x-footfall-error"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(error.contains(needle), "{query}: {error}");
        let bytes = axum::body::to_bytes(r.into_body(), 1000).await.unwrap();
        assert!(bytes.starts_with(b"GIF89a"), "{query}");
    }
    // A barrier: a pixel sent last; once it is stored, none of the refused ones can arrive.
    let r = t
        .send(
            "81.2.69.163",
            req(
                "n=pageview&u=https%3A%2F%2Fexample.com%2Fzz-barrier&d=example.com",
                CHROME_UA,
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut rows = t.t.wait_for_barrier("/zz-barrier", WAIT).await;
    rows.sort_by(|a, b| a.pathname.cmp(&b.pathname));
    let seen: Vec<_> = rows
        .iter()
        .map(|e| {
            (
                e.name.as_str(),
                e.pathname.as_str(),
                e.referrer_source.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("pageview", "/from-referer", "mail"),
            ("pageview", "/newsletter", ""),
            ("pageview", "/no-name", ""),
            ("pageview", "/promo", "Hacker News"),
            ("pageview", "/zz-barrier", ""),
        ]
    );
    let from_referer = rows.iter().find(|e| e.pathname == "/from-referer").unwrap();
    assert_eq!(from_referer.utm_source, "mail");
}

async fn trusted_proxy_header_is_used_only_from_the_proxy(b: Backend) {
    let t = TestApp::start_with(b, "proxies", &[("example.com", "UTC")], start_time(), |c| {
        c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let forwarded = |path: &str| {
        Request::post("/api/event")
            .header("user-agent", CHROME_UA)
            .header("x-forwarded-for", "175.16.199.9")
            .body(Body::from(pageview(path)))
            .unwrap()
    };
    t.send("10.1.2.3", forwarded("/via-proxy")).await;
    t.send("2.2.3.77", forwarded("/direct")).await;
    let rows = t.t.wait_for_events(2, WAIT).await;
    let by_path = |p: &str| rows.iter().find(|r| r.pathname == p).unwrap();
    assert_eq!(by_path("/via-proxy").city, "Changchun");
    assert_eq!(
        by_path("/direct").city,
        "Boxford",
        "a spoofed header from a non-proxy is ignored"
    );
}

/// Behind a proxy that sets X-Real-IP (`client_ip_header`), the client's own X-Forwarded-For,
/// passed through by that proxy, is not believed.
async fn only_the_header_the_proxy_sets_names_the_client(b: Backend) {
    let t = TestApp::start_with(
        b,
        "proxy_header",
        &[("example.com", "UTC")],
        start_time(),
        |c| {
            c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
            c.client_ip_header = axum::http::HeaderName::from_static("x-real-ip");
        },
    )
    .await;
    let req = Request::post("/api/event")
        .header("user-agent", CHROME_UA)
        .header("x-forwarded-for", "2.2.3.77")
        .header("x-real-ip", "175.16.199.9")
        .body(Body::from(pageview("/real-ip")))
        .unwrap();
    t.send("10.1.2.3", req).await;
    let rows = t.t.wait_for_barrier("/real-ip", WAIT).await;
    assert_eq!(
        rows[0].city, "Changchun",
        "the proxy's X-Real-IP, not the client's XFF"
    );
}

async fn salts_are_deleted_after_48_hours_and_purge_drops_old_days(b: Backend) {
    let t = TestApp::start(
        b,
        "salts_retention",
        &[("example.com", "UTC")],
        start_time(),
    )
    .await;
    let first_day: NaiveDate = start_time().date_naive();
    let first_salt = t.t.store.meta().salts().await.unwrap()[0].1.clone();
    t.post_event("2.2.3.77", CHROME_UA, &pageview("/old")).await;
    t.t.wait_for_events(1, WAIT).await;

    t.clock.advance(Span::days(1));
    t.app.maintenance.tick().await.unwrap();
    let salts = t.t.store.meta().salts().await.unwrap();
    assert!(
        salts.iter().any(|(d, _)| *d == first_day),
        "kept for midnight sessions"
    );

    t.clock.advance(Span::days(1));
    t.app.maintenance.tick().await.unwrap();
    let salts = t.t.store.meta().salts().await.unwrap();
    assert!(
        salts.iter().all(|(d, _)| *d > first_day),
        "48 hours on, the first salt is gone"
    );
    let hex: String = first_salt.0.iter().map(|b| format!("{b:02x}")).collect();
    for (table, text) in t.t.dump_tables().await {
        assert!(!text.contains(&hex), "salt still readable in {table}");
    }
    for needle in [hex.as_bytes(), &first_salt.0[..]] {
        let found = t.t.files_containing(needle);
        assert!(found.is_empty(), "salt bytes remain on disk: {found:?}");
    }

    // Retention (30 days): an event 30 days old stays; at 31 days it is dropped.
    t.clock.advance(Span::days(28));
    assert_eq!(t.app.maintenance.purge().await.unwrap(), 0);
    assert_eq!(t.t.events().await.len(), 1);
    t.clock.advance(Span::days(1));
    assert_eq!(t.app.maintenance.purge().await.unwrap(), 1);
    assert!(t.t.events().await.is_empty());
}

async fn cors_preflight_allows_post_from_any_origin_without_credentials(b: Backend) {
    let t = TestApp::start(b, "cors", &[("example.com", "UTC")], start_time()).await;
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

/// One client within the rate limit that changes its user-agent on every request opens a new
/// visit each time: the map of open visits stays within `max_sessions`, evicting the stalest,
/// and /metrics counts it.
async fn open_visits_are_capped_when_a_client_changes_its_user_agent(b: Backend) {
    let t = TestApp::start_with(
        b,
        "sessions_cap",
        &[("example.com", "UTC")],
        start_time(),
        |c| {
            c.max_sessions = 100;
        },
    )
    .await;
    for i in 0..300 {
        let ua = format!("{CHROME_UA} Build/{i}");
        let r = t
            .post_event("2.2.3.77", &ua, &pageview(&format!("/p{i}")))
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert!(r.headers().get("x-footfall-dropped").is_none());
    }
    let sessions = &t.app.state.pipeline.sessions;
    assert!(sessions.len() <= 100, "{} open visits", sessions.len());
    assert!(sessions.evicted() >= 200, "{} evicted", sessions.evicted());
    let r = t
        .send(
            "127.0.0.1",
            Request::get("/metrics").body(Body::empty()).unwrap(),
        )
        .await;
    let text = String::from_utf8(
        axum::body::to_bytes(r.into_body(), 1_000_000)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics"))
    };
    assert!(value("footfall_sessions_open") <= 100);
    assert!(value("footfall_sessions_evicted_total") >= 200);
    // Every event was still stored.
    assert_eq!(t.t.wait_for_barrier("/p299", WAIT).await.len(), 300);
}

/// With `metrics_token`, /metrics answers 401 without the token or with another, and the
/// figures with it.
async fn metrics_ask_for_the_token_when_one_is_set(b: Backend) {
    const TOKEN: &str = "s3cret-metrics-token-0123456789";
    let t = TestApp::start_with(
        b,
        "metrics_token",
        &[("example.com", "UTC")],
        start_time(),
        |c| {
            c.metrics_token = Some(footfall::config::Secret(TOKEN.into()));
        },
    )
    .await;
    let get = |auth: Option<&str>| {
        let mut r = Request::get("/metrics");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.body(Body::empty()).unwrap()
    };
    for auth in [
        None,
        Some("Bearer wrong-token-but-long-enough"),
        Some(TOKEN),
    ] {
        let r = t.send("127.0.0.1", get(auth)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    let r = t
        .send("127.0.0.1", get(Some(&format!("Bearer {TOKEN}"))))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = axum::body::to_bytes(r.into_body(), 1_000_000)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&text).contains("footfall_events_received_total"));
}

/// A damaged spool tail set aside as `.seg.corrupt` holds event rows: retention deletes it
/// once it is older than `raw_retention_days`, and /metrics counts it.
async fn damaged_spool_tails_go_with_raw_retention(b: Backend) {
    let t = TestApp::start(
        b,
        "corrupt_retention",
        &[("example.com", "UTC")],
        start_time(),
    )
    .await;
    let spool = t.t.config.data_dir.join("spool");
    let aside = spool.join("00000000000000000007.seg.corrupt");
    std::fs::write(&aside, b"rows of 2026-11-20").unwrap();
    // Written on the test clock's day.
    std::fs::File::options()
        .write(true)
        .open(&aside)
        .unwrap()
        .set_modified(start_time().into())
        .unwrap();
    let count = || {
        t.app
            .state
            .metrics
            .spool_corrupt_deleted
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // Within retention (30 days by default) it stays.
    t.clock.advance(Span::days(29));
    t.app.maintenance.purge().await.unwrap();
    assert!(aside.exists());
    assert_eq!(count(), 0);
    t.clock.advance(Span::days(3));
    t.app.maintenance.purge().await.unwrap();
    assert!(!aside.exists(), "deleted past raw retention");
    assert_eq!(count(), 1);
    assert!(
        t.app
            .state
            .metrics
            .render()
            .contains("footfall_spool_corrupt_deleted_total 1")
    );
}
