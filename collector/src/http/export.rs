//! `GET /api/v2/export?site_id=DOMAIN&date_range=30d&filters=[...]`: the whole dashboard of a
//! site as a ZIP of CSV files, one per panel, for the date range and filters given.
//!
//! `date_range` takes the Stats API's names or `FROM,TO` (YYYY-MM-DD); `filters` is the Stats
//! API's filter list as JSON. Every file is built by the same query engine the Stats API runs,
//! so an export matches what the dashboard shows.

use std::collections::HashMap;
use std::io::Write;

use axum::extract::{Query as UrlQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::query::run_error;
use super::{ApiError, AppState};
use crate::query::model;
use crate::query::run::run;

/// Rows per file at most (the Stats API's page limit).
const MAX_ROWS: u64 = model::MAX_LIMIT;

/// (file, dimension, metrics) of each panel.
const PANELS: &[(&str, &str, &[&str])] = &[
    (
        "visitors",
        "time:day",
        &[
            "visitors",
            "visits",
            "pageviews",
            "views_per_visit",
            "bounce_rate",
            "visit_duration",
        ],
    ),
    ("pages", "event:page", &["visitors", "pageviews"]),
    ("entry_pages", "visit:entry_page", &["visitors", "visits"]),
    ("exit_pages", "visit:exit_page", &["visitors", "visits"]),
    (
        "sources",
        "visit:source",
        &["visitors", "visits", "bounce_rate", "visit_duration"],
    ),
    ("referrers", "visit:referrer", &["visitors", "visits"]),
    ("channels", "visit:channel", &["visitors", "visits"]),
    ("utm_mediums", "visit:utm_medium", &["visitors", "visits"]),
    ("utm_sources", "visit:utm_source", &["visitors", "visits"]),
    (
        "utm_campaigns",
        "visit:utm_campaign",
        &["visitors", "visits"],
    ),
    ("utm_contents", "visit:utm_content", &["visitors", "visits"]),
    ("utm_terms", "visit:utm_term", &["visitors", "visits"]),
    ("countries", "visit:country_name", &["visitors"]),
    ("regions", "visit:region_name", &["visitors"]),
    ("cities", "visit:city_name", &["visitors"]),
    ("devices", "visit:device", &["visitors"]),
    ("browsers", "visit:browser", &["visitors"]),
    ("operating_systems", "visit:os", &["visitors"]),
    ("custom_events", "event:name", &["visitors", "events"]),
];

/// One CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`,
/// `-`, `@`, tab or carriage return is prefixed with `'` so a spreadsheet does not run it as a
/// formula (OWASP's list: a tab or CR may precede one).
pub fn csv_field(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => return other.to_string(),
    };
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// A `date_range` URL parameter (a Stats API name or `FROM,TO`) as the Stats API's JSON.
pub(super) fn date_range(raw: &str) -> Value {
    match raw.split_once(',') {
        Some((from, to)) => json!([from, to]),
        None => json!(raw),
    }
}

pub async fn get_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let site = super::query::authorize_param(&state, &headers, &params).await?;
    let range = date_range(params.get("date_range").map_or("30d", String::as_str));
    let filters: Value = match params.get("filters") {
        Some(f) => serde_json::from_str(f)
            .map_err(|e| ApiError::BadRequest(format!("`filters` is not JSON: {e}")))?,
        None => json!([]),
    };
    // The 19 panels are one question: one turn and one deadline.
    let deadline = state.queries.deadline();
    let _turn = state.queries.turn(deadline).await?;
    // An export is a record: its figures are exact, never scaled up from a sample.
    let policy = super::query::policy(&state, &site, deadline, 0);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (file, dimension, metrics) in PANELS {
        let body = json!({
            "site_id": site.domain,
            "metrics": metrics,
            "date_range": range,
            "dimensions": [dimension],
            "filters": filters,
            "pagination": {"limit": MAX_ROWS},
        });
        let query = model::parse(&body).map_err(|e| ApiError::BadRequest(e.0))?;
        let answer = run(state.store.as_ref(), &site, &query, &policy)
            .await
            .map_err(run_error)?;
        let mut csv = String::new();
        let name = dimension.rsplit(':').next().unwrap_or(dimension);
        csv.push_str(name);
        for m in *metrics {
            csv.push(',');
            csv.push_str(m);
        }
        csv.push_str("\r\n");
        for row in answer["results"].as_array().into_iter().flatten() {
            let cells = row["dimensions"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(row["metrics"].as_array().into_iter().flatten());
            let line: Vec<String> = cells.map(csv_field).collect();
            csv.push_str(&line.join(","));
            csv.push_str("\r\n");
        }
        zip.start_file(format!("{file}.csv"), options)
            .and_then(|()| zip.write_all(csv.as_bytes()).map_err(Into::into))
            .map_err(|e| {
                tracing::error!(error = %e, "cannot build the export");
                ApiError::Unavailable
            })?;
    }
    let bytes = zip
        .finish()
        .map_err(|e| {
            tracing::error!(error = %e, "cannot build the export");
            ApiError::Unavailable
        })?
        .into_inner();
    let today = state.clock.now().date_naive();
    let disposition = format!(
        "attachment; filename=\"{}-{today}.zip\"",
        site.domain.replace('.', "_")
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field(&json!("/blog")), "/blog");
        assert_eq!(csv_field(&json!("a,b")), "\"a,b\"");
        assert_eq!(csv_field(&json!("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field(&json!("=HYPERLINK(1)")), "'=HYPERLINK(1)");
        assert_eq!(csv_field(&json!("\t=1+1")), "'\t=1+1");
        assert_eq!(csv_field(&json!("\r=1+1")), "\"'\r=1+1\"");
        assert_eq!(csv_field(&json!(12)), "12");
        assert_eq!(csv_field(&json!(1.5)), "1.5");
        assert_eq!(csv_field(&Value::Null), "");
    }

    #[test]
    fn date_ranges() {
        assert_eq!(date_range("7d"), json!("7d"));
        assert_eq!(
            date_range("2026-01-01,2026-01-31"),
            json!(["2026-01-01", "2026-01-31"])
        );
    }
}
