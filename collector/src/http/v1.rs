//! Plausible's Stats API v1, as Plausible answers it, for the exporters, dashboards and
//! plugins built on it: `GET /api/v1/stats/realtime/visitors`, `/aggregate`, `/timeseries` and
//! `/breakdown`. Each question is turned into a Stats API v2 query ([`crate::query::model`])
//! and answered by the same engine, then written in v1's shapes; the parameters, the filter
//! grammar (`==`, `!=`, `|`, `;`, `*`, `\|`) and the error texts and statuses follow
//! Plausible's own controller.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, Months, NaiveDate, TimeDelta};
use serde_json::{Map, Value, json};

use super::AppState;
use super::query::{REALTIME_SECS, policy};
use crate::query::model;
use crate::query::run::{RunError, run};
use crate::store::Site;

/// An answer of v1's: `{"error": …}` with its status.
pub struct V1Error(StatusCode, String);

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(text: impl Into<String>) -> V1Error {
    V1Error(StatusCode::BAD_REQUEST, text.into())
}

const INVALID_KEY: &str = "Invalid API key or site ID. Please make sure you're using a valid API key with access to the site you've requested.";
const PERIODS: [&str; 7] = ["day", "7d", "30d", "month", "6mo", "12mo", "custom"];
const METRICS: [&str; 9] = [
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
    "events",
    "conversion_rate",
    "time_on_page",
];
const SESSION_METRICS: [&str; 4] = ["visits", "bounce_rate", "visit_duration", "views_per_visit"];
const VISIT_PROPERTIES: [&str; 18] = [
    "visit:source",
    "visit:channel",
    "visit:country",
    "visit:region",
    "visit:city",
    "visit:entry_page",
    "visit:exit_page",
    "visit:referrer",
    "visit:utm_medium",
    "visit:utm_source",
    "visit:utm_campaign",
    "visit:utm_content",
    "visit:utm_term",
    "visit:device",
    "visit:os",
    "visit:os_version",
    "visit:browser",
    "visit:browser_version",
];

/// Whether `p` names a v1 property (`event:hostname` only in filters).
fn valid_property(p: &str, filter: bool) -> bool {
    ["event:page", "event:name", "event:goal"].contains(&p)
        || (filter && p == "event:hostname")
        || p.strip_prefix("event:props:")
            .is_some_and(|n| !n.is_empty())
        || VISIT_PROPERTIES.contains(&p)
}

fn event_only(p: &str) -> bool {
    p == "event:name" || p == "event:goal" || p.starts_with("event:props:")
}

type Params = HashMap<String, String>;

/// The site the request may read: a Stats API key's (or a login's), named by `site_id`.
async fn site(state: &AppState, headers: &HeaderMap, params: &Params) -> Result<Site, V1Error> {
    let who = match super::auth::principal(state, headers).await {
        Ok(who) => who,
        Err(_) if headers.get(header::AUTHORIZATION).is_none() => {
            return Err(V1Error(
                StatusCode::UNAUTHORIZED,
                "Missing API key. Please use a valid Plausible API key as a Bearer Token.".into(),
            ));
        }
        Err(_) => return Err(V1Error(StatusCode::UNAUTHORIZED, INVALID_KEY.into())),
    };
    let Some(site_id) = params.get("site_id") else {
        return Err(bad(
            "Missing site ID. Please provide the required site_id parameter with your request.",
        ));
    };
    super::auth::readable_site(state, &who, site_id)
        .await
        .map_err(|_| V1Error(StatusCode::UNAUTHORIZED, INVALID_KEY.into()))
}

/// The days `period` and `date` name, in the site's zone.
fn days(params: &Params, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), V1Error> {
    let period = params.get("period").map_or("30d", String::as_str);
    if !PERIODS.contains(&period) {
        return Err(bad(format!(
            "Error parsing `period` parameter: invalid period `{period}`. Please find accepted values in our docs: https://plausible.io/docs/stats-api#time-periods"
        )));
    }
    if period == "custom" {
        let date = params.get("date").ok_or_else(|| {
            bad("The `date` parameter is required when using a custom period. See https://plausible.io/docs/stats-api#time-periods")
        })?;
        let parsed = date
            .split_once(',')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
        return parsed.ok_or_else(|| {
            bad("Invalid format for `date` parameter. When using a custom period, please include two ISO-8601 formatted dates joined by a comma. See https://plausible.io/docs/stats-api#time-periods")
        });
    }
    let d = match params.get("date") {
        None => today,
        Some(s) => s.parse::<NaiveDate>().map_err(|_| {
            let shaped = s.len() == 10
                && s.bytes()
                    .enumerate()
                    .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
            bad(format!(
                "Error parsing `date` parameter: {}. Please specify a valid date in ISO-8601 format.",
                if shaped { "invalid_date" } else { "invalid_format" }
            ))
        })?,
    };
    let month = d.with_day(1).unwrap_or(d);
    let month_end = (month + Months::new(1)).pred_opt().unwrap_or(d);
    Ok(match period {
        "day" => (d, d),
        "7d" => (d - TimeDelta::days(7), d - TimeDelta::days(1)),
        "30d" => (d - TimeDelta::days(30), d - TimeDelta::days(1)),
        "month" => (month, month_end),
        "6mo" => (month - Months::new(5), month_end),
        _ => (month - Months::new(11), month_end),
    })
}

/// The v1 `filters` as v2 filters: `;` between clauses, `==`/`!=`, `|` between values (`\|`
/// for a literal one), `*` for any characters; a clause v1 cannot read is left out, as
/// Plausible leaves it. A JSON list is taken as v2 filters.
async fn filters(state: &AppState, site: &Site, params: &Params) -> Result<Vec<Value>, V1Error> {
    let Some(raw) = params.get("filters").filter(|f| !f.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    if raw.trim_start().starts_with('[') {
        return match serde_json::from_str::<Value>(raw) {
            Ok(Value::Array(list)) => Ok(list),
            _ => Ok(Vec::new()),
        };
    }
    let unescaped_bars = regex::Regex::new(r"(^|[^\\])\|").expect("a valid pattern");
    let split_values = |v: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut last = 0;
        for m in unescaped_bars.find_iter(v) {
            let bar = m.end() - 1;
            out.push(v[last..bar].replace("\\|", "|"));
            last = m.end();
        }
        out.push(v[last..].replace("\\|", "|"));
        out
    };
    let mut out = Vec::new();
    for clause in raw.split(';') {
        let clause = clause.trim();
        let parts: Vec<&str> = clause
            .split("==")
            .flat_map(|p| p.split("!="))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let [property, value] = parts[..] else {
            continue;
        };
        if !valid_property(property, true) {
            return Err(bad(format!(
                "Invalid filter property '{property}'. Please provide a valid filter property: https://plausible.io/docs/stats-api#properties"
            )));
        }
        let negated = clause.contains("!=");
        let values = split_values(value);
        if property == "event:goal" {
            let goals = crate::goals::goals_of(state.store.as_ref(), site.id)
                .await
                .map_err(|_| {
                    V1Error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the store is unavailable".into(),
                    )
                })?;
            for v in &values {
                if !goals.iter().any(|g| &g.display_name == v) {
                    return Err(bad(match v.strip_prefix("Visit ") {
                        Some(path) => format!(
                            "The pageview goal for the pathname `{path}` is not configured for this site. Find out how to configure goals here: https://plausible.io/docs/stats-api#filtering-by-goals"
                        ),
                        None => format!(
                            "The goal `{v}` is not configured for this site. Find out how to configure goals here: https://plausible.io/docs/stats-api#filtering-by-goals"
                        ),
                    }));
                }
            }
            out.push(json!(["is", property, values]));
            continue;
        }
        if property == "visit:country" && values.iter().any(|v| v.len() != 2) {
            continue;
        }
        // "Direct / None" and "(not set)" stand for no value.
        let values: Vec<String> = values
            .into_iter()
            .map(|v| match v.as_str() {
                "Direct / None" | "(not set)" if property.starts_with("visit:") => String::new(),
                _ => v,
            })
            .collect();
        if value.contains('*') {
            let pattern = unescaped_bars
                .split(value)
                .map(|alt| {
                    format!(
                        "^{}$",
                        regex::escape(alt)
                            .replace(r"\*\*", ".*")
                            .replace(r"\*", ".*")
                    )
                })
                .collect::<Vec<_>>()
                .join("|");
            out.push(json!([
                if negated { "matches_not" } else { "matches" },
                property,
                [pattern]
            ]));
        } else if values.len() > 1 {
            // Plausible reads `!=` with a list as `==`.
            out.push(json!(["is", property, values]));
        } else {
            out.push(json!([
                if negated { "is_not" } else { "is" },
                property,
                values
            ]));
        }
    }
    Ok(out)
}

/// The `metrics` asked for (`visitors` by default), checked as Plausible checks them for a
/// breakdown by `property` (if any) with `filters`.
fn metrics(
    params: &Params,
    property: Option<&str>,
    filters: &[Value],
) -> Result<Vec<String>, V1Error> {
    let raw = params.get("metrics").map_or("visitors", String::as_str);
    let list: Vec<String> = raw.split(',').map(str::to_string).collect();
    for (i, m) in list.iter().enumerate() {
        if list[..i].contains(m) {
            return Err(bad("Metrics cannot be queried multiple times."));
        }
        if !METRICS.contains(&m.as_str()) {
            return Err(bad(format!(
                "The metric `{m}` is not recognized. Find valid metrics from the documentation: https://plausible.io/docs/stats-api#metrics"
            )));
        }
    }
    let filtered = |p: &dyn Fn(&str) -> bool| {
        filters
            .iter()
            .filter_map(|f| f.get(1).and_then(Value::as_str))
            .find(|name| p(name))
            .map(str::to_string)
    };
    let on_goal = filtered(&|p| p == "event:goal").is_some();
    for m in &list {
        match m.as_str() {
            "conversion_rate" if property != Some("event:goal") && !on_goal => {
                return Err(bad(
                    "Metric `conversion_rate` can only be queried in a goal breakdown or with a goal filter",
                ));
            }
            "views_per_visit" if filtered(&|p| p == "event:page").is_some() => {
                return Err(bad(
                    "Metric `views_per_visit` cannot be queried with a filter on `event:page`.",
                ));
            }
            "views_per_visit" if property.is_some() => {
                return Err(bad(
                    "Metric `views_per_visit` is not supported in breakdown queries.",
                ));
            }
            "time_on_page" => {
                if on_goal {
                    return Err(bad(
                        "Metric `time_on_page` cannot be queried when filtering by `event:goal`",
                    ));
                }
                if filtered(&|p| p == "event:name").is_some() {
                    return Err(bad(
                        "Metric `time_on_page` cannot be queried when filtering by `event:name`",
                    ));
                }
                match property {
                    Some("event:page") => {}
                    Some(_) => {
                        return Err(bad(
                            "Metric `time_on_page` is not supported in breakdown queries (except `event:page` breakdown)",
                        ));
                    }
                    None if filtered(&|p| p == "event:page").is_none() => {
                        return Err(bad(
                            "Metric `time_on_page` can only be queried in a page breakdown or with a page filter.",
                        ));
                    }
                    None => {}
                }
            }
            m if SESSION_METRICS.contains(&m) => {
                if let Some(p) = property.filter(|p| event_only(p)) {
                    return Err(bad(format!(
                        "Session metric `{m}` cannot be queried for breakdown by `{p}`."
                    )));
                }
                if let Some(f) = filtered(&event_only) {
                    return Err(bad(format!(
                        "Session metric `{m}` cannot be queried when using a filter on `{f}`."
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(list)
}

/// Runs a v2 query written as JSON; its results.
async fn ask(state: &AppState, site: &Site, q: Value) -> Result<Vec<Value>, V1Error> {
    let query = model::parse(&q).map_err(|e| bad(e.0))?;
    let deadline = state.queries.deadline();
    let _turn = state.queries.turn(deadline).await.map_err(|_| {
        V1Error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy; try again".into(),
        )
    })?;
    let policy = policy(state, site, deadline, state.sample_threshold);
    let answer = run(state.store.as_ref(), site, &query, &policy)
        .await
        .map_err(|e| match e {
            RunError::Query(e) => bad(e.0),
            RunError::Purged(m) => V1Error(StatusCode::UNPROCESSABLE_ENTITY, m),
            RunError::Store(e) => {
                tracing::error!(error = %e, "a Stats API v1 question failed in the store");
                V1Error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store is unavailable".into(),
                )
            }
        })?;
    Ok(answer["results"].as_array().cloned().unwrap_or_default())
}

/// A metric's value as v1 writes it: rates and durations whole, views per visit to 2 places.
fn shown(metric: &str, v: &Value) -> Value {
    match (metric, v.as_f64()) {
        ("bounce_rate" | "visit_duration", Some(f)) => json!(f.round() as i64),
        ("views_per_visit", Some(f)) => json!((f * 100.0).round() / 100.0),
        _ => v.clone(),
    }
}

/// The site the request may read, its zone, and the days `period` and `date` name.
async fn site_and_days(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(Site, chrono_tz::Tz, (NaiveDate, NaiveDate)), V1Error> {
    let site = site(state, headers, params).await?;
    let tz: chrono_tz::Tz = site.timezone.parse().unwrap_or(chrono_tz::UTC);
    let today = state.clock.now().with_timezone(&tz).date_naive();
    let range = days(params, today)?;
    Ok((site, tz, range))
}

/// The site's day and the range asked for, with the filters and metrics, checked in
/// Plausible's order.
async fn question(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    property: Option<&str>,
) -> Result<(Site, (NaiveDate, NaiveDate), Vec<Value>, Vec<String>), V1Error> {
    let (site, _, range) = site_and_days(state, headers, params).await?;
    let filters = filters(state, &site, params).await?;
    let metrics = metrics(params, property, &filters)?;
    Ok((site, range, filters, metrics))
}

/// `GET /api/v1/stats/realtime/visitors?site_id=…`: the visitors of the last 5 minutes, a
/// bare number.
pub async fn realtime(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<Params>,
) -> Result<Json<Value>, V1Error> {
    let site = site(&state, &headers, &params).await?;
    let now = state.clock.now();
    let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let results = ask(
        &state,
        &site,
        json!({"site_id": site.domain, "metrics": ["visitors"],
               "date_range": [at(now - TimeDelta::seconds(REALTIME_SECS)), at(now)]}),
    )
    .await?;
    Ok(Json(
        results
            .first()
            .map_or(json!(0), |r| r["metrics"][0].clone()),
    ))
}

/// `GET /api/v1/stats/aggregate`: `{"results": {"visitors": {"value": …}}}`, with `change` and
/// `comparison_value` when `compare=previous_period`.
pub async fn aggregate(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<Params>,
) -> Result<Json<Value>, V1Error> {
    let (site, (first, last), filters, metrics) = question(&state, &headers, &params, None).await?;
    let compare = params
        .get("compare")
        .is_some_and(|c| c == "previous_period");
    let mut q = json!({"site_id": site.domain, "metrics": metrics, "filters": filters,
                       "date_range": [first.to_string(), last.to_string()]});
    if compare {
        q["include"] = json!({"comparisons": {"mode": "previous_period"}});
    }
    let results = ask(&state, &site, q).await?;
    let row = results.first().cloned().unwrap_or(Value::Null);
    let mut out = Map::new();
    for (i, m) in metrics.iter().enumerate() {
        let value = shown(m, row["metrics"].get(i).unwrap_or(&json!(0)));
        let mut entry = json!({ "value": value });
        if compare {
            let before = shown(m, row["comparison"]["metrics"].get(i).unwrap_or(&json!(0)));
            let change = match m.as_str() {
                "bounce_rate" if before.as_f64() == Some(0.0) => Value::Null,
                _ => row["comparison"]["change"]
                    .get(i)
                    .cloned()
                    .unwrap_or(Value::Null),
            };
            entry["change"] = change;
            entry["comparison_value"] = before;
        }
        out.insert(m.clone(), entry);
    }
    Ok(Json(json!({ "results": out })))
}

/// `GET /api/v1/stats/timeseries`: one row per hour, day or month of the range, `date` first.
pub async fn timeseries(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<Params>,
) -> Result<Json<Value>, V1Error> {
    let (site, tz, (first, last)) = site_and_days(&state, &headers, &params).await?;
    let period = params.get("period").map_or("30d", String::as_str);
    let bucket = match params.get("interval").map(String::as_str) {
        Some("day" | "date") => "time:day",
        Some("month") => "time:month",
        Some(other) => {
            return Err(bad(format!(
                "Error parsing `interval` parameter: invalid interval `{other}`. Valid intervals are `day`, `month`"
            )));
        }
        None => match period {
            "day" => "time:hour",
            "6mo" | "12mo" => "time:month",
            _ => "time:day",
        },
    };
    let filters = filters(&state, &site, &params).await?;
    let metrics = metrics(&params, None, &filters)?;
    let results = ask(
        &state,
        &site,
        json!({"site_id": site.domain, "metrics": metrics, "filters": filters,
               "dimensions": [bucket], "include": {"time_labels": true},
               "date_range": [first.to_string(), last.to_string()]}),
    )
    .await?;
    let labels = crate::query::time::labels(
        match bucket {
            "time:hour" => model::TimeBucket::Hour,
            "time:month" => model::TimeBucket::Month,
            _ => model::TimeBucket::Day,
        },
        &crate::query::time::Span {
            first_day: first,
            last_day: last,
            from: 0,
            to: 0,
            partial: false,
        },
        tz,
    )
    .map_err(|e| bad(e.0))?;
    let by_label: HashMap<&str, &Value> = results
        .iter()
        .filter_map(|r| Some((r["dimensions"][0].as_str()?, &r["metrics"])))
        .collect();
    let rows: Vec<Value> = labels
        .iter()
        .map(|label| {
            let mut row = Map::new();
            row.insert("date".into(), json!(label));
            for (i, m) in metrics.iter().enumerate() {
                let v = match by_label.get(label.as_str()).and_then(|v| v.get(i)) {
                    Some(v) => shown(m, v),
                    None if m == "visit_duration" => Value::Null,
                    None => json!(0),
                };
                row.insert(m.clone(), v);
            }
            Value::Object(row)
        })
        .collect();
    Ok(Json(json!({ "results": rows })))
}

/// `GET /api/v1/stats/breakdown`: a row per value of `property` (keyed by its last part), by
/// the first metric, most first; `limit` (1 to 1,000, 100 by default) rows of `page`.
pub async fn breakdown(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<Params>,
) -> Result<Json<Value>, V1Error> {
    let (site, _, (first, last)) = site_and_days(&state, &headers, &params).await?;
    let property = params.get("property").map(String::as_str).ok_or_else(|| {
        bad("The `property` parameter is required. Please provide at least one property to show a breakdown by.")
    })?;
    if property == "event:hostname" {
        return Err(bad(
            "Property 'event:hostname' is currently not supported for breakdowns.  Please provide a valid property for the breakdown endpoint: https://plausible.io/docs/stats-api#properties",
        ));
    }
    if !valid_property(property, false) {
        return Err(bad(format!(
            "Invalid property '{property}'. Please provide a valid property for the breakdown endpoint: https://plausible.io/docs/stats-api#properties"
        )));
    }
    let filters = filters(&state, &site, &params).await?;
    let metrics = metrics(&params, Some(property), &filters)?;
    let limit = match params.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| bad("Please provide limit as a number between 1 and 1000."))?,
    };
    let page = match params.get("page") {
        None => 1,
        Some(p) => p
            .parse::<u32>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("Please provide page as a positive number."))?,
    };
    // A version is broken down with the browser or system it belongs to.
    let mut dimensions = vec![property];
    match property {
        "visit:browser_version" => dimensions.push("visit:browser"),
        "visit:os_version" => dimensions.push("visit:os"),
        _ => {}
    }
    let order = metrics
        .iter()
        .find(|m| *m != "time_on_page")
        .map_or("visitors", String::as_str);
    let mut order_by = vec![json!([order, "desc"])];
    if property != "event:goal" {
        order_by.push(json!([property, "asc"]));
    }
    let mut asked = metrics.clone();
    if !asked.iter().any(|m| m == order) {
        asked.push(order.to_string());
    }
    // Rows without a value are left out for places and campaigns, as Plausible leaves them.
    let mut filters = filters;
    if ["visit:country", "visit:region", "visit:city"].contains(&property)
        || property.starts_with("visit:utm_")
    {
        filters.push(json!(["is_not", property, [""]]));
    }
    let results = ask(
        &state,
        &site,
        json!({"site_id": site.domain, "metrics": asked, "filters": filters,
               "dimensions": dimensions, "order_by": order_by,
               "pagination": {"limit": limit, "offset": (page - 1) * limit},
               "date_range": [first.to_string(), last.to_string()]}),
    )
    .await?;
    let key = |p: &str| p.rsplit(':').next().unwrap_or(p).to_string();
    let rows: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut row = Map::new();
            for (i, d) in dimensions.iter().enumerate() {
                let v = r["dimensions"][i].as_str().unwrap_or_default();
                let v = match (*d, v) {
                    ("visit:source" | "visit:referrer", "") => "Direct / None",
                    (
                        "visit:browser" | "visit:os" | "visit:browser_version" | "visit:os_version",
                        "",
                    ) => "(not set)",
                    (p, "") if p.starts_with("event:props:") => "(none)",
                    _ => v,
                };
                row.insert(key(d), json!(v));
            }
            for (i, m) in metrics.iter().enumerate() {
                row.insert(m.clone(), shown(m, &r["metrics"][i]));
            }
            Value::Object(row)
        })
        .collect();
    Ok(Json(json!({ "results": rows })))
}
