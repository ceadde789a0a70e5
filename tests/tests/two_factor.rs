//! Two-factor login through the router, on the SQLite, DuckDB and ClickHouse stores: set up
//! with a secret whose codes come from an independent generator (oath-toolkit's `oathtool`,
//! installed by scripts/test.sh), logins that ask for the code, codes taken once, recovery
//! codes, the rate limit, the server-wide requirement, and ending one's own sessions.

use std::process::Command;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use chrono::{DateTime, Duration, Utc};
use footfall::accounts::{self, Role, User};
use footfall::clock::Clock as _;
use footfall_tests::{Backend, TestApp, both_stores};
use serde_json::{Value, json};

both_stores!(
    a_second_factor_is_set_up_asked_for_and_taken_once,
    the_server_can_require_it_of_everyone
);

const ADMIN: &str = "admin@example.org";
const VIEWER: &str = "viewer@example.org";
const PASSWORD: &str = "correct horse battery";

fn start() -> DateTime<Utc> {
    "2026-12-06T09:00:10Z".parse().unwrap()
}

async fn setup(b: Backend, name: &str) -> TestApp {
    let t = TestApp::start(b, name, &[("shop.test", "UTC")], start()).await;
    let hash = accounts::hash_password(PASSWORD).unwrap();
    for (email, role) in [(ADMIN, Role::Admin), (VIEWER, Role::Viewer)] {
        accounts::put_user(
            t.t.store.as_ref(),
            &User {
                email: email.into(),
                password_hash: hash.clone(),
                role,
                sites: vec![1],
                created_at: 0,
            },
        )
        .await
        .unwrap();
    }
    t
}

/// The code oathtool gives for `secret` at `at`.
fn oathtool(secret: &str, at: DateTime<Utc>) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret, "--now"])
        .arg(at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .output()
        .expect("oathtool (Debian's oathtool package; scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[derive(Clone, Default)]
struct Who {
    cookie: Option<String>,
    csrf: Option<String>,
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
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = &who.cookie {
        req = req.header(header::COOKIE, c);
    }
    if let Some(c) = &who.csrf {
        req = req.header("x-csrf-token", c);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let r = t.send("192.0.2.10", req).await;
    (r.status(), body_json(r).await)
}

/// A login attempt: the browser's credentials when it succeeded, else the status and body.
async fn login(t: &TestApp, email: &str, code: Option<&str>) -> Result<Who, (StatusCode, Value)> {
    let body = json!({"email": email, "password": PASSWORD, "code": code});
    let req = Request::post("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let r = t.send("192.0.2.10", req).await;
    if r.status() != StatusCode::OK {
        let status = r.status();
        return Err((status, body_json(r).await));
    }
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    let me = body_json(r).await;
    Ok(Who {
        cookie: Some(cookie.split(';').next().unwrap().to_string()),
        csrf: Some(me["csrf"].as_str().unwrap().to_string()),
    })
}

/// Sets up a second factor for the logged-in `who`; returns the secret and recovery codes.
async fn turn_on(t: &TestApp, who: &Who, email: &str) -> (String, Vec<String>) {
    let (status, s) = call(t, who, "POST", "/api/auth/two-factor/setup", None).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let secret = s["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    let uri = s["uri"].as_str().unwrap();
    assert!(
        uri.starts_with(&format!(
            "otpauth://totp/Footfall:{}?secret={secret}&issuer=Footfall",
            email.replace('@', "%40").replace('.', "%2E")
        )),
        "{uri}"
    );
    assert!(s["qr_svg"].as_str().unwrap().contains("<svg"));
    // A code from another time does not confirm it.
    let stale = oathtool(&secret, t.clock.now() - Duration::minutes(10));
    let (status, e) = call(
        t,
        who,
        "POST",
        "/api/auth/two-factor/enable",
        Some(json!({"code": stale})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    let code = oathtool(&secret, t.clock.now());
    let (status, r) = call(
        t,
        who,
        "POST",
        "/api/auth/two-factor/enable",
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let codes: Vec<String> = serde_json::from_value(r["recovery_codes"].clone()).unwrap();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn a_second_factor_is_set_up_asked_for_and_taken_once(b: Backend) {
    let t = setup(b, "two_factor_login").await;
    let first = login(&t, ADMIN, None).await.unwrap();
    let (secret, codes) = turn_on(&t, &first, ADMIN).await;
    // Turning it on ends the user's other sessions but keeps this one.
    let (status, me) = call(&t, &first, "GET", "/api/auth/me", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me["two_factor"],
        json!({"enabled": true, "required": false, "recovery_codes_left": 10})
    );

    // The password alone is not enough; the answer says a code is wanted.
    let (status, e) = login(&t, ADMIN, None).await.err().unwrap();
    assert_eq!(
        (status, e["two_factor"].clone()),
        (StatusCode::UNAUTHORIZED, json!(true)),
        "{e}"
    );
    // The code of the step in which it was turned on was taken; the next step's is accepted
    // (a step early, as a clock a little fast gives it).
    let used = oathtool(&secret, t.clock.now());
    assert!(
        login(&t, ADMIN, Some(&used)).await.is_err(),
        "a code is taken once"
    );
    t.clock.advance(Duration::seconds(30));
    let next = oathtool(&secret, t.clock.now());
    let second = login(&t, ADMIN, Some(&next)).await.unwrap();
    assert!(
        login(&t, ADMIN, Some(&next)).await.is_err(),
        "a code is taken once"
    );
    // A recovery code works once, in any case and with or without its dash.
    let recovery = codes[3].to_uppercase().replace('-', "");
    login(&t, ADMIN, Some(&recovery)).await.unwrap();
    let (status, _) = login(&t, ADMIN, Some(&codes[3])).await.err().unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, me) = call(&t, &second, "GET", "/api/auth/me", None).await;
    assert_eq!(me["two_factor"]["recovery_codes_left"], 9);

    // New recovery codes for a current code; the old ones stop working.
    t.clock.advance(Duration::seconds(30));
    let code = oathtool(&secret, t.clock.now());
    let (status, r) = call(
        &t,
        &second,
        "POST",
        "/api/auth/two-factor/recovery-codes",
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let fresh: Vec<String> = serde_json::from_value(r["recovery_codes"].clone()).unwrap();
    assert!(fresh.iter().all(|c| !codes.contains(c)));
    assert!(login(&t, ADMIN, Some(&codes[0])).await.is_err());

    // The user's sessions: listed, and one ended from another.
    let (status, list) = call(&t, &second, "GET", "/api/auth/sessions", None).await;
    assert_eq!(status, StatusCode::OK);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{list}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = call(
        &t,
        &second,
        "DELETE",
        &format!("/api/auth/sessions/{other}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = call(&t, &second, "GET", "/api/auth/sessions", None).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2);
    let (status, _) = call(&t, &second, "DELETE", "/api/auth/sessions/zzzzzzzz", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Wrong codes are limited like wrong passwords: the tenth in 15 minutes is the last.
    t.clock.advance(Duration::minutes(16));
    let mut limited = None;
    for i in 0..12 {
        if let Err((status, _)) = login(&t, ADMIN, Some("000000")).await
            && status == StatusCode::TOO_MANY_REQUESTS
        {
            limited = Some(i);
            break;
        }
    }
    assert_eq!(limited, Some(10), "ten wrong codes, then refused");
    let right = oathtool(&secret, t.clock.now());
    let (status, _) = login(&t, ADMIN, Some(&right)).await.err().unwrap();
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "even a right code waits"
    );

    // Turned off with the password; the password alone logs in again.
    t.clock.advance(Duration::minutes(16));
    let (status, _) = call(
        &t,
        &second,
        "POST",
        "/api/auth/two-factor/disable",
        Some(json!({"password": "wrong password!"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &t,
        &second,
        "POST",
        "/api/auth/two-factor/disable",
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    login(&t, ADMIN, None).await.unwrap();
    t.app.shutdown().await;
}

async fn the_server_can_require_it_of_everyone(b: Backend) {
    let t = setup(b, "two_factor_required").await;
    let admin = login(&t, ADMIN, None).await.unwrap();
    // Only an admin who has a second factor may require one.
    let (status, e) = call(
        &t,
        &admin,
        "PUT",
        "/api/server/settings",
        Some(json!({"require_two_factor": true})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    let (admin_secret, _) = turn_on(&t, &admin, ADMIN).await;
    let viewer = login(&t, VIEWER, None).await.unwrap();
    let (status, e) = call(
        &t,
        &viewer,
        "PUT",
        "/api/server/settings",
        Some(json!({"require_two_factor": false})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    let (status, s) = call(
        &t,
        &admin,
        "PUT",
        "/api/server/settings",
        Some(json!({"require_two_factor": true})),
    )
    .await;
    assert_eq!(
        (status, s),
        (StatusCode::OK, json!({"require_two_factor": true}))
    );

    // A viewer without a second factor can log in, and do nothing but set one up.
    let (status, e) = call(&t, &viewer, "GET", "/api/sites", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("requires two-factor login"),
        "{e}"
    );
    let (_, me) = call(&t, &viewer, "GET", "/api/auth/me", None).await;
    assert_eq!(
        me["two_factor"],
        json!({"enabled": false, "required": true, "recovery_codes_left": 0})
    );
    turn_on(&t, &viewer, VIEWER).await;
    let (status, sites) = call(&t, &viewer, "GET", "/api/sites", None).await;
    assert_eq!(status, StatusCode::OK, "{sites}");
    // Required: it cannot be turned off.
    let (status, _) = call(
        &t,
        &viewer,
        "POST",
        "/api/auth/two-factor/disable",
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Lifting the requirement.
    t.clock.advance(Duration::seconds(30));
    let (status, _) = call(
        &t,
        &admin,
        "PUT",
        "/api/server/settings",
        Some(json!({"require_two_factor": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, s) = call(&t, &admin, "GET", "/api/server/settings", None).await;
    assert_eq!(s["require_two_factor"], json!(false));
    assert_eq!(s["mail"], json!({"configured": false}));
    let code = oathtool(&admin_secret, t.clock.now());
    login(&t, ADMIN, Some(&code)).await.unwrap();
    t.app.shutdown().await;
}
