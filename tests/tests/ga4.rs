//! `footfall import ga4` against a local server that speaks Google's documented protocol: the
//! OAuth token exchange for a service account (it checks the RS256 signature of the JWT with
//! the key's public half, and its claims) and the Analytics Data API's `batchRunReports`
//! (dates as `YYYYMMDD`, values as strings, `limit`/`offset` paging, `rowCount`, metric
//! expressions, a 429 `RESOURCE_EXHAUSTED` once, 403 for another property). The real API cannot
//! be reached from these machines.
//!
//! The key pair in `tests/fixtures/ga4/` was made for this test with `openssl genpkey`; it
//! signs in nowhere else. The expected figures are sums over the rows the server holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{Duration, NaiveDate, Utc};
use footfall::query::model;
use footfall::query::run::{Policy, run};
use footfall::store::{Deadline, Site};
use footfall_tests::{Backend, TestStore, workspace_root};
use serde_json::{Value, json};

const PROPERTY: &str = "123456789";
const EMAIL: &str = "footfall-import@example-project.iam.gserviceaccount.com";
const TOKEN: &str = "ya29.test-token";

/// One row of a report: dimension values after the date, and metric values by name.
type Row = (Vec<&'static str>, BTreeMap<&'static str, i64>);

/// The property's data: per day, the rows of each report (keyed by its dimension names).
struct Property {
    days: Vec<NaiveDate>,
    reports: BTreeMap<String, Vec<(NaiveDate, Row)>>,
}

fn session_metrics(
    users: i64,
    sessions: i64,
    engaged: i64,
    views: i64,
) -> BTreeMap<&'static str, i64> {
    BTreeMap::from([
        ("totalUsers", users),
        ("sessions", sessions),
        ("engagedSessions", engaged),
        ("screenPageViews", views),
        ("userEngagementDuration", 45 * sessions),
    ])
}

fn property(first: NaiveDate) -> Property {
    let days: Vec<NaiveDate> = (0..5).map(|i| first + Duration::days(i)).collect();
    let mut reports: BTreeMap<String, Vec<(NaiveDate, Row)>> = BTreeMap::new();
    for (i, day) in days.iter().enumerate() {
        let v = 50 + 5 * i as i64;
        let mut add = |dims: &str, values: Vec<&'static str>, m: BTreeMap<&'static str, i64>| {
            reports
                .entry(dims.to_string())
                .or_default()
                .push((*day, (values, m)));
        };
        add("", vec![], session_metrics(v, v + 5, v - 10, 2 * v));
        for (values, users) in [
            (vec!["google", "organic", "(organic)"], 20),
            (vec!["(direct)", "(none)", "(direct)"], v - 27),
            (vec!["newsletter", "email", "december"], 7),
        ] {
            add(
                "sessionSource,sessionMedium,sessionCampaignName",
                values,
                session_metrics(users, users, users / 2, 2 * users),
            );
        }
        for (page, users, views) in [
            ("/", v - 20, v),
            ("/?ref=x", 10, 10),
            ("/pricing", 10, v - 10),
        ] {
            add(
                "pagePath",
                vec![page],
                session_metrics(users, users, 0, views),
            );
        }
        add(
            "landingPage",
            vec!["/"],
            session_metrics(v, v + 5, v - 10, 2 * v),
        );
        for (name, users, count) in [
            ("page_view", v, 2 * v),
            ("session_start", v, v + 5),
            ("Signup", 3, 4),
            ("file_download", 2, 2),
        ] {
            add(
                "eventName",
                vec![name],
                BTreeMap::from([("totalUsers", users), ("eventCount", count)]),
            );
        }
        for (country, users) in [("DK", 30), ("US", v - 30)] {
            add(
                "countryId",
                vec![country],
                session_metrics(users, users, users, users),
            );
        }
        for (device, users) in [("desktop", v - 12), ("mobile", 12)] {
            add(
                "deviceCategory",
                vec![device],
                session_metrics(users, users, users, users),
            );
        }
        for (browser, users) in [("Chrome", v - 15), ("Firefox", 15)] {
            add(
                "browser",
                vec![browser],
                session_metrics(users, users, users, users),
            );
        }
        for (os, version, users) in [
            ("Macintosh", "14.5", 25),
            ("(not set)", "(not set)", v - 25),
        ] {
            add(
                "operatingSystem,operatingSystemVersion",
                vec![os, version],
                session_metrics(users, users, users, users),
            );
        }
    }
    Property { days, reports }
}

#[derive(Clone)]
struct Fake {
    data: Arc<Property>,
    public_key: Arc<Vec<u8>>,
    token_uri: String,
    /// Requests seen: token exchanges, report pages, quota errors sent.
    log: Arc<Mutex<Vec<String>>>,
}

fn oauth_error(text: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": "invalid_grant", "error_description": text})),
    )
        .into_response()
}

fn google_error(code: u16, status: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        axum::Json(json!({"error": {"code": code, "message": message, "status": status}})),
    )
        .into_response()
}

async fn token(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    fake.log.lock().unwrap().push("token".into());
    if headers.get("content-type").and_then(|v| v.to_str().ok())
        != Some("application/x-www-form-urlencoded")
    {
        return oauth_error("Bad content type.");
    }
    let form: BTreeMap<&str, &str> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    if form.get("grant_type") != Some(&"urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") {
        return oauth_error("Invalid grant_type.");
    }
    let jwt = form.get("assertion").copied().unwrap_or("");
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return oauth_error("Invalid JWT.");
    }
    let decode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s);
    let (Ok(header), Ok(claims), Ok(signature)) =
        (decode(parts[0]), decode(parts[1]), decode(parts[2]))
    else {
        return oauth_error("Invalid JWT.");
    };
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        fake.public_key.as_slice(),
    );
    let signed = format!("{}.{}", parts[0], parts[1]);
    if key.verify(signed.as_bytes(), &signature).is_err() {
        return oauth_error("Invalid JWT Signature.");
    }
    let header: Value = serde_json::from_slice(&header).unwrap_or_default();
    let claims: Value = serde_json::from_slice(&claims).unwrap_or_default();
    let now = Utc::now().timestamp();
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap_or(0),
        claims["exp"].as_i64().unwrap_or(0),
    );
    if header["alg"] != "RS256"
        || claims["iss"] != EMAIL
        || claims["aud"] != fake.token_uri.as_str()
        || !claims["scope"]
            .as_str()
            .unwrap_or("")
            .split(' ')
            .any(|s| s == "https://www.googleapis.com/auth/analytics.readonly")
    {
        return oauth_error("Invalid grant: account not found");
    }
    if (iat - now).abs() > 300 || exp <= iat || exp - iat > 3600 {
        return oauth_error("Invalid JWT: Token must be a short-lived token (60 minutes)");
    }
    axum::Json(json!({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

async fn batch(
    State(fake): State<Fake>,
    Path(call): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some((property, "batchRunReports")) = call.split_once(':') else {
        return google_error(404, "NOT_FOUND", "no such method");
    };
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    if property != PROPERTY {
        return google_error(
            403,
            "PERMISSION_DENIED",
            "User does not have sufficient permissions for this property.",
        );
    }
    let body: Value = serde_json::from_str(&body).unwrap_or_default();
    let requests = body["requests"].as_array().cloned().unwrap_or_default();
    if requests.is_empty() || requests.len() > 5 {
        return google_error(400, "INVALID_ARGUMENT", "between 1 and 5 requests");
    }
    let mut reports = Vec::new();
    for r in requests {
        let dims: Vec<String> = r["dimensions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(dims[0], "date", "{r}");
        let key = dims[1..].join(",");
        let offset = r["offset"].as_u64().unwrap_or(0) as usize;
        let limit = r["limit"].as_u64().unwrap_or(10_000);
        if limit == 0 || limit > 250_000 {
            return google_error(400, "INVALID_ARGUMENT", "limit must be positive");
        }
        // The second page of the sources is refused once: the quota is used up.
        {
            let mut log = fake.log.lock().unwrap();
            if key.starts_with("sessionSource") && offset > 0 && !log.iter().any(|l| l == "429") {
                log.push("429".into());
                return google_error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Exhausted property tokens per hour.",
                );
            }
            log.push(format!("page {key} {offset}"));
        }
        let range = &r["dateRanges"][0];
        let from: NaiveDate = range["startDate"].as_str().unwrap().parse().unwrap();
        let to: NaiveDate = range["endDate"].as_str().unwrap().parse().unwrap();
        let all: Vec<&(NaiveDate, Row)> = fake.data.reports[&key]
            .iter()
            .filter(|(d, _)| (from..=to).contains(d))
            .collect();
        let rows: Vec<Value> = all
            .iter()
            .skip(offset)
            .take(limit as usize)
            .map(|(day, (values, m))| {
                let mut dims = vec![json!({"value": day.format("%Y%m%d").to_string()})];
                dims.extend(values.iter().map(|v| json!({"value": v})));
                let metrics: Vec<Value> = r["metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|metric| {
                        let value = match metric["expression"].as_str() {
                            Some("sessions - engagedSessions") => {
                                m["sessions"] - m["engagedSessions"]
                            }
                            Some(other) => panic!("expression {other}"),
                            None => m[metric["name"].as_str().unwrap()],
                        };
                        json!({"value": value.to_string()})
                    })
                    .collect();
                json!({"dimensionValues": dims, "metricValues": metrics})
            })
            .collect();
        let mut report = json!({"kind": "analyticsData#runReport"});
        if !all.is_empty() {
            report["rows"] = json!(rows);
            report["rowCount"] = json!(all.len());
        }
        reports.push(report);
    }
    axum::Json(json!({"reports": reports, "kind": "analyticsData#batchRunReports"})).into_response()
}

async fn serve(data: Property) -> (String, Fake) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let fake = Fake {
        data: Arc::new(data),
        public_key: Arc::new(
            std::fs::read(workspace_root().join("tests/fixtures/ga4/test-key.pub.der")).unwrap(),
        ),
        token_uri: format!("{base}/token"),
        log: Arc::new(Mutex::new(Vec::new())),
    };
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .route("/v1beta/properties/{call}", axum::routing::post(batch))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, fake)
}

/// A key file as Google Cloud's console writes one, for `email`, signing in at `base`.
fn key_file(dir: &std::path::Path, base: &str, email: &str) -> std::path::PathBuf {
    let pem =
        std::fs::read_to_string(workspace_root().join("tests/fixtures/ga4/test-key.pem")).unwrap();
    let key = json!({
        "type": "service_account", "project_id": "example-project",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567", "private_key": pem,
        "client_email": email, "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": format!("{base}/token"),
        "universe_domain": "googleapis.com",
    });
    let path = dir.join(format!("{}.json", email.len()));
    std::fs::write(&path, key.to_string()).unwrap();
    path
}

async fn ask(t: &TestStore, site: &Site, q: Value) -> BTreeMap<String, Vec<i64>> {
    let policy = Policy {
        now: Utc::now(),
        raw_retention_days: 30,
        deadline: Deadline::after(std::time::Duration::from_secs(60)),
        sample_threshold: 0,
    };
    let answer = run(t.store.as_ref(), site, &model::parse(&q).unwrap(), &policy)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["dimensions"]
                    .get(0)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                r["metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_i64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

async fn a_property_gives_the_counts_of_its_reports(b: Backend) {
    let t = TestStore::new(b, "import_ga4").await;
    let dir = tempfile::tempdir().unwrap();
    let today = Utc::now().date_naive();
    let data = property(today - Duration::days(8));
    let days = data.days.clone();
    let expected = |dims: &str, want: &[&str], metric: &str| -> i64 {
        data.reports[dims]
            .iter()
            .filter(|(_, (values, _))| want.iter().zip(values).all(|(w, v)| w == v))
            .map(|(_, (_, m))| m[metric])
            .sum()
    };
    let visitors = expected("", &[], "totalUsers");
    let visits = expected("", &[], "sessions");
    let pageviews = expected("", &[], "screenPageViews");
    let google = expected(
        "sessionSource,sessionMedium,sessionCampaignName",
        &["google"],
        "totalUsers",
    );
    let direct = expected(
        "sessionSource,sessionMedium,sessionCampaignName",
        &["(direct)"],
        "totalUsers",
    );
    let home = expected("pagePath", &["/"], "screenPageViews")
        + expected("pagePath", &["/?ref=x"], "screenPageViews");
    let signups = expected("eventName", &["Signup"], "eventCount");
    let downloads = expected("eventName", &["file_download"], "eventCount");
    let mobile = expected("deviceCategory", &["mobile"], "totalUsers");
    let mac = expected(
        "operatingSystem,operatingSystemVersion",
        &["Macintosh"],
        "totalUsers",
    );
    let bounces = visits - expected("", &[], "engagedSessions");
    let (base, fake) = serve(data).await;
    let key = key_file(dir.path(), &base, EMAIL);
    let (ok, out, err) = footfall_tests::footfall_command(
        &t.env(),
        &["site", "add", "example.org", "--timezone", "UTC"],
    );
    assert!(ok, "{out}{err}");
    let args = |property: &str, key: &std::path::Path| -> Vec<String> {
        [
            "import",
            "ga4",
            "--site",
            "example.org",
            "--property",
            property,
            "--key",
            key.to_str().unwrap(),
            "--from",
            &days[0].to_string(),
            "--to",
            &days[4].to_string(),
            "--page-rows",
            "4",
            "--quota-wait",
            "1",
            "--api",
            &base,
        ]
        .map(String::from)
        .to_vec()
    };
    let run_cli = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        footfall_tests::footfall_command(&t.env(), &a)
    };
    let (ok, out, err) = run_cli(args(PROPERTY, &key));
    assert!(ok, "{out}{err}");
    assert!(out.contains("imported 5 days"), "{out}");
    assert!(
        err.contains("quota used up") && err.contains("Exhausted property tokens per hour"),
        "{err}"
    );
    let log = fake.log.lock().unwrap().clone();
    // Paged (4 rows a page), and the refused page asked again.
    assert!(
        log.contains(&"page sessionSource,sessionMedium,sessionCampaignName 4".to_string()),
        "{log:?}"
    );
    assert_eq!(log.iter().filter(|l| *l == "429").count(), 1);
    assert!(log.contains(&"page pagePath 12".to_string()), "{log:?}");

    let site = t.site("example.org").await;
    let range = json!([days[0].to_string(), days[4].to_string()]);
    let q = |dims: Value, metrics: Value| {
        json!({"site_id": "example.org", "metrics": metrics, "date_range": range,
               "dimensions": dims, "include": {"imports": true}})
    };
    let totals = ask(
        &t,
        &site,
        q(
            json!([]),
            json!(["visitors", "visits", "pageviews", "bounce_rate"]),
        ),
    )
    .await;
    assert_eq!(
        totals[""],
        vec![
            visitors,
            visits,
            pageviews,
            (100.0 * bounces as f64 / visits as f64).round() as i64
        ]
    );
    let sources = ask(&t, &site, q(json!(["visit:source"]), json!(["visitors"]))).await;
    assert_eq!(sources["Google"], vec![google]);
    assert_eq!(sources[""], vec![direct]);
    let channels = ask(&t, &site, q(json!(["visit:channel"]), json!(["visitors"]))).await;
    assert_eq!(channels["Organic Search"], vec![google]);
    assert_eq!(channels["Email"], vec![35]);
    let pages = ask(&t, &site, q(json!(["event:page"]), json!(["pageviews"]))).await;
    assert_eq!(pages["/"], vec![home]);
    let names = ask(&t, &site, q(json!(["event:name"]), json!(["events"]))).await;
    assert_eq!(names["Signup"], vec![signups]);
    assert_eq!(names["File Download"], vec![downloads]);
    assert!(!names.contains_key("page_view") && !names.contains_key("session_start"));
    let devices = ask(&t, &site, q(json!(["visit:device"]), json!(["visitors"]))).await;
    assert_eq!(devices["Mobile"], vec![mobile]);
    let systems = ask(&t, &site, q(json!(["visit:os"]), json!(["visitors"]))).await;
    assert_eq!(systems["Mac"], vec![mac]);
    let countries = ask(&t, &site, q(json!(["visit:country"]), json!(["visitors"]))).await;
    assert_eq!(countries["DK"], vec![150]);

    // Another property: the API's refusal, said plainly; a key of another account: the
    // token endpoint's.
    let (ok, _, err) = run_cli(args("987654321", &key));
    assert!(!ok && err.contains("sufficient permissions"), "{err}");
    let stranger = key_file(
        dir.path(),
        &base,
        "someone-else@example-project.iam.gserviceaccount.com",
    );
    let (ok, _, err) = run_cli(args(PROPERTY, &stranger));
    assert!(!ok && err.contains("invalid_grant"), "{err}");
    let (ok, _, err) = run_cli(args("12a", &key));
    assert!(!ok && err.contains("not a GA4 property id"), "{err}");
    // Listed once; a second run imports nothing.
    let (ok, out, _) = run_cli(args(PROPERTY, &key));
    assert!(
        ok && out.starts_with("imported nothing") && out.contains("already_imported 5"),
        "{out}"
    );
    let (_, list, _) =
        footfall_tests::footfall_command(&t.env(), &["import", "list", "--site", "example.org"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(
        list.contains(&format!("\tga4\t{} to {}\t5 days", days[0], days[4])),
        "{list}"
    );
}

footfall_tests::both_stores!(a_property_gives_the_counts_of_its_reports);
