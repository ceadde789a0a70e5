//! Plausible's Stats API v1 on every store, with the seed's documented site history
//! (`footfall_tests::seed`): Plausible's parameters, shapes, filter grammar and error texts
//! through the router, then two v1 clients from the package registries run unchanged against
//! a listening collector: npm's `plausible` 2.2.1 (MIT) and PyPI's `plausible-mcp` 0.1.2
//! (MIT). The expected figures are the seed's own account of its visits.

use std::net::SocketAddr;
use std::process::Command;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use footfall::store::EventRow;
use footfall_tests::{Backend, TestApp, both_stores, seed, workspace_root};
use serde_json::{Value, json};

both_stores!(
    v1_answers_as_plausible_does,
    v1_clients_from_the_registries_run_unchanged
);

fn now() -> DateTime<Utc> {
    "2026-12-06T12:00:00Z".parse().unwrap()
}

/// The seed (4 visitors in 30 days, 3 of them today) on shop.test (UTC), a goal, and a key.
async fn start(b: Backend, name: &str) -> (TestApp, String) {
    let events: Vec<EventRow> = seed::events(1, "shop.test", now());
    let t = TestApp::start_seeded(b, name, &[("shop.test", "UTC")], now(), &events).await;
    footfall::goals::add(
        t.t.store.as_ref(),
        1,
        footfall::goals::NewGoal::from_json(&json!({"type": "event", "name": "Signup"})).unwrap(),
        0,
    )
    .await
    .unwrap();
    let key = footfall::apikey::generate(1, 0);
    t.t.store.meta().add_api_key(&key.record).await.unwrap();
    (t, key.secret)
}

async fn get(t: &TestApp, key: Option<&str>, path: &str) -> (StatusCode, Value) {
    let mut req = Request::get(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let r = t.send("192.0.2.9", req.body(Body::empty()).unwrap()).await;
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn day(offset: i64) -> String {
    (now() + Duration::days(offset)).date_naive().to_string()
}

async fn v1_answers_as_plausible_does(b: Backend) {
    let (t, key) = start(b, "v1_api").await;
    let k = Some(key.as_str());
    let month = format!("{},{}", day(-29), day(0));
    let ok = |path: String| {
        let t = &t;
        async move {
            let (status, body) = get(t, k, &path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };

    // The current visitors: the three of the last minutes.
    assert_eq!(
        ok("/api/v1/stats/realtime/visitors?site_id=shop.test".into()).await,
        json!(seed::VISITORS_TODAY)
    );

    // Aggregate over the seed's 30 days, and today against yesterday (no one then).
    let r = ok(format!("/api/v1/stats/aggregate?site_id=shop.test&period=custom&date={month}&metrics=visitors,pageviews,bounce_rate,visits")).await;
    assert_eq!(
        r,
        json!({"results": {"visitors": {"value": seed::VISITORS_30D}, "pageviews": {"value": seed::PAGEVIEWS_30D},
                           "bounce_rate": {"value": seed::BOUNCE_RATE_30D}, "visits": {"value": 4}}})
    );
    let r = ok("/api/v1/stats/aggregate?site_id=shop.test&period=day&metrics=visitors,bounce_rate&compare=previous_period".into()).await;
    assert_eq!(
        r["results"]["visitors"],
        json!({"value": 3, "change": 100, "comparison_value": 0})
    );
    assert_eq!(
        r["results"]["bounce_rate"]["change"],
        Value::Null,
        "no change from a rate of nothing"
    );
    // `7d` is the seven days before `date` (today by default): only visitor 4.
    let r = ok("/api/v1/stats/aggregate?site_id=shop.test&period=7d".into()).await;
    assert_eq!(r, json!({"results": {"visitors": {"value": 1}}}));
    let r = ok(format!(
        "/api/v1/stats/aggregate?site_id=shop.test&period=7d&date={}",
        day(1)
    ))
    .await;
    assert_eq!(r["results"]["visitors"]["value"], 4);

    // Timeseries: every day of the range, oldest first; today by hour.
    let r = ok(
        "/api/v1/stats/timeseries?site_id=shop.test&period=7d&metrics=visitors,visit_duration"
            .into(),
    )
    .await;
    let rows = r["results"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[0]["date"], day(-7));
    assert_eq!(rows[6]["date"], day(-1));
    for row in rows {
        let visitors = if row["date"] == day(-3) { 1 } else { 0 };
        assert_eq!(row["visitors"], visitors, "{row}");
        if visitors == 0 {
            assert_eq!(row["visit_duration"], Value::Null);
        }
    }
    let r =
        ok("/api/v1/stats/timeseries?site_id=shop.test&period=day&metrics=pageviews".into()).await;
    let rows = r["results"].as_array().unwrap();
    assert_eq!(rows.len(), 24);
    assert_eq!(
        rows[11],
        json!({"date": format!("{} 11:00:00", day(0)), "pageviews": 4})
    );
    let r = ok(format!(
        "/api/v1/stats/timeseries?site_id=shop.test&period=custom&date={month}&interval=month"
    ))
    .await;
    assert_eq!(
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["visitors"].as_i64().unwrap())
            .sum::<i64>(),
        4
    );

    // Breakdowns, keyed by the property's last part; no source is "Direct / None".
    let base = format!("/api/v1/stats/breakdown?site_id=shop.test&period=custom&date={month}");
    let r = ok(format!("{base}&property=visit:source")).await;
    assert_eq!(
        r,
        json!({"results": [{"source": "Google", "visitors": seed::GOOGLE_VISITORS},
                           {"source": "Direct / None", "visitors": 1}, {"source": "Hacker News", "visitors": 1}]})
    );
    let r = ok(format!("{base}&property=visit:source&limit=1&page=2")).await;
    assert_eq!(
        r,
        json!({"results": [{"source": "Direct / None", "visitors": 1}]})
    );
    let r = ok(format!("{base}&property=visit:source&page=9")).await;
    assert_eq!(r, json!({"results": []}));
    let r = ok(format!(
        "{base}&property=event:page&metrics=visitors,pageviews"
    ))
    .await;
    assert_eq!(
        r,
        json!({"results": [{"page": "/", "visitors": 2, "pageviews": 2}, {"page": "/pricing", "visitors": 2, "pageviews": 2},
                           {"page": "/blog", "visitors": 1, "pageviews": 1}]})
    );
    let r = ok(format!(
        "{base}&property=event:goal&metrics=visitors,conversion_rate"
    ))
    .await;
    assert_eq!(
        (&r["results"][0]["goal"], &r["results"][0]["visitors"]),
        (&json!("Signup"), &json!(1)),
        "{r}"
    );
    assert_eq!(
        r["results"][0]["conversion_rate"].as_f64(),
        Some(25.0),
        "1 of 4 visitors"
    );
    let r = ok(format!("{base}&property=visit:browser_version")).await;
    assert_eq!(
        r["results"][0],
        json!({"browser_version": "120", "browser": "Chrome", "visitors": 3})
    );
    let r = ok(format!(
        "{base}&property=event:props:plan&filters=event:name%3D%3DSignup"
    ))
    .await;
    assert_eq!(r, json!({"results": [{"plan": "pro", "visitors": 1}]}));

    // The filter grammar: `==`, `!=`, `|`, `;`, `*`, goals.
    let pages = |filters: &str| {
        let base = base.clone();
        let filters = filters
            .replace('=', "%3D")
            .replace('|', "%7C")
            .replace(';', "%3B")
            .replace(' ', "%20");
        async move {
            let r = ok(format!("{base}&property=event:page&filters={filters}")).await;
            r["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| format!("{}:{}", r["page"].as_str().unwrap(), r["visitors"]))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(pages("visit:source==Google").await, ["/:1", "/pricing:1"]);
    assert_eq!(
        pages("visit:source!=Google").await,
        ["/:1", "/blog:1", "/pricing:1"]
    );
    assert_eq!(pages("visit:source==Direct / None").await, ["/blog:1"]);
    assert_eq!(
        pages("visit:browser==Firefox|Chrome;visit:country==DK").await,
        ["/:1", "/blog:1", "/pricing:1"]
    );
    assert_eq!(pages("event:page==/pri*").await, ["/pricing:2"]);
    assert_eq!(pages("event:page!=/pri*").await, ["/:2", "/blog:1"]);
    assert_eq!(pages("event:page==/blog|/").await, ["/:2", "/blog:1"]);
    assert_eq!(pages("event:goal==Signup").await, ["/pricing:1"]);
    assert_eq!(
        pages("visit:country==Denmark").await.len(),
        3,
        "a clause v1 cannot read is left out"
    );
    assert_eq!(pages("nonsense").await.len(), 3);

    // Plausible's errors, word for word.
    for (path, status, text) in [
        (
            "/api/v1/stats/aggregate?site_id=shop.test&period=year",
            400,
            "Error parsing `period` parameter: invalid period `year`. Please find accepted values in our docs: https://plausible.io/docs/stats-api#time-periods",
        ),
        (
            "/api/v1/stats/aggregate?site_id=shop.test&period=custom",
            400,
            "The `date` parameter is required when using a custom period. See https://plausible.io/docs/stats-api#time-periods",
        ),
        (
            "/api/v1/stats/aggregate?site_id=shop.test&period=custom&date=2026-01-01",
            400,
            "Invalid format for `date` parameter. When using a custom period, please include two ISO-8601 formatted dates joined by a comma. See https://plausible.io/docs/stats-api#time-periods",
        ),
        (
            "/api/v1/stats/aggregate?site_id=shop.test&date=2021-dkjbAS",
            400,
            "Error parsing `date` parameter: invalid_format. Please specify a valid date in ISO-8601 format.",
        ),
        (
            "/api/v1/stats/aggregate?site_id=shop.test&date=2021-02-30",
            400,
            "Error parsing `date` parameter: invalid_date. Please specify a valid date in ISO-8601 format.",
        ),
        (
            "/api/v1/stats/aggregate?site_id=shop.test&metrics=visitors,visitors",
            400,
            "Metrics cannot be queried multiple times.",
        ),
        (
            "/api/v1/stats/aggregate?site_id=shop.test&metrics=visitors,%20pageviews",
            400,
            "The metric ` pageviews` is not recognized. Find valid metrics from the documentation: https://plausible.io/docs/stats-api#metrics",
        ),
        (
            "/api/v1/stats/aggregate?site_id=shop.test&metrics=conversion_rate",
            400,
            "Metric `conversion_rate` can only be queried in a goal breakdown or with a goal filter",
        ),
        (
            "/api/v1/stats/aggregate?site_id=shop.test&metrics=visits&filters=event:name%3D%3DSignup",
            400,
            "Session metric `visits` cannot be queried when using a filter on `event:name`.",
        ),
        (
            "/api/v1/stats/timeseries?site_id=shop.test&interval=week",
            400,
            "Error parsing `interval` parameter: invalid interval `week`. Valid intervals are `day`, `month`",
        ),
        (
            "/api/v1/stats/breakdown?site_id=shop.test",
            400,
            "The `property` parameter is required. Please provide at least one property to show a breakdown by.",
        ),
        (
            "/api/v1/stats/breakdown?site_id=shop.test&property=visit:colour",
            400,
            "Invalid property 'visit:colour'. Please provide a valid property for the breakdown endpoint: https://plausible.io/docs/stats-api#properties",
        ),
        (
            "/api/v1/stats/breakdown?site_id=shop.test&property=event:hostname",
            400,
            "Property 'event:hostname' is currently not supported for breakdowns.  Please provide a valid property for the breakdown endpoint: https://plausible.io/docs/stats-api#properties",
        ),
        (
            "/api/v1/stats/breakdown?site_id=shop.test&property=event:page&limit=1001",
            400,
            "Please provide limit as a number between 1 and 1000.",
        ),
        (
            "/api/v1/stats/breakdown?site_id=shop.test&property=event:page&page=0",
            400,
            "Please provide page as a positive number.",
        ),
        (
            "/api/v1/stats/breakdown?site_id=shop.test&property=event:name&metrics=bounce_rate",
            400,
            "Session metric `bounce_rate` cannot be queried for breakdown by `event:name`.",
        ),
        (
            "/api/v1/stats/breakdown?site_id=shop.test&property=event:page&metrics=views_per_visit",
            400,
            "Metric `views_per_visit` is not supported in breakdown queries.",
        ),
        (
            "/api/v1/stats/breakdown?site_id=shop.test&property=event:page&filters=visit:colour%3D%3Dred",
            400,
            "Invalid filter property 'visit:colour'. Please provide a valid filter property: https://plausible.io/docs/stats-api#properties",
        ),
        (
            "/api/v1/stats/breakdown?site_id=shop.test&property=event:page&filters=event:goal%3D%3DPurchase",
            400,
            "The goal `Purchase` is not configured for this site. Find out how to configure goals here: https://plausible.io/docs/stats-api#filtering-by-goals",
        ),
        (
            "/api/v1/stats/aggregate",
            400,
            "Missing site ID. Please provide the required site_id parameter with your request.",
        ),
        (
            "/api/v1/stats/aggregate?site_id=other.test",
            401,
            "Invalid API key or site ID. Please make sure you're using a valid API key with access to the site you've requested.",
        ),
    ] {
        let (got, body) = get(&t, k, path).await;
        assert_eq!(
            (got.as_u16(), body),
            (status, json!({"error": text})),
            "{path}"
        );
    }
    let (got, body) = get(&t, None, "/api/v1/stats/aggregate?site_id=shop.test").await;
    assert_eq!(
        (got, body["error"].as_str().unwrap()),
        (
            StatusCode::UNAUTHORIZED,
            "Missing API key. Please use a valid Plausible API key as a Bearer Token."
        )
    );
    let (got, _) = get(
        &t,
        Some("ff_0000"),
        "/api/v1/stats/aggregate?site_id=shop.test",
    )
    .await;
    assert_eq!(got, StatusCode::UNAUTHORIZED);
}

/// Serves the collector on a loopback port; its base URL.
async fn listen(t: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let app = footfall::http::router(t.app.state.clone())
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn run(cmd: &mut Command) -> Vec<Value> {
    let out = cmd.output().expect("the client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("{l}")))
        .collect()
}

async fn v1_clients_from_the_registries_run_unchanged(b: Backend) {
    let (t, key) = start(b, "v1_clients").await;
    let base = listen(&t).await;
    let month = format!("{},{}", day(-29), day(0));

    // npm's `plausible`: each call's answer as one JSON line.
    let script = format!(
        r#"import Plausible from "plausible";
const p = new Plausible({key:?}, "shop.test", {base:?});
const out = (v) => console.log(JSON.stringify(v));
out(await p.getRealtime());
out(await p.getAggregate("custom", "visitors", true, null, {month:?}));
out(await p.getTimeseries("7d", "visitors,pageviews"));
out(await p.getBreakdown("custom", "visitors", "visit:source", null, 2, 1, {month:?}));
try {{ await p.getBreakdown("30d", "visitors", "visit:colour"); }} catch (e) {{ out(e.message); }}
"#
    );
    // In a directory of its own under tests/npm, whose node_modules it imports from (each
    // store's test runs at once with its own key and address).
    let dir = tempfile::Builder::new()
        .prefix("v1-client")
        .tempdir_in(workspace_root().join("tests/npm"))
        .unwrap();
    std::fs::write(dir.path().join("client.mjs"), script).unwrap();
    let got = run(Command::new("node")
        .arg("client.mjs")
        .current_dir(dir.path()));
    assert_eq!(got[0], json!(seed::VISITORS_TODAY));
    assert_eq!(got[1]["value"], json!(seed::VISITORS_30D));
    assert_eq!(got[1]["change"], json!(100), "nobody the 30 days before");
    let days = got[2].as_array().unwrap();
    assert_eq!(days.len(), 7);
    assert_eq!(
        days.iter()
            .map(|d| d["pageviews"].as_i64().unwrap())
            .sum::<i64>(),
        1
    );
    assert_eq!(
        got[3],
        json!([{"source": "Google", "visitors": 2}, {"source": "Direct / None", "visitors": 1}])
    );
    assert!(
        got[4]
            .as_str()
            .unwrap()
            .starts_with("Invalid property 'visit:colour'")
    );

    // PyPI's `plausible-mcp`: its tool functions, called as its MCP server calls them.
    let python = std::env::var("FOOTFALL_TEST_PLAUSIBLE_MCP_PYTHON")
        .expect("FOOTFALL_TEST_PLAUSIBLE_MCP_PYTHON: run the tests with scripts/test.sh");
    let code = format!(
        r#"import json
from plausible_mcp import server as s
def out(answer):
    # Each tool answers indented JSON, or a sentence when the server refused.
    try:
        print(json.dumps(json.loads(answer)))
    except ValueError:
        print(json.dumps(answer))
out(s.get_realtime_visitors("shop.test"))
out(s.get_aggregate_stats("shop.test", {month:?}, ["visitors", "pageviews", "bounce_rate"]))
out(s.get_breakdown("shop.test", "page", {month:?}, 10))
out(s.get_timeseries("shop.test", "7d"))
"#
    );
    let got = run(Command::new(python)
        .args(["-c", &code])
        .env("PLAUSIBLE_BASE_URL", &base)
        .env("PLAUSIBLE_API_KEY", &key)
        .env("DO_NOT_TRACK", "1"));
    assert_eq!(
        find(&got[0], "realtime_visitors"),
        Some(json!(seed::VISITORS_TODAY)),
        "{}",
        got[0]
    );
    assert_eq!(
        find(&got[1], "visitors"),
        Some(json!(seed::VISITORS_30D)),
        "{}",
        got[1]
    );
    assert_eq!(find(&got[1], "pageviews"), Some(json!(seed::PAGEVIEWS_30D)));
    assert_eq!(
        find(&got[1], "bounce_rate"),
        Some(json!(seed::BOUNCE_RATE_30D))
    );
    let pages = got[2].to_string();
    assert!(
        pages.contains("/pricing") && pages.contains("/blog"),
        "{pages}"
    );
    assert!(got[3].to_string().contains(&day(-3)), "{}", got[3]);
}

/// The first value named `key` anywhere in `v`.
fn find(v: &Value, key: &str) -> Option<Value> {
    match v {
        Value::Object(m) => m
            .get(key)
            .cloned()
            .or_else(|| m.values().find_map(|x| find(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}
