//! Google Analytics 4 through the Analytics Data API (v1beta), signed in with a service
//! account's key: no OAuth client has to be registered.
//!
//! The key file's account signs a JWT (RS256) that the key's `token_uri` exchanges for an
//! access token. Then one report per table Plausible imports (visitors, sources, pages,
//! entry pages, custom events, locations, devices, browsers, operating systems) is asked
//! with `batchRunReports`, a page of rows at a time (`limit`, `offset`, until `rowCount`).
//! A quota error (HTTP 429) pauses, then asks the same page again. The rows become one
//! import, stored as Plausible exports are ([`super::plausible::store_parsed`]): all or
//! nothing, never over days with native data.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use chrono::{Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::plausible::{Parsed, PlausibleSummary, store_parsed};
use super::{ImportError, site_named, site_tz};
use crate::ingest::referrer::{channel_of, source_name};
use crate::query::run::Counts;
use crate::store::Store;

/// Where the Data API answers.
pub const API: &str = "https://analyticsdata.googleapis.com";
const SCOPE: &str = "https://www.googleapis.com/auth/analytics.readonly";
/// Rows asked per page (the API answers at most 250,000).
pub const PAGE_ROWS: u64 = 100_000;
/// Pages asked at most per report, and quota pauses at most per import.
const MAX_PAGES: u64 = 10_000;
const MAX_QUOTA_PAUSES: u32 = 48;
/// Largest key file read.
const MAX_KEY_BYTES: u64 = 64 * 1024;
/// Largest answer read.
const MAX_ANSWER_BYTES: u64 = 512 << 20;

/// What to import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ga4Job {
    pub site: String,
    /// The GA4 property's numeric id.
    pub property: String,
    /// The service account's key file (JSON, as Google Cloud's console downloads it).
    pub key: PathBuf,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// The Data API's address (tests point it at a local server).
    pub api: String,
    pub page_rows: u64,
    /// How long a quota error pauses the import before the same page is asked again.
    pub quota_wait_secs: u64,
}

/// A service account's key file: the fields the sign-in uses.
#[derive(Deserialize)]
struct Key {
    #[serde(rename = "type")]
    kind: String,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: String,
    token_uri: String,
}

fn job_error(message: impl Into<String>) -> ImportError {
    ImportError::Job(message.into())
}

/// Checks a job before it runs.
pub fn validate(job: &Ga4Job) -> Result<(), ImportError> {
    if job.property.is_empty()
        || job.property.len() > 20
        || !job.property.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(job_error(format!(
            "--property `{}` is not a GA4 property id (its digits, as GA4's Admin › Property details shows)",
            job.property
        )));
    }
    if !(1..=250_000).contains(&job.page_rows) {
        return Err(job_error("--page-rows must be from 1 to 250,000"));
    }
    if job.quota_wait_secs > 24 * 3600 {
        return Err(job_error("--quota-wait is at most 86,400 seconds"));
    }
    if let (Some(from), Some(to)) = (job.from, job.to)
        && from > to
    {
        return Err(job_error(format!("--from {from} is after --to {to}")));
    }
    if !(job.api.starts_with("https://") || job.api.starts_with("http://127.0.0.1:")) {
        return Err(job_error("the API address must be https://"));
    }
    Ok(())
}

fn read_key(path: &std::path::Path) -> Result<Key, ImportError> {
    let bad = |message: String| ImportError::Input {
        path: path.display().to_string(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > MAX_KEY_BYTES {
        return Err(bad("larger than a service account's key file".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let key: Key = serde_json::from_str(&text)
        .map_err(|e| bad(format!("not a service account's key file (JSON): {e}")))?;
    if key.kind != "service_account" {
        return Err(bad(format!(
            "a key of type `{}`: create a service account key (type service_account)",
            key.kind
        )));
    }
    if !(key.token_uri.starts_with("https://") || key.token_uri.starts_with("http://127.0.0.1:")) {
        return Err(bad("its token_uri is not an https:// address".into()));
    }
    Ok(key)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The signed JWT the token endpoint exchanges (RS256, valid for an hour from `now`).
fn assertion(key: &Key, now: i64) -> Result<String, ImportError> {
    let der_text: String = key
        .private_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der_text.trim())
        .map_err(|_| job_error("the key file's private_key is not a PEM key"))?;
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der)
        .map_err(|e| job_error(format!("the key file's private_key is not an RSA key: {e}")))?;
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if !key.private_key_id.is_empty() {
        header["kid"] = json!(key.private_key_id);
    }
    let claims = json!({
        "iss": key.client_email, "scope": SCOPE, "aud": key.token_uri,
        "iat": now, "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| job_error("signing the sign-in request failed"))?;
    Ok(format!("{signing_input}.{}", b64(&signature)))
}

/// One report: its dimensions after `date`, its metrics, and how a row becomes rollups.
struct Report {
    table: &'static str,
    dims: &'static [&'static str],
    metrics: &'static [&'static str],
}

const SESSION_METRICS: &[&str] = &[
    "totalUsers",
    "sessions",
    "screenPageViews",
    "bounces",
    "userEngagementDuration",
];

const REPORTS: [Report; 9] = [
    Report {
        table: "visitors",
        dims: &[],
        metrics: SESSION_METRICS,
    },
    Report {
        table: "sources",
        dims: &["sessionSource", "sessionMedium", "sessionCampaignName"],
        metrics: SESSION_METRICS,
    },
    Report {
        table: "pages",
        dims: &["pagePath"],
        metrics: &["totalUsers", "sessions", "screenPageViews"],
    },
    Report {
        table: "entry_pages",
        dims: &["landingPage"],
        metrics: SESSION_METRICS,
    },
    Report {
        table: "custom_events",
        dims: &["eventName"],
        metrics: &["totalUsers", "eventCount"],
    },
    Report {
        table: "locations",
        dims: &["countryId"],
        metrics: SESSION_METRICS,
    },
    Report {
        table: "devices",
        dims: &["deviceCategory"],
        metrics: SESSION_METRICS,
    },
    Report {
        table: "browsers",
        dims: &["browser"],
        metrics: SESSION_METRICS,
    },
    Report {
        table: "operating_systems",
        dims: &["operatingSystem", "operatingSystemVersion"],
        metrics: SESSION_METRICS,
    },
];

/// GA4's own events, which a custom-events breakdown leaves out.
const AUTOMATIC_EVENTS: [&str; 4] = [
    "page_view",
    "session_start",
    "first_visit",
    "user_engagement",
];

/// A dimension value GA4 gives when it has none.
fn known(v: &str) -> &str {
    match v {
        "(not set)"
        | "(none)"
        | "(not provided)"
        | "(other)"
        | "(direct)"
        | "(data not available)" => "",
        v => v,
    }
}

/// The request of `report` for one page.
fn request(report: &Report, from: NaiveDate, to: NaiveDate, offset: u64, limit: u64) -> Value {
    let mut dims = vec![json!({"name": "date"})];
    dims.extend(report.dims.iter().map(|d| json!({"name": d})));
    let metrics: Vec<Value> = report
        .metrics
        .iter()
        .map(|m| match *m {
            "bounces" => json!({"name": "bounces", "expression": "sessions - engagedSessions"}),
            m => json!({"name": m}),
        })
        .collect();
    json!({
        "dateRanges": [{"startDate": from.to_string(), "endDate": to.to_string()}],
        "dimensions": dims,
        "metrics": metrics,
        "orderBys": [{"dimension": {"dimensionName": "date"}}],
        "limit": limit,
        "offset": offset,
        "keepEmptyRows": false,
    })
}

/// Adds one report row to `parsed`.
fn add_row(parsed: &mut Parsed, report: &Report, values: &[String], metrics: &[i64]) {
    let Ok(day) = NaiveDate::parse_from_str(&values[0], "%Y%m%d") else {
        return;
    };
    let m = |name: &str| {
        report
            .metrics
            .iter()
            .position(|x| *x == name)
            .map_or(0, |i| metrics[i])
    };
    let pageviews = m("screenPageViews");
    let c = Counts {
        visitors: m("totalUsers"),
        visits: m("sessions"),
        pageviews,
        events: if report.table == "custom_events" {
            m("eventCount")
        } else {
            pageviews
        },
        bounces: m("bounces").max(0),
        duration: m("userEngagementDuration"),
        ..Counts::default()
    };
    let v = |i: usize| known(values.get(i).map_or("", String::as_str)).to_string();
    match report.table {
        "visitors" => {
            parsed.add(day, "", String::new(), &c);
            parsed.add(day, "event:name", "pageview".into(), &c);
        }
        "sources" => {
            let source = match v(1) {
                s if s.is_empty() => s,
                s => source_name(&s),
            };
            let medium = v(2);
            parsed.add(
                day,
                "visit:channel",
                channel_of(&source, "", "", &medium).into(),
                &c,
            );
            parsed.add(day, "visit:source", source, &c);
            parsed.add(day, "visit:utm_medium", medium, &c);
            parsed.add(day, "visit:utm_campaign", v(3), &c);
        }
        "pages" => {
            let page = v(1).split(['?', '#']).next().unwrap_or("").to_string();
            parsed.add(day, "event:page", page, &c);
        }
        "entry_pages" => {
            let page = v(1).split(['?', '#']).next().unwrap_or("").to_string();
            parsed.add(day, "visit:entry_page", page, &c);
        }
        "custom_events" => {
            let name = v(1);
            if !AUTOMATIC_EVENTS.contains(&name.as_str()) && !name.is_empty() {
                let name = match name.as_str() {
                    "file_download" => "File Download".to_string(),
                    "click" => "Outbound Link: Click".to_string(),
                    _ => name,
                };
                parsed.add(day, "event:name", name, &c);
            }
        }
        "locations" => parsed.add(day, "visit:country", v(1), &c),
        "devices" => {
            let mut device = v(1);
            if let Some(first) = device.get(..1) {
                device = first.to_uppercase() + &device[1..];
            }
            parsed.add(day, "visit:device", device, &c);
        }
        "browsers" => parsed.add(day, "visit:browser", v(1), &c),
        "operating_systems" => {
            let os = match v(1).as_str() {
                "Macintosh" => "Mac".to_string(),
                "Linux" => "GNU/Linux".to_string(),
                other => other.to_string(),
            };
            parsed.add(day, "visit:os", os, &c);
            parsed.add(day, "visit:os_version", v(2), &c);
        }
        _ => {}
    }
}

/// What the API answered to a request.
enum Answer {
    Ok(Value),
    /// A quota is used up: wait, then ask again.
    Quota(String),
}

/// The message of Google's error envelope (or the OAuth one), else the body's start.
fn error_text(status: u16, body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .map(String::from)
            .or_else(|| {
                let e = v["error"].as_str()?;
                Some(match v["error_description"].as_str() {
                    Some(d) => format!("{e}: {d}"),
                    None => e.to_string(),
                })
            })
    });
    let message = message.unwrap_or_else(|| body.chars().take(300).collect());
    format!("HTTP {status}: {message}")
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    body: &str,
    form: bool,
) -> Result<Answer, ImportError> {
    let mut req = agent.post(url).header(
        "content-type",
        if form {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        },
    );
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    let mut response = req
        .send(body)
        .map_err(|e| job_error(format!("{url}: {e}")))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .map_err(|e| job_error(format!("{url}: reading the answer: {e}")))?;
    match status {
        200..=299 => serde_json::from_str(&text)
            .map(Answer::Ok)
            .map_err(|e| job_error(format!("{url}: the answer is not JSON: {e}"))),
        429 => Ok(Answer::Quota(error_text(status, &text))),
        _ => Err(job_error(format!("{url}: {}", error_text(status, &text)))),
    }
}

/// Reads every report of `job` over `[from, to]` into rollup rows; `progress` hears of each
/// page and pause. Blocking: run it off the async runtime.
pub fn fetch(
    job: &Ga4Job,
    from: NaiveDate,
    to: NaiveDate,
    progress: &mut dyn FnMut(String),
) -> Result<Parsed, ImportError> {
    let key = read_key(&job.key)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let mut token: Option<(String, std::time::Instant)> = None;
    let sign_in = |agent: &ureq::Agent| -> Result<String, ImportError> {
        let jwt = assertion(&key, Utc::now().timestamp())?;
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}"
        );
        match post(agent, &key.token_uri, None, &form, true)? {
            Answer::Ok(v) => v["access_token"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| job_error("the token answer has no access_token")),
            Answer::Quota(e) => Err(job_error(format!("signing in: {e}"))),
        }
    };
    let url = format!(
        "{}/v1beta/properties/{}:batchRunReports",
        job.api.trim_end_matches('/'),
        job.property
    );
    let mut parsed = Parsed::default();
    let mut pauses = 0;
    for report in &REPORTS {
        let mut offset = 0u64;
        let mut pages = 0u64;
        loop {
            // A token lasts an hour; a new one is signed well before.
            let fresh = match &token {
                Some((t, at)) if at.elapsed() < Duration::from_secs(45 * 60) => t.clone(),
                _ => {
                    let t = sign_in(&agent)?;
                    token = Some((t.clone(), std::time::Instant::now()));
                    t
                }
            };
            let body = json!({"requests": [request(report, from, to, offset, job.page_rows)]});
            let answer = match post(&agent, &url, Some(&fresh), &body.to_string(), false)? {
                Answer::Ok(v) => v,
                Answer::Quota(e) => {
                    pauses += 1;
                    if pauses > MAX_QUOTA_PAUSES {
                        return Err(job_error(format!(
                            "GA4's quota is still used up after {MAX_QUOTA_PAUSES} pauses ({e}): run the import again later"
                        )));
                    }
                    progress(format!(
                        "{}: quota used up ({e}); asking again in {} s",
                        report.table, job.quota_wait_secs
                    ));
                    std::thread::sleep(Duration::from_secs(job.quota_wait_secs));
                    continue;
                }
            };
            let result = &answer["reports"][0];
            let rows = result["rows"].as_array().cloned().unwrap_or_default();
            let total = result["rowCount"].as_u64().unwrap_or(0);
            for row in &rows {
                let values: Vec<String> = row["dimensionValues"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| v["value"].as_str().unwrap_or("").to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                let metrics: Vec<i64> = row["metricValues"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| {
                                let f = v["value"]
                                    .as_str()
                                    .unwrap_or("0")
                                    .parse::<f64>()
                                    .unwrap_or(0.0);
                                f.round().clamp(0.0, 1e10) as i64
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if values.len() != report.dims.len() + 1 || metrics.len() != report.metrics.len() {
                    return Err(job_error(format!(
                        "{}: a row with {} dimensions and {} metrics, not {} and {}",
                        report.table,
                        values.len(),
                        metrics.len(),
                        report.dims.len() + 1,
                        report.metrics.len()
                    )));
                }
                add_row(&mut parsed, report, &values, &metrics);
            }
            offset += rows.len() as u64;
            pages += 1;
            progress(format!("{}: {offset} of {total} rows", report.table));
            if rows.is_empty() || offset >= total {
                break;
            }
            if pages >= MAX_PAGES {
                return Err(job_error(format!(
                    "{}: more than {MAX_PAGES} pages: import a shorter range at a time",
                    report.table
                )));
            }
        }
    }
    parsed.count_custom_events();
    Ok(parsed)
}

/// Runs `job` into `store`.
pub async fn import_ga4(
    store: &dyn Store,
    job: &Ga4Job,
    now: chrono::DateTime<Utc>,
    aggregate_retention_days: u32,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<PlausibleSummary, ImportError> {
    validate(job)?;
    let site = site_named(store, &job.site).await?;
    let tz = site_tz(&site)?;
    let yesterday = now.with_timezone(&tz).date_naive() - Days::new(1);
    let to = job.to.unwrap_or(yesterday).min(yesterday);
    let from = job.from.unwrap_or_else(|| {
        yesterday
            .checked_sub_days(Days::new(u64::from(aggregate_retention_days)))
            .unwrap_or(yesterday)
    });
    if from > to {
        return Err(job_error(format!(
            "nothing to import: {from} is after the last closed day {to}"
        )));
    }
    let owned = job.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let fetching = tokio::task::spawn_blocking(move || {
        fetch(&owned, from, to, &mut |line| {
            let _ = tx.send(line);
        })
    });
    while let Some(line) = rx.recv().await {
        progress(line);
    }
    let parsed = fetching.await.map_err(|e| job_error(e.to_string()))??;
    let origin = format!("property {}", job.property);
    store_parsed(
        store,
        &site,
        parsed,
        &origin,
        "ga4",
        now,
        aggregate_retention_days,
    )
    .await
}
