//! Plausible's Sites API on every store: scoped keys, Plausible's shapes, texts and cursor
//! pages, and what each change does to Footfall's own sites, goals, links and viewers. Then,
//! against a listening collector, the examples of Plausible's documentation
//! (plausible/docs, `docs/sites-api.md`: `curl -F …`) run as written but for the host, and
//! PyPI's `plausible-mcp` 0.1.2 (MIT) `doctor` lists the sites. Last, the OpenAPI document:
//! every operation it names is routed, and PyPI's `openapi-spec-validator` (Apache-2.0)
//! accepts it.

use std::net::SocketAddr;
use std::process::Command;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use footfall::accounts::{Role, User};
use footfall::apikey::Scope;
use footfall_tests::{Backend, TestApp, both_stores};
use serde_json::{Value, json};

both_stores!(
    sites_api_answers_as_plausible_does,
    plausible_examples_and_clients_run_unchanged,
    the_openapi_document_names_every_route_and_is_valid,
);

const MISSING_KEY: &str =
    "Missing API key. Please use a valid Plausible API key as a Bearer Token.";
const INVALID_KEY: &str = "Invalid API key. Please make sure you're using a valid API key with access to the resource you've requested.";
const MISSING_SITE: &str =
    "Missing site ID. Please provide the required site_id parameter with your request.";

fn now() -> DateTime<Utc> {
    "2026-12-06T12:00:00Z".parse().unwrap()
}

struct Keys {
    read: String,
    provision: String,
    /// A Stats API key of a.test.
    stats: String,
}

/// Three sites, made in the order a, b, c; a Sites API key of each scope and a Stats key.
async fn start(b: Backend, name: &str) -> (TestApp, Keys) {
    let t = TestApp::start(
        b,
        name,
        &[
            ("a.test", "UTC"),
            ("b.test", "Europe/Berlin"),
            ("c.test", "UTC"),
        ],
        now(),
    )
    .await;
    let store = t.t.store.as_ref();
    let (read, _) = footfall::apikey::create_sites_key(store, Scope::SitesRead, "ro", "test", 0)
        .await
        .unwrap();
    let (provision, _) =
        footfall::apikey::create_sites_key(store, Scope::SitesProvision, "rw", "test", 0)
            .await
            .unwrap();
    let a = t.t.site("a.test").await;
    let stats = footfall::apikey::generate(a.id, 0);
    store.meta().add_api_key(&stats.record).await.unwrap();
    let keys = Keys {
        read,
        provision,
        stats: stats.secret,
    };
    (t, keys)
}

/// One request: `body` as JSON, or as a form when it is a string.
async fn call(
    t: &TestApp,
    method: &str,
    key: Option<&str>,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = match body {
        None => req.body(Body::empty()),
        Some(Value::String(form)) => req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form)),
        Some(json) => req
            .header("content-type", "application/json")
            .body(Body::from(json.to_string())),
    }
    .unwrap();
    let r = t.send("192.0.2.9", req).await;
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn refused(answer: (StatusCode, Value), status: StatusCode, text: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1, json!({"error": text}));
}

async fn sites_api_answers_as_plausible_does(b: Backend) {
    let (t, k) = start(b, "sites_api").await;
    let (read, prov, stats) = (
        Some(k.read.as_str()),
        Some(k.provision.as_str()),
        Some(k.stats.as_str()),
    );

    // Keys and scopes, with Plausible's texts.
    refused(
        call(&t, "GET", None, "/api/v1/sites", None).await,
        StatusCode::UNAUTHORIZED,
        MISSING_KEY,
    );
    refused(
        call(&t, "GET", Some("ff_nonsense"), "/api/v1/sites", None).await,
        StatusCode::UNAUTHORIZED,
        INVALID_KEY,
    );
    refused(
        call(
            &t,
            "POST",
            read,
            "/api/v1/sites",
            Some(json!({"domain": "x.test"})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        INVALID_KEY,
    );
    refused(
        call(
            &t,
            "POST",
            stats,
            "/api/v1/sites",
            Some(json!({"domain": "x.test"})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        INVALID_KEY,
    );
    // A missing site is named before the key is looked at.
    refused(
        call(&t, "GET", Some("ff_nonsense"), "/api/v1/sites/goals", None).await,
        StatusCode::BAD_REQUEST,
        MISSING_SITE,
    );
    refused(
        call(&t, "GET", read, "/api/v1/sites/nowhere.test", None).await,
        StatusCode::NOT_FOUND,
        "Site could not be found",
    );
    // A Stats API key reads its own site only.
    let (s, own) = call(&t, "GET", stats, "/api/v1/sites", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        own,
        json!({"sites": [{"domain": "a.test", "timezone": "UTC"}],
            "meta": {"after": null, "before": null, "limit": 100}})
    );
    refused(
        call(&t, "GET", stats, "/api/v1/sites/b.test", None).await,
        StatusCode::UNAUTHORIZED,
        INVALID_KEY,
    );

    // Pages of two, newest first, forward to the end and back to the start.
    let (_, first) = call(&t, "GET", read, "/api/v1/sites?limit=2", None).await;
    let domains = |v: &Value| -> Vec<String> {
        v["sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["domain"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(domains(&first), ["c.test", "b.test"]);
    assert_eq!(first["meta"]["before"], Value::Null);
    assert_eq!(first["meta"]["limit"], 2);
    let after = first["meta"]["after"].as_str().unwrap();
    let (_, second) = call(
        &t,
        "GET",
        read,
        &format!("/api/v1/sites?limit=2&after={after}"),
        None,
    )
    .await;
    assert_eq!(domains(&second), ["a.test"]);
    assert_eq!(second["meta"]["after"], Value::Null);
    let before = second["meta"]["before"].as_str().unwrap();
    let (_, back) = call(
        &t,
        "GET",
        read,
        &format!("/api/v1/sites?limit=2&before={before}"),
        None,
    )
    .await;
    assert_eq!(back, first);
    let (s, _) = call(&t, "GET", read, "/api/v1/sites?after=%21%21", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Creating: Plausible's cleaning of the domain, its default zone and its texts.
    let (s, made) = call(
        &t,
        "POST",
        prov,
        "/api/v1/sites",
        Some(json!({"domain": "HTTPS://www.New.test/", "timezone": "Europe/Tallinn"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{made}");
    assert_eq!(
        made,
        json!({"domain": "new.test", "timezone": "Europe/Tallinn", "custom_properties": []})
    );
    assert!(
        t.t.store
            .meta()
            .sites()
            .await
            .unwrap()
            .iter()
            .any(|s| s.domain == "new.test")
    );
    let (_, utc) = call(
        &t,
        "POST",
        prov,
        "/api/v1/sites",
        Some(json!({"domain": "utc.test"})),
    )
    .await;
    assert_eq!(utc["timezone"], "Etc/UTC");
    let (s, dup) = call(
        &t,
        "POST",
        prov,
        "/api/v1/sites",
        Some(json!({"domain": "new.test"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        dup["error"]
            .as_str()
            .unwrap()
            .starts_with("domain: This domain cannot be registered."),
        "{dup}"
    );
    for (body, text) in [
        (json!({}), "domain: can't be blank"),
        (
            json!({"domain": "z.test", "timezone": "Mars/Olympus"}),
            "timezone: is invalid",
        ),
    ] {
        refused(
            call(&t, "POST", prov, "/api/v1/sites", Some(body)).await,
            StatusCode::BAD_REQUEST,
            text,
        );
    }
    let (s, bad) = call(
        &t,
        "POST",
        prov,
        "/api/v1/sites",
        Some(json!({"domain": "a b.test"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(bad["error"].as_str().unwrap().starts_with("domain: "));

    // Renaming keeps the site (its id, so its statistics); the same name, or none, is refused.
    let id = t.t.site("new.test").await.id;
    let (s, renamed) = call(
        &t,
        "PUT",
        prov,
        "/api/v1/sites/new.test",
        Some(json!({"domain": "renamed.test"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["domain"], "renamed.test");
    assert_eq!(t.t.site("renamed.test").await.id, id);
    refused(
        call(
            &t,
            "PUT",
            prov,
            "/api/v1/sites/renamed.test",
            Some(json!({"domain": "renamed.test"})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "domain: New domain must be different than the current one",
    );
    refused(
        call(
            &t,
            "PUT",
            prov,
            "/api/v1/sites/renamed.test",
            Some(json!({})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "Payload must contain at least one of the parameters 'domain', 'tracker_script_configuration'",
    );

    // Goals, as forms: found or made, the same id when asked again, and Footfall counts them.
    let form = |s: &str| Some(Value::String(s.to_string()));
    let (s, signup) = call(
        &t,
        "PUT",
        prov,
        "/api/v1/sites/goals",
        form("site_id=a.test&goal_type=event&event_name=Signup"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{signup}");
    assert_eq!(signup["display_name"], "Signup");
    assert_eq!(signup["goal_type"], "event");
    assert_eq!(signup["page_path"], Value::Null);
    assert_eq!(signup["domain"], "a.test");
    let (_, again) = call(
        &t,
        "PUT",
        prov,
        "/api/v1/sites/goals",
        form("site_id=a.test&goal_type=event&event_name=Signup&display_name=Other"),
    )
    .await;
    assert_eq!(again, signup, "found, not changed");
    // A second later (goals made in the same second have no order between them).
    t.clock.advance(chrono::Duration::seconds(1));
    let (_, pricing) = call(
        &t,
        "PUT",
        prov,
        "/api/v1/sites/goals",
        Some(
            json!({"site_id": "a.test", "goal_type": "page", "page_path": "pricing",
            "custom_props": {"plan": "pro"}}),
        ),
    )
    .await;
    assert_eq!(pricing["page_path"], "/pricing");
    assert_eq!(pricing["display_name"], "Visit /pricing");
    assert_eq!(pricing["custom_props"], json!({"plan": "pro"}));
    let a = t.t.site("a.test").await;
    let stored = footfall::goals::goals_of(t.t.store.as_ref(), a.id)
        .await
        .unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|g| g.display_name.as_str())
            .collect::<Vec<_>>(),
        ["Signup", "Visit /pricing"]
    );
    let (_, listed) = call(&t, "GET", stats, "/api/v1/sites/goals?site_id=a.test", None).await;
    let ids: Vec<&Value> = listed["goals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["id"])
        .collect();
    assert_eq!(
        ids,
        [&pricing["id"], &signup["id"]],
        "newest first: {listed}"
    );
    assert!(listed["goals"][0].get("domain").is_none());
    for (body, text) in [
        (
            "site_id=a.test",
            "Parameter `goal_type` is required to create a goal",
        ),
        (
            "site_id=a.test&goal_type=event",
            "Parameter `event_name` is required to create a goal",
        ),
        (
            "site_id=a.test&goal_type=page",
            "Parameter `page_path` is required to create a goal",
        ),
    ] {
        refused(
            call(&t, "PUT", prov, "/api/v1/sites/goals", form(body)).await,
            StatusCode::BAD_REQUEST,
            text,
        );
    }
    let gone = format!("/api/v1/sites/goals/{}", signup["id"]);
    let (s, deleted) = call(
        &t,
        "DELETE",
        prov,
        &gone,
        Some(json!({"site_id": "a.test"})),
    )
    .await;
    assert_eq!((s, deleted), (StatusCode::OK, json!({"deleted": true})));
    refused(
        call(
            &t,
            "DELETE",
            prov,
            &gone,
            Some(json!({"site_id": "a.test"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "Goal could not be found",
    );
    assert_eq!(
        footfall::goals::goals_of(t.t.store.as_ref(), a.id)
            .await
            .unwrap()
            .len(),
        1
    );

    // Custom properties: alphabetical, no repeats, names with slashes.
    for p in ["title", "author", "title", "a/b/c"] {
        let (s, made) = call(
            &t,
            "PUT",
            prov,
            "/api/v1/sites/custom-props",
            Some(json!({"site_id": "a.test", "property": p})),
        )
        .await;
        assert_eq!((s, made), (StatusCode::OK, json!({"created": true})));
    }
    let (_, props) = call(
        &t,
        "GET",
        read,
        "/api/v1/sites/custom-props?site_id=a.test",
        None,
    )
    .await;
    assert_eq!(
        props,
        json!({"custom_properties": [{"property": "a/b/c"}, {"property": "author"}, {"property": "title"}]})
    );
    let (_, deleted) = call(
        &t,
        "DELETE",
        prov,
        "/api/v1/sites/custom-props/a/b/c?site_id=a.test",
        None,
    )
    .await;
    assert_eq!(deleted, json!({"deleted": true}));
    let (_, site) = call(&t, "GET", read, "/api/v1/sites/a.test", None).await;
    assert_eq!(
        site,
        json!({"domain": "a.test", "timezone": "UTC", "custom_properties": ["author", "title"]})
    );

    // A shared link: the same address when asked again by name; it opens the dashboard.
    let (s, link) = call(
        &t,
        "PUT",
        prov,
        "/api/v1/sites/shared-links",
        Some(json!({"site_id": "a.test", "name": "WordPress"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{link}");
    assert_eq!(link["name"], "WordPress");
    let (_, same) = call(
        &t,
        "PUT",
        prov,
        "/api/v1/sites/shared-links",
        Some(json!({"site_id": "a.test", "name": "WordPress"})),
    )
    .await;
    assert_eq!(same, link);
    let (_, other) = call(
        &t,
        "PUT",
        prov,
        "/api/v1/sites/shared-links",
        Some(json!({"site_id": "a.test", "name": "Intranet"})),
    )
    .await;
    assert_ne!(other["url"], link["url"]);
    let url = link["url"].as_str().unwrap();
    let path = &url[url.find("/share/").unwrap()..];
    let page = t
        .send("192.0.2.9", Request::get(path).body(Body::empty()).unwrap())
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let token = path.trim_start_matches("/share/");
    let opened = footfall::accounts::share_by_token(t.t.store.as_ref(), token)
        .await
        .unwrap()
        .expect("the link opens a.test");
    assert_eq!(opened.site_id, a.id);
    refused(
        call(
            &t,
            "PUT",
            prov,
            "/api/v1/sites/shared-links",
            Some(json!({"site_id": "a.test"})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "Parameter `name` is required to create a shared link",
    );

    // Guests are viewers: one who exists is given the site, and loses it again.
    let store = t.t.store.as_ref();
    footfall::accounts::put_user(
        store,
        &User {
            email: "bob@example.com".into(),
            password_hash: String::new(),
            role: Role::Viewer,
            sites: vec![],
            created_at: 0,
        },
    )
    .await
    .unwrap();
    let (s, bob) = call(
        &t,
        "PUT",
        prov,
        "/api/v1/sites/guests",
        Some(json!({"site_id": "a.test", "email": "Bob@Example.com", "role": "viewer"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{bob}");
    assert_eq!(
        bob,
        json!({"email": "bob@example.com", "role": "viewer", "status": "accepted"})
    );
    assert!(bob_reads(&t, a.id).await);
    let (_, guests) = call(&t, "GET", read, "/api/v1/sites/guests?site_id=a.test", None).await;
    assert_eq!(
        guests,
        json!({"guests": [bob], "meta": {"after": null, "before": null, "limit": 100}})
    );
    refused(
        call(
            &t,
            "PUT",
            prov,
            "/api/v1/sites/guests",
            Some(json!({"site_id": "a.test", "email": "bob@example.com", "role": "owner"})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "Parameter `role` is required to create guest. Possible values: `viewer` or `editor`",
    );
    // A new address needs an invitation by e-mail, which this collector cannot send.
    let (s, no_mail) = call(
        &t,
        "PUT",
        prov,
        "/api/v1/sites/guests",
        Some(json!({"site_id": "a.test", "email": "new@example.com", "role": "viewer"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        no_mail["error"].as_str().unwrap().contains("smtp_url"),
        "{no_mail}"
    );
    let (_, deleted) = call(
        &t,
        "DELETE",
        prov,
        "/api/v1/sites/guests/bob@example.com?site_id=a.test",
        None,
    )
    .await;
    assert_eq!(deleted, json!({"deleted": true}));
    assert!(!bob_reads(&t, a.id).await);

    // Deleting a site deletes it, once.
    let (s, deleted) = call(&t, "DELETE", prov, "/api/v1/sites/renamed.test", None).await;
    assert_eq!((s, deleted), (StatusCode::OK, json!({"deleted": true})));
    refused(
        call(&t, "DELETE", prov, "/api/v1/sites/renamed.test", None).await,
        StatusCode::NOT_FOUND,
        "Site could not be found",
    );
    assert!(
        !t.t.store
            .meta()
            .sites()
            .await
            .unwrap()
            .iter()
            .any(|s| s.id == id)
    );
    t.app.shutdown().await;
}

async fn bob_reads(t: &TestApp, site_id: u32) -> bool {
    footfall::accounts::user(t.t.store.as_ref(), "bob@example.com")
        .await
        .unwrap()
        .unwrap()
        .can_read(site_id)
}

async fn listen(t: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let app = footfall::http::router(t.app.state.clone())
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Runs a command; its standard output as JSON. The worker it blocks hands its tasks (the
/// listening collector's among them) to the other first.
fn json_of(cmd: &mut Command) -> Value {
    let out = tokio::task::block_in_place(|| cmd.output()).expect("the command runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{stdout}"))
}

/// One of Plausible's documented examples (`docs/sites-api.md`), as written but for the host.
fn curl(base: &str, token: &str, method: &str, path: &str, fields: &[&str]) -> Value {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "30",
        "-X",
        method,
        &format!("{base}{path}"),
    ])
    .args(["-H", &format!("Authorization: Bearer {token}")]);
    for f in fields {
        cmd.args(["-F", f]);
    }
    json_of(&mut cmd)
}

async fn plausible_examples_and_clients_run_unchanged(b: Backend) {
    let (t, k) = start(b, "sites_api_clients").await;
    let base = listen(&t).await;
    let token = k.provision.as_str();

    // The documentation's examples, each field quoted as the documentation quotes it.
    let made = curl(
        &base,
        token,
        "POST",
        "/api/v1/sites",
        &[r#"domain="test-domain.com""#, r#"timezone="Europe/London""#],
    );
    assert_eq!(
        made,
        json!({"domain": "test-domain.com", "timezone": "Europe/London", "custom_properties": []})
    );
    let renamed = curl(
        &base,
        token,
        "PUT",
        "/api/v1/sites/test-domain.com",
        &[r#"domain="new-test-domain.com""#],
    );
    assert_eq!(renamed["domain"], "new-test-domain.com");
    let link = curl(
        &base,
        token,
        "PUT",
        "/api/v1/sites/shared-links",
        &[r#"site_id="new-test-domain.com""#, r#"name="Wordpress""#],
    );
    assert_eq!(link["name"], "Wordpress");
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{base}/share/"))
    );
    let goal = curl(
        &base,
        token,
        "PUT",
        "/api/v1/sites/goals",
        &[
            r#"site_id="new-test-domain.com""#,
            r#"goal_type="event""#,
            r#"event_name="Signup""#,
        ],
    );
    assert_eq!(goal["event_name"], "Signup");
    assert_eq!(goal["domain"], "new-test-domain.com");
    let goals = curl(
        &base,
        token,
        "GET",
        "/api/v1/sites/goals?site_id=new-test-domain.com",
        &[],
    );
    assert_eq!(goals["goals"][0]["id"], goal["id"]);
    let deleted = curl(
        &base,
        token,
        "DELETE",
        &format!("/api/v1/sites/goals/{}", goal["id"]),
        &[r#"site_id="new-test-domain.com""#],
    );
    assert_eq!(deleted, json!({"deleted": true}));
    let site = curl(
        &base,
        token,
        "GET",
        "/api/v1/sites/new-test-domain.com",
        &[],
    );
    assert_eq!(site["timezone"], "Europe/London");
    let listed = curl(&base, token, "GET", "/api/v1/sites", &[]);
    assert_eq!(listed["sites"].as_array().unwrap().len(), 4);
    assert_eq!(
        listed["meta"],
        json!({"after": null, "before": null, "limit": 100})
    );
    let deleted = curl(
        &base,
        token,
        "DELETE",
        "/api/v1/sites/new-test-domain.com",
        &[],
    );
    assert_eq!(deleted, json!({"deleted": true}));

    // plausible-mcp's `doctor` lists the sites a key reaches: every one with a Sites API key,
    // its own with a Stats API key.
    let python = std::env::var("FOOTFALL_TEST_PLAUSIBLE_MCP_PYTHON")
        .expect("FOOTFALL_TEST_PLAUSIBLE_MCP_PYTHON: run the tests with scripts/test.sh");
    for (key, sites) in [
        (k.read.as_str(), json!(["c.test", "b.test", "a.test"])),
        (k.stats.as_str(), json!(["a.test"])),
    ] {
        let report = json_of(
            Command::new(&python)
                .args([
                    "-c",
                    "from plausible_mcp import server as s; print(s.doctor())",
                ])
                .env("PLAUSIBLE_BASE_URL", &base)
                .env("PLAUSIBLE_API_KEY", key)
                .env("DO_NOT_TRACK", "1"),
        );
        assert_eq!(report["status"], "healthy", "{report}");
        assert_eq!(report["sample_sites"], sites, "{report}");
    }
    // The listening server holds the collector's state: no shutdown to wait for.
}

async fn the_openapi_document_names_every_route_and_is_valid(b: Backend) {
    let (t, _) = start(b, "openapi").await;
    let (s, doc) = call(&t, "GET", None, "/api/docs/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            // Each parameter filled in; the route must exist for that method: whatever the
            // handler says (most want a login), it is not axum's empty 404 or a 405.
            let concrete = path
                .replace("{domain}", "a.test")
                .replace("{site_id}", "a.test")
                .replace("{rest}", "a.test")
                .replace("{property}", "x")
                .replace("{file}", "script.hash.js")
                .replace("{email}", "x@example.com")
                .replace("{token}", "0")
                .replace("{goal_id}", "1")
                .replace("{id}", "1");
            assert!(!concrete.contains('{'), "{path}");
            let r = t
                .send(
                    "192.0.2.9",
                    Request::builder()
                        .method(method.to_ascii_uppercase().as_str())
                        .uri(&concrete)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await;
            let status = r.status();
            let body = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !(status == StatusCode::NOT_FOUND && body.is_empty()),
                "{method} {path}: not routed"
            );
        }
    }
    // Plausible's public routes are among them.
    for p in [
        "/api/event",
        "/api/v2/query",
        "/api/v1/stats/breakdown",
        "/api/v1/sites/guests",
        "/api/docs/query/schema.json",
    ] {
        assert!(paths.contains_key(p), "{p}");
    }
    assert!(operations > 80, "{operations}");
    // An independent validator reads it as OpenAPI 3.1.
    let python = std::env::var("FOOTFALL_TEST_OPENAPI_PYTHON")
        .expect("FOOTFALL_TEST_OPENAPI_PYTHON: run the tests with scripts/test.sh");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), doc.to_string()).unwrap();
    let out = tokio::task::block_in_place(|| {
        Command::new(python)
            .args(["-m", "openapi_spec_validator"])
            .arg(file.path())
            .output()
    })
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t.app.shutdown().await;
}
