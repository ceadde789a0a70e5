//! Accounts and access, through the router on both stores: logins, sessions, CSRF, roles,
//! shared links and API keys. Every route that changes anything is tried by everyone who
//! must not change it.

use std::io::Read as _;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use chrono::{DateTime, Utc};
use footfall::accounts::{self, Role, User};
use footfall::http::admin::STATE_CHANGING_ROUTES;
use footfall_tests::{Backend, TestApp, both_stores, seed};
use serde_json::{Value, json};

both_stores!(
    logged_out_requests_are_refused_or_sent_to_login,
    login_sets_a_safe_cookie_and_logout_ends_it,
    failed_logins_are_rate_limited,
    concurrent_wrong_logins_check_no_more_passwords_than_the_limits,
    state_changes_need_the_csrf_token,
    a_viewer_reads_only_granted_sites,
    a_shared_link_reads_its_site_and_changes_nothing,
    a_password_protected_link_opens_only_with_its_password,
    shared_link_unlocks_are_limited_per_link_and_capped,
    api_keys_read_but_never_change,
    admins_manage_sites_users_keys_and_links,
    changing_the_password_ends_other_sessions,
    an_admin_resetting_a_password_ends_that_users_sessions,
    export_is_a_zip_of_csv_files_with_the_dashboards_numbers,
    prop_keys_of_an_event_are_listed,
);

const ADMIN: &str = "admin@example.org";
const VIEWER: &str = "viewer@example.org";
const PASSWORD: &str = "correct horse battery";

fn now() -> DateTime<Utc> {
    "2026-11-16T20:00:00Z".parse().unwrap()
}

/// `shop.test` with the seed, `other.test` with a copy of it; an admin and a viewer of
/// `shop.test`.
async fn setup(b: Backend, name: &str) -> TestApp {
    let mut events = seed::events(1, "shop.test", now());
    events.extend(seed::events(2, "other.test", now()));
    let t = TestApp::start_seeded(
        b,
        name,
        &[("shop.test", "UTC"), ("other.test", "UTC")],
        now(),
        &events,
    )
    .await;
    let hash = accounts::hash_password(PASSWORD).unwrap();
    for (email, role, sites) in [
        (ADMIN, Role::Admin, vec![]),
        (VIEWER, Role::Viewer, vec![1]),
    ] {
        accounts::put_user(
            t.t.store.as_ref(),
            &User {
                email: email.into(),
                password_hash: hash.clone(),
                role,
                sites,
                created_at: 0,
            },
        )
        .await
        .unwrap();
    }
    t
}

/// A browser's credentials: the session cookie and the CSRF token.
#[derive(Clone, Default)]
struct Who {
    cookie: Option<String>,
    csrf: Option<String>,
    share: Option<String>,
    key: Option<String>,
}

async fn body_json(r: Response<Body>) -> Value {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

async fn call(
    t: &TestApp,
    who: &Who,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Response<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = &who.cookie {
        req = req.header(header::COOKIE, c);
    }
    if let Some(c) = &who.csrf {
        req = req.header("x-csrf-token", c);
    }
    if let Some(s) = &who.share {
        req = req.header("x-footfall-share", s);
    }
    if let Some(k) = &who.key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    t.send("192.0.2.10", req).await
}

/// POSTs a JSON body to `path` as if from `peer`, without credentials.
async fn post_json_from(t: &TestApp, peer: &str, path: &str, body: Value) -> Response<Body> {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    t.send(peer, req).await
}

async fn login_from(t: &TestApp, peer: &str, email: &str, password: &str) -> Response<Body> {
    let body = json!({"email": email, "password": password});
    post_json_from(t, peer, "/api/auth/login", body).await
}

async fn login(t: &TestApp, email: &str) -> Who {
    let r = login_from(t, "192.0.2.10", email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    let me = body_json(r).await;
    Who {
        cookie: Some(cookie.split(';').next().unwrap().to_string()),
        csrf: Some(me["csrf"].as_str().unwrap().to_string()),
        ..Who::default()
    }
}

fn stats_query(site: &str) -> Value {
    json!({"site_id": site, "metrics": ["visitors", "pageviews"], "date_range": "30d"})
}

/// The sample path of a route pattern.
fn sample(path: &str) -> String {
    path.replace("{domain}", "shop.test")
        .replace("{id}", "00000000")
        .replace("{email}", VIEWER)
}

async fn logged_out_requests_are_refused_or_sent_to_login(b: Backend) {
    let t = setup(b, "logged_out_refused").await;
    let nobody = Who::default();
    for page in [
        "/",
        "/sites/shop.test",
        "/sites/shop.test/settings",
        "/account",
        "/users",
    ] {
        let r = call(&t, &nobody, "GET", page, None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{page}");
        let to = r.headers()[header::LOCATION].to_str().unwrap();
        assert!(to.starts_with("/login?next=%2F"), "{page} -> {to}");
    }
    let r = call(&t, &nobody, "GET", "/login", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(r.headers()[header::REFERRER_POLICY], "no-referrer");
    for (method, path, body) in [
        ("GET", "/api/sites".to_string(), None),
        ("GET", "/api/auth/me".into(), None),
        ("GET", "/api/users".into(), None),
        ("GET", "/api/sites/shop.test/settings".into(), None),
        (
            "POST",
            "/api/v2/query".into(),
            Some(stats_query("shop.test")),
        ),
        ("GET", "/api/v2/realtime?site_id=shop.test".into(), None),
        ("GET", "/api/v2/export?site_id=shop.test".into(), None),
        (
            "GET",
            "/api/v2/props?site_id=shop.test&name=Signup".into(),
            None,
        ),
    ] {
        let r = call(&t, &nobody, method, &path, body).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    for (method, path) in STATE_CHANGING_ROUTES {
        let r = call(&t, &nobody, method, &sample(path), Some(json!({}))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // A made-up session cookie is nobody too.
    let forged = Who {
        cookie: Some(format!("ff_session={}", "ab".repeat(32))),
        ..Who::default()
    };
    assert_eq!(
        call(&t, &forged, "GET", "/api/sites", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&t, &forged, "GET", "/", None).await.status(),
        StatusCode::SEE_OTHER
    );
}

async fn login_sets_a_safe_cookie_and_logout_ends_it(b: Backend) {
    let t = setup(b, "login_cookie").await;
    let r = login_from(&t, "192.0.2.10", " Admin@Example.ORG ", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    for part in [
        "ff_session=",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=1209600",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    // Behind a TLS proxy the cookie is Secure.
    let req = Request::post("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-proto", "https")
        .body(Body::from(
            json!({"email": ADMIN, "password": PASSWORD}).to_string(),
        ))
        .unwrap();
    let secure = t.send("192.0.2.10", req).await;
    assert!(
        secure.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .ends_with("; Secure")
    );
    // The token is stored only as its hash.
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("ff_session=")
        .to_string();
    for (table, text) in t.t.dump_tables().await {
        assert!(
            !text.contains(&token),
            "the session token is stored in {table}"
        );
        assert!(
            !text.contains(PASSWORD),
            "the password is stored in {table}"
        );
    }

    let who = login(&t, ADMIN).await;
    let me = body_json(call(&t, &who, "GET", "/api/auth/me", None).await).await;
    assert_eq!(me["email"], ADMIN);
    assert_eq!(me["role"], "admin");
    assert_eq!(
        call(&t, &who, "GET", "/", None).await.status(),
        StatusCode::OK
    );
    // A form post (not JSON) cannot log in: a cross-site form cannot send JSON.
    let form = Request::post("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("email={ADMIN}&password=x")))
        .unwrap();
    assert_eq!(
        t.send("192.0.2.10", form).await.status(),
        StatusCode::BAD_REQUEST
    );

    let out = call(&t, &who, "POST", "/api/auth/logout", None).await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(
        out.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        call(&t, &who, "GET", "/api/auth/me", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&t, &who, "GET", "/", None).await.status(),
        StatusCode::SEE_OTHER
    );
}

async fn failed_logins_are_rate_limited(b: Backend) {
    let t = setup(b, "login_rate_limit").await;
    // The admin's usual place.
    let r = login_from(&t, "203.0.113.5", ADMIN, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    for i in 0..10 {
        let r = login_from(&t, "198.51.100.7", ADMIN, "wrong password!").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
        assert_eq!(body_json(r).await["error"], "wrong e-mail or password");
    }
    // The address is blocked now, even with the right password.
    let r = login_from(&t, "198.51.100.7", ADMIN, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u32 = r.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    // So is the account, from another address: guessing one user's password from many
    // addresses is limited too.
    let r = login_from(&t, "198.51.100.8", ADMIN, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // But failures from elsewhere never lock the owner out where they have logged in
    // before: that address is held by its own limit only.
    let r = login_from(&t, "203.0.113.5", ADMIN, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", body_json(r).await);
    // Others are not affected.
    assert_eq!(
        login_from(&t, "198.51.100.8", VIEWER, PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    // Unknown users fail the same way as a wrong password.
    let r = login_from(&t, "198.51.100.9", "nobody@example.org", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body_json(r).await["error"], "wrong e-mail or password");
    // Bad bodies are named.
    for body in [
        "{",
        "{\"email\": 1}",
        "{\"email\":\"a\",\"password\":\"b\",\"x\":1}",
    ] {
        let req = Request::post("/api/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let r = t.send("198.51.100.9", req).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let huge = Request::post("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!(
            "{{\"email\":\"{}\"}}",
            "a".repeat(20_000)
        )))
        .unwrap();
    assert_eq!(
        t.send("198.51.100.9", huge).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

/// 500 wrong logins at once: the attempt is recorded before the password is checked, so at
/// most the account's 10 are checked; against 500 different accounts, at most one check per
/// core runs at once (each takes about 19 MiB) and the rest are answered 429.
async fn concurrent_wrong_logins_check_no_more_passwords_than_the_limits(b: Backend) {
    use std::sync::atomic::Ordering;
    let t = setup(b, "login_burst").await;
    let limiter = &t.app.state.login_limiter;
    let rss = || {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = rss();
    let one_account = (0..500).map(|i| {
        let t = &t;
        async move {
            login_from(
                t,
                &format!("10.{}.{}.1", i / 250, i % 250),
                ADMIN,
                "wrong password!",
            )
            .await
            .status()
        }
    });
    let statuses = futures_util::future::join_all(one_account).await;
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS)
    );
    let checked = limiter.checked.load(Ordering::Relaxed);
    assert!(checked <= 10, "{checked} passwords checked for one account");
    let many_accounts = (0..500).map(|i| {
        let t = &t;
        async move {
            login_from(
                t,
                &format!("10.{}.{}.2", i / 250, i % 250),
                &format!("nobody{i}@example.org"),
                "wrong password!",
            )
            .await
            .status()
        }
    });
    let statuses = futures_util::future::join_all(many_accounts).await;
    let busy = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let most = limiter.most_at_once.load(Ordering::SeqCst);
    assert!(most <= limiter.permits(), "{most} checks at once");
    eprintln!(
        "500 + 500 wrong logins: {} checks, at most {most} at once ({} allowed), {busy} answered 429, RSS {} -> {} kB",
        limiter.checked.load(Ordering::Relaxed),
        limiter.permits(),
        before,
        rss()
    );
}

/// A password an admin sets in the dashboard ends the user's sessions, as the CLI's does;
/// the admin's own session, which did it, stays.
async fn an_admin_resetting_a_password_ends_that_users_sessions(b: Backend) {
    let t = setup(b, "admin_reset").await;
    let admin = login(&t, ADMIN).await;
    let viewer = login(&t, VIEWER).await;
    assert_eq!(
        call(&t, &viewer, "GET", "/api/auth/me", None)
            .await
            .status(),
        StatusCode::OK
    );
    let r = call(
        &t,
        &admin,
        "PUT",
        &format!("/api/users/{VIEWER}"),
        Some(json!({"role": "viewer", "sites": ["shop.test"], "password": "a brand new password"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        call(&t, &viewer, "GET", "/api/auth/me", None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "the viewer's session ended"
    );
    assert_eq!(
        call(&t, &admin, "GET", "/api/auth/me", None).await.status(),
        StatusCode::OK
    );
    let r = login_from(&t, "192.0.2.30", VIEWER, "a brand new password").await;
    assert_eq!(r.status(), StatusCode::OK, "the new password works");
}

async fn state_changes_need_the_csrf_token(b: Backend) {
    let t = setup(b, "csrf").await;
    let admin = login(&t, ADMIN).await;
    let no_token = Who {
        csrf: None,
        ..admin.clone()
    };
    let wrong = Who {
        csrf: Some("0".repeat(48)),
        ..admin.clone()
    };
    for who in [&no_token, &wrong] {
        for (method, path) in STATE_CHANGING_ROUTES {
            let r = call(
                &t,
                who,
                method,
                &sample(path),
                Some(json!({"domain": "new.test"})),
            )
            .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
            assert!(
                body_json(r).await["error"]
                    .as_str()
                    .unwrap()
                    .contains("CSRF")
            );
        }
    }
    assert_eq!(
        t.t.store.meta().sites().await.unwrap().len(),
        2,
        "nothing was added"
    );
    let r = call(
        &t,
        &admin,
        "POST",
        "/api/sites",
        Some(json!({"domain": "new.test"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(t.t.store.meta().sites().await.unwrap().len(), 3);
}

async fn a_viewer_reads_only_granted_sites(b: Backend) {
    let t = setup(b, "viewer").await;
    let viewer = login(&t, VIEWER).await;
    let sites = body_json(call(&t, &viewer, "GET", "/api/sites", None).await).await;
    assert_eq!(sites["sites"].as_array().unwrap().len(), 1);
    assert_eq!(sites["sites"][0]["domain"], "shop.test");
    let r = call(
        &t,
        &viewer,
        "POST",
        "/api/v2/query",
        Some(stats_query("shop.test")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        body_json(r).await["results"][0]["metrics"],
        json!([seed::VISITORS_30D, seed::PAGEVIEWS_30D])
    );
    // other.test exists, but the viewer cannot tell it apart from a missing site.
    for (method, path, body) in [
        ("POST", "/api/v2/query", Some(stats_query("other.test"))),
        ("GET", "/api/v2/realtime?site_id=other.test", None),
        ("GET", "/api/v2/export?site_id=other.test", None),
        ("GET", "/api/v2/props?site_id=other.test&name=Signup", None),
    ] {
        let r = call(&t, &viewer, method, path, body).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!body_json(r).await.to_string().contains("Google"));
    }
    // The query body's site_id is the only site it reads: filters cannot reach another.
    let sneaky = json!({"site_id": "shop.test", "metrics": ["visitors"], "date_range": "30d", "filters": [["is", "event:hostname", ["other.test"]]]});
    let r = body_json(call(&t, &viewer, "POST", "/api/v2/query", Some(sneaky)).await).await;
    assert_eq!(r["results"][0]["metrics"][0], 0);
    // No management at all, with a valid CSRF token.
    for (method, path) in STATE_CHANGING_ROUTES {
        if path.starts_with("/api/auth/") {
            continue;
        }
        let r = call(
            &t,
            &viewer,
            method,
            &sample(path),
            Some(json!({"domain": "x.test", "role": "admin"})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
    for path in ["/api/users", "/api/sites/shop.test/settings"] {
        assert_eq!(
            call(&t, &viewer, "GET", path, None).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let me = accounts::user(t.t.store.as_ref(), VIEWER)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        me.role,
        Role::Viewer,
        "the viewer did not make itself admin"
    );
}

/// Makes a shared link of `site_id` (with a password or not); returns its token.
async fn share(t: &TestApp, site_id: u32, password: Option<&str>) -> String {
    let hash = password.map(|p| accounts::hash_password(p).unwrap());
    accounts::create_share(t.t.store.as_ref(), site_id, "press", hash, 0)
        .await
        .unwrap()
        .0
}

async fn a_shared_link_reads_its_site_and_changes_nothing(b: Backend) {
    let t = setup(b, "share_read_only").await;
    let token = share(&t, 1, None).await;
    let link = Who {
        share: Some(token.clone()),
        ..Who::default()
    };
    let r = call(
        &t,
        &link,
        "POST",
        "/api/v2/query",
        Some(stats_query("shop.test")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        body_json(r).await["results"][0]["metrics"][0],
        seed::VISITORS_30D
    );
    let sites = body_json(call(&t, &link, "GET", "/api/sites", None).await).await;
    assert_eq!(
        sites["sites"],
        json!([{"id": 1, "domain": "shop.test", "timezone": "UTC"}])
    );
    assert_eq!(
        call(&t, &link, "GET", &format!("/share/{token}"), None)
            .await
            .status(),
        StatusCode::OK
    );
    let r = call(
        &t,
        &link,
        "POST",
        "/api/v2/query",
        Some(stats_query("other.test")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Every state-changing route refuses the link, also when the browser is logged in as an
    // admin with a valid CSRF token: the link's header decides.
    let admin = login(&t, ADMIN).await;
    let link_in_admin_browser = Who {
        share: Some(token.clone()),
        ..admin.clone()
    };
    for who in [&link, &link_in_admin_browser] {
        for (method, path) in STATE_CHANGING_ROUTES {
            let r = call(&t, who, method, &sample(path), Some(json!({"domain": "x.test", "role": "admin", "email": "evil@example.org", "password": "0123456789ab", "current": PASSWORD, "new": "0123456789ab"}))).await;
            assert!(
                matches!(r.status(), StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED),
                "{method} {path} answered {}",
                r.status()
            );
        }
        for path in ["/api/users", "/api/sites/shop.test/settings"] {
            assert_eq!(
                call(&t, who, "GET", path, None).await.status(),
                StatusCode::FORBIDDEN,
                "{path}"
            );
        }
    }
    assert_eq!(t.t.store.meta().sites().await.unwrap().len(), 2);
    assert_eq!(accounts::users(t.t.store.as_ref()).await.unwrap().len(), 2);
    assert!(t.t.store.meta().api_keys().await.unwrap().is_empty());
    assert_eq!(accounts::shares(t.t.store.as_ref()).await.unwrap().len(), 1);
    assert_eq!(
        call(&t, &admin, "GET", "/api/auth/me", None).await.status(),
        StatusCode::OK,
        "not logged out"
    );

    // Revoked, it opens nothing.
    let id = &token[..8];
    let r = call(
        &t,
        &admin,
        "DELETE",
        &format!("/api/sites/shop.test/shares/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = call(
        &t,
        &link,
        "POST",
        "/api/v2/query",
        Some(stats_query("shop.test")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A guessed token with a real id opens nothing either.
    let other = share(&t, 1, None).await;
    let guessed = Who {
        share: Some(format!("{}{}", &other[..8], "0".repeat(40))),
        ..Who::default()
    };
    let r = call(
        &t,
        &guessed,
        "POST",
        "/api/v2/query",
        Some(stats_query("shop.test")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn a_password_protected_link_opens_only_with_its_password(b: Backend) {
    let t = setup(b, "share_password").await;
    let token = share(&t, 1, Some("link password 1")).await;
    let link = Who {
        share: Some(token.clone()),
        ..Who::default()
    };
    let r = call(
        &t,
        &link,
        "POST",
        "/api/v2/query",
        Some(stats_query("shop.test")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        body_json(r).await["error"]
            .as_str()
            .unwrap()
            .contains("password")
    );
    let wrong = call(
        &t,
        &Who::default(),
        "POST",
        "/api/share/unlock",
        Some(json!({"token": token, "password": "guess"})),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let ok = call(
        &t,
        &Who::default(),
        "POST",
        "/api/share/unlock",
        Some(json!({"token": token, "password": "link password 1"})),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    let cookie = ok.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.starts_with("ff_share=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let unlocked = Who {
        cookie: Some(cookie.split(';').next().unwrap().into()),
        ..link.clone()
    };
    let r = call(
        &t,
        &unlocked,
        "POST",
        "/api/v2/query",
        Some(stats_query("shop.test")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // The unlock is for this link only, and is not a login.
    let second = share(&t, 1, Some("another password")).await;
    let r = call(
        &t,
        &Who {
            share: Some(second),
            ..unlocked.clone()
        },
        "POST",
        "/api/v2/query",
        Some(stats_query("shop.test")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let as_login = Who {
        share: None,
        ..unlocked.clone()
    };
    assert_eq!(
        call(&t, &as_login, "GET", "/api/sites", None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn unlock_from(t: &TestApp, peer: &str, token: &str, password: &str) -> Response<Body> {
    let body = json!({"token": token, "password": password});
    post_json_from(t, peer, "/api/share/unlock", body).await
}

async fn sessions_of(t: &TestApp, link: &str) -> usize {
    t.t.store
        .meta()
        .records("session")
        .await
        .unwrap()
        .iter()
        .filter(|(_, body)| body.contains(&format!("\"share\":\"{link}\"")))
        .count()
}

/// Guessing a link's password from many addresses is limited per link; an address that
/// unlocked the link before still can; a link without a password stores no session to open;
/// a link holds at most `MAX_SHARE_SESSIONS` unlocked browsers, the oldest ended first.
async fn shared_link_unlocks_are_limited_per_link_and_capped(b: Backend) {
    let t = setup(b, "share_unlock_limits").await;
    let open = share(&t, 1, None).await;
    let r = unlock_from(&t, "192.0.2.50", &open, "anything").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(t.t.store.meta().records("session").await.unwrap().len(), 0);

    let token = share(&t, 1, Some("link password 1")).await;
    let id = token[..8].to_string();
    let r = unlock_from(&t, "192.0.2.51", &token, "link password 1").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(sessions_of(&t, &id).await, 1);
    for i in 0..10 {
        let r = unlock_from(&t, &format!("198.51.100.{}", 20 + i), &token, "guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // The link has had its ten failures: a new address is refused before any check…
    let r = unlock_from(&t, "198.51.100.99", &token, "link password 1").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // …the address that unlocked it before is not, and other links are not affected.
    let r = unlock_from(&t, "192.0.2.51", &token, "link password 1").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let other = share(&t, 1, Some("another password")).await;
    let r = unlock_from(&t, "198.51.100.99", &other, "another password").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // At the cap, an unlock ends the session closest to expiry.
    let store = t.t.store.as_ref();
    let have = sessions_of(&t, &id).await;
    for i in have..accounts::MAX_SHARE_SESSIONS {
        accounts::start_session(
            store,
            None,
            Some(&id),
            i as i64,
            accounts::SHARE_SESSION_SECS,
        )
        .await
        .unwrap();
    }
    assert_eq!(sessions_of(&t, &id).await, accounts::MAX_SHARE_SESSIONS);
    let r = unlock_from(&t, "192.0.2.51", &token, "link password 1").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(sessions_of(&t, &id).await, accounts::MAX_SHARE_SESSIONS);
}

async fn api_keys_read_but_never_change(b: Backend) {
    let t = setup(b, "key_read_only").await;
    let key = footfall::apikey::generate(1, 0);
    t.t.store.meta().add_api_key(&key.record).await.unwrap();
    let with_key = Who {
        key: Some(key.secret.clone()),
        ..Who::default()
    };
    let r = call(
        &t,
        &with_key,
        "POST",
        "/api/v2/query",
        Some(stats_query("shop.test")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    for (method, path) in STATE_CHANGING_ROUTES {
        let r = call(
            &t,
            &with_key,
            method,
            &sample(path),
            Some(json!({"domain": "x.test"})),
        )
        .await;
        assert!(
            matches!(r.status(), StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED),
            "{method} {path}: {}",
            r.status()
        );
    }
    assert_eq!(t.t.store.meta().sites().await.unwrap().len(), 2);
}

async fn admins_manage_sites_users_keys_and_links(b: Backend) {
    let t = setup(b, "admin_manages").await;
    let admin = login(&t, ADMIN).await;
    // Sites: add, refuse a bad one, rename and change its zone.
    let r = call(
        &t,
        &admin,
        "POST",
        "/api/sites",
        Some(json!({"domain": "WWW.Blog.test", "timezone": "Europe/Copenhagen"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(body_json(r).await["domain"], "blog.test");
    for bad in [
        json!({"domain": "a b"}),
        json!({"domain": "ok.test", "timezone": "Mars/Base"}),
        json!({"domain": "blog.test"}),
        json!({"domain": "x.test", "owner": 1}),
    ] {
        let r = call(&t, &admin, "POST", "/api/sites", Some(bad.clone())).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = call(
        &t,
        &admin,
        "PUT",
        "/api/sites/blog.test",
        Some(json!({"domain": "journal.test", "timezone": "America/New_York"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let sites = t.t.store.meta().sites().await.unwrap();
    let journal = sites
        .iter()
        .find(|s| s.domain == "journal.test")
        .expect("renamed");
    assert_eq!(journal.timezone, "America/New_York");
    let r = call(
        &t,
        &admin,
        "PUT",
        "/api/sites/journal.test",
        Some(json!({"domain": "shop.test"})),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "a domain another site has"
    );
    // The collector takes events for the renamed site at once.
    let ev = t
        .post_event(
            "203.0.113.5",
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            r#"{"n":"pageview","u":"https://journal.test/","d":"journal.test"}"#,
        )
        .await;
    assert_eq!(ev.status(), StatusCode::ACCEPTED);
    assert!(ev.headers().get("x-footfall-dropped").is_none());

    // Keys: made, listed by id only, revoked.
    let r = call(&t, &admin, "POST", "/api/sites/shop.test/keys", None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let key = body_json(r).await;
    let secret = key["key"].as_str().unwrap().to_string();
    let settings =
        body_json(call(&t, &admin, "GET", "/api/sites/shop.test/settings", None).await).await;
    assert_eq!(settings["keys"][0]["id"], key["id"]);
    assert!(!settings.to_string().contains(&secret[3..]));
    assert!(
        settings["snippet"]
            .as_str()
            .unwrap()
            .contains("data-domain=\"shop.test\"")
    );
    assert_eq!(settings["raw_retention_days"], 30);
    let with_key = Who {
        key: Some(secret),
        ..Who::default()
    };
    assert_eq!(
        call(
            &t,
            &with_key,
            "POST",
            "/api/v2/query",
            Some(stats_query("shop.test"))
        )
        .await
        .status(),
        StatusCode::OK
    );
    let id = key["id"].as_str().unwrap();
    assert_eq!(
        call(
            &t,
            &admin,
            "DELETE",
            &format!("/api/sites/other.test/keys/{id}"),
            None
        )
        .await
        .status(),
        StatusCode::NOT_FOUND,
        "another site's key"
    );
    assert_eq!(
        call(
            &t,
            &admin,
            "DELETE",
            &format!("/api/sites/shop.test/keys/{id}"),
            None
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(
            &t,
            &with_key,
            "POST",
            "/api/v2/query",
            Some(stats_query("shop.test"))
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );

    // Links: made with a URL shown once.
    let r = call(
        &t,
        &admin,
        "POST",
        "/api/sites/shop.test/shares",
        Some(json!({"label": "Press kit"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let url = body_json(r).await["url"].as_str().unwrap().to_string();
    let token = url.rsplit('/').next().unwrap().to_string();
    assert_eq!(token.len(), 48);
    let link = Who {
        share: Some(token),
        ..Who::default()
    };
    assert_eq!(
        call(
            &t,
            &link,
            "POST",
            "/api/v2/query",
            Some(stats_query("shop.test"))
        )
        .await
        .status(),
        StatusCode::OK
    );
    let r = call(
        &t,
        &admin,
        "POST",
        "/api/sites/shop.test/shares",
        Some(json!({"label": "x".repeat(101)})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Embedding: only the origins a link lists may frame its page; other links, none.
    let page = |token: String| {
        let t = &t;
        async move {
            let r = t
                .send(
                    "192.0.2.40",
                    Request::get(format!("/share/{token}?embed=true&theme=dark"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await;
            assert_eq!(r.status(), StatusCode::OK);
            let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .to_string();
            let frame = r
                .headers()
                .get(header::X_FRAME_OPTIONS)
                .map(|v| v.to_str().unwrap().to_string());
            (csp, frame)
        }
    };
    let (csp, frame) = page(url.rsplit('/').next().unwrap().to_string()).await;
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(frame.as_deref(), Some("DENY"));
    let r = call(
        &t,
        &admin,
        "POST",
        "/api/sites/shop.test/shares",
        Some(json!({"label": "Blog", "embed_origins": ["https://Blog.Example.com/", "http://intranet.test:8080"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let embeddable = body_json(r).await["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (csp, frame) = page(embeddable).await;
    assert!(
        csp.ends_with("; frame-ancestors https://blog.example.com http://intranet.test:8080"),
        "{csp}"
    );
    assert!(
        csp.contains("script-src 'self'"),
        "the rest of the policy stays: {csp}"
    );
    assert_eq!(frame, None);
    for bad in [
        "javascript:alert(1)",
        "https://blog.example.com/path",
        "blog.example.com",
        "https://u:p@x.test",
    ] {
        let r = call(
            &t,
            &admin,
            "POST",
            "/api/sites/shop.test/shares",
            Some(json!({"label": "Bad", "embed_origins": [bad]})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            body_json(r).await["error"]
                .as_str()
                .unwrap()
                .contains("not an origin"),
            "{bad}"
        );
    }
    let r = call(&t, &admin, "GET", "/api/sites/shop.test/settings", None).await;
    let shares = body_json(r).await["shares"].clone();
    assert!(
        shares.as_array().unwrap().iter().any(|l| l["embed_origins"]
            == json!(["https://blog.example.com", "http://intranet.test:8080"])),
        "{shares}"
    );

    // Users: add a viewer of two sites, change, refuse bad input, delete.
    let r = call(&t, &admin, "POST", "/api/users", Some(json!({"email": "New@Example.org", "password": PASSWORD, "role": "viewer", "sites": ["shop.test", "other.test"]}))).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        body_json(r).await["sites"],
        json!(["shop.test", "other.test"])
    );
    let newbie = login(&t, "new@example.org").await;
    let sites = body_json(call(&t, &newbie, "GET", "/api/sites", None).await).await;
    assert_eq!(sites["sites"].as_array().unwrap().len(), 2);
    for bad in [
        json!({"email": "new@example.org", "password": "a long password", "role": "viewer"}),
        json!({"email": "x@example.org", "password": "short", "role": "viewer"}),
        json!({"email": "not-an-email", "password": "a long password", "role": "viewer"}),
        json!({"email": "y@example.org", "password": "a long password", "role": "owner"}),
        json!({"email": "z@example.org", "password": "a long password", "role": "viewer", "sites": ["nope.test"]}),
    ] {
        let r = call(&t, &admin, "POST", "/api/users", Some(bad.clone())).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = call(
        &t,
        &admin,
        "PUT",
        "/api/users/new@example.org",
        Some(json!({"role": "viewer", "sites": ["other.test"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let sites = body_json(call(&t, &newbie, "GET", "/api/sites", None).await).await;
    assert_eq!(sites["sites"][0]["domain"], "other.test");
    let r = call(
        &t,
        &admin,
        "PUT",
        &format!("/api/users/{ADMIN}"),
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "an admin cannot demote themself"
    );
    let r = call(&t, &admin, "DELETE", &format!("/api/users/{ADMIN}"), None).await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "an admin cannot delete themself"
    );
    let r = call(&t, &admin, "DELETE", "/api/users/new@example.org", None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        call(&t, &newbie, "GET", "/api/sites", None).await.status(),
        StatusCode::UNAUTHORIZED,
        "a deleted user's session ends"
    );
    let users = body_json(call(&t, &admin, "GET", "/api/users", None).await).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    assert!(
        !users.to_string().contains("argon2"),
        "hashes are not listed"
    );
}

async fn changing_the_password_ends_other_sessions(b: Backend) {
    let t = setup(b, "password_change").await;
    let here = login(&t, VIEWER).await;
    let elsewhere = login(&t, VIEWER).await;
    let r = call(
        &t,
        &here,
        "POST",
        "/api/auth/password",
        Some(json!({"current": "not it at all", "new": "a new password 2"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = call(
        &t,
        &here,
        "POST",
        "/api/auth/password",
        Some(json!({"current": PASSWORD, "new": "short"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = call(
        &t,
        &here,
        "POST",
        "/api/auth/password",
        Some(json!({"current": PASSWORD, "new": "a new password 2"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        call(&t, &here, "GET", "/api/auth/me", None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&t, &elsewhere, "GET", "/api/auth/me", None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(&t, "192.0.2.11", VIEWER, PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(&t, "192.0.2.11", VIEWER, "a new password 2")
            .await
            .status(),
        StatusCode::OK
    );
}

/// The files of a ZIP, by name.
fn unzip(bytes: &[u8]) -> Vec<(String, String)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut text = String::new();
            f.read_to_string(&mut text).unwrap();
            (f.name().unwrap().to_string(), text)
        })
        .collect()
}

async fn export_is_a_zip_of_csv_files_with_the_dashboards_numbers(b: Backend) {
    let t = setup(b, "export_zip").await;
    let viewer = login(&t, VIEWER).await;
    let r = call(
        &t,
        &viewer,
        "GET",
        "/api/v2/export?site_id=shop.test&date_range=30d",
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/zip");
    assert!(
        r.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("shop_test-2026-11-16.zip")
    );
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
    let files = unzip(&bytes);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "visitors.csv",
        "pages.csv",
        "entry_pages.csv",
        "sources.csv",
        "channels.csv",
        "utm_campaigns.csv",
        "countries.csv",
        "cities.csv",
        "devices.csv",
        "browsers.csv",
        "operating_systems.csv",
        "custom_events.csv",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let file = |name: &str| files.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(
        file("sources.csv"),
        "source,visitors,visits,bounce_rate,visit_duration\r\nGoogle,2,2,50,15\r\n,1,1,100,0\r\nHacker News,1,1,0,20\r\n"
    );
    assert_eq!(
        file("pages.csv"),
        "page,visitors,pageviews\r\n/,2,2\r\n/pricing,2,2\r\n/blog,1,1\r\n"
    );
    assert_eq!(
        file("countries.csv"),
        "country_name,visitors\r\nDenmark,2\r\nGermany,2\r\n"
    );
    let visitors_total: u64 = file("visitors.csv")
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(visitors_total, seed::VISITORS_30D);
    // Filters and the range narrow every file.
    let q = "/api/v2/export?site_id=shop.test&date_range=day&filters=%5B%5B%22is%22%2C%22visit%3Asource%22%2C%5B%22Google%22%5D%5D%5D";
    let r = call(&t, &viewer, "GET", q, None).await;
    let files = unzip(&axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap());
    let pages = &files.iter().find(|(n, _)| n == "pages.csv").unwrap().1;
    assert_eq!(pages, "page,visitors,pageviews\r\n/,1,1\r\n");
    // Mistakes are named.
    for bad in [
        "date_range=yesterday",
        "filters=%5B",
        "filters=%5B%5B%22is%22%2C%22visit%3Anope%22%2C%5B%22x%22%5D%5D%5D",
    ] {
        let r = call(
            &t,
            &viewer,
            "GET",
            &format!("/api/v2/export?site_id=shop.test&{bad}"),
            None,
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

async fn prop_keys_of_an_event_are_listed(b: Backend) {
    let t = setup(b, "prop_keys").await;
    let viewer = login(&t, VIEWER).await;
    let r = call(
        &t,
        &viewer,
        "GET",
        "/api/v2/props?site_id=shop.test&name=Signup&date_range=30d",
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        body_json(r).await,
        json!({"props": [{"key": "plan", "events": 1}]})
    );
    let r = call(
        &t,
        &viewer,
        "GET",
        "/api/v2/props?site_id=shop.test&name=Signup&date_range=day",
        None,
    )
    .await;
    assert_eq!(body_json(r).await, json!({"props": []}));
    let r = call(&t, &viewer, "GET", "/api/v2/props?site_id=shop.test", None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
