//! Imported history in the site settings: upload a Plausible export, delete an import, and
//! download the site's own data as a Plausible export. The list of imports is part of the
//! settings (`GET /api/sites/{domain}/settings`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{site, store_error};
use super::auth::principal;
use super::{ApiError, AppState};
use crate::import::ImportError;
use crate::import::plausible::{self, Limits};

/// Largest archive the settings page takes; a larger one goes through `footfall import
/// plausible`, which reads the file from disk.
pub const MAX_UPLOAD_BYTES: usize = 256 << 20;

/// How long an upload may take to arrive.
pub const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

fn import_error(e: ImportError) -> ApiError {
    match e {
        ImportError::Store(e) => store_error(e),
        ImportError::NoSite(d) => ApiError::NotFound(format!("no site `{d}`")),
        other => ApiError::Unprocessable(other.to_string()),
    }
}

fn limits(state: &AppState) -> Limits {
    Limits {
        now: state.clock.now(),
        raw_retention_days: state.raw_retention_days,
        aggregate_retention_days: state.aggregate_retention_days,
    }
}

/// The imports of a site, for its settings.
pub async fn list(state: &AppState, site_id: u32) -> Result<Vec<Value>, ApiError> {
    Ok(plausible::imports_of(state.store.as_ref(), site_id, false)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|r| serde_json::to_value(r).unwrap_or_default())
        .collect())
}

/// `POST /api/sites/{domain}/imports/plausible`: the body is the export archive.
pub async fn upload_plausible(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    let site = site(&state, &domain).await?;
    let bytes = axum::body::to_bytes(body, MAX_UPLOAD_BYTES)
        .await
        .map_err(super::error::body_error)?;
    let name = headers
        .get("x-file-name")
        .and_then(|v| v.to_str().ok())
        .map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect())
        .unwrap_or_else(|| "upload.zip".to_string());
    let origin = name.clone();
    let parsed =
        tokio::task::spawn_blocking(move || plausible::parse(std::io::Cursor::new(bytes), &origin))
            .await
            .map_err(|_| ApiError::Unavailable)?
            .map_err(import_error)?;
    let l = limits(&state);
    let summary = plausible::store_parsed(
        state.store.as_ref(),
        &site,
        parsed,
        &name,
        "plausible",
        l.now,
        l.aggregate_retention_days,
    )
    .await
    .map_err(import_error)?;
    tracing::info!(site = %site.domain, by = %admin, days = summary.days, "Plausible export imported");
    Ok((
        StatusCode::CREATED,
        Json(json!({"summary": summary, "text": summary.render()})),
    ))
}

/// `DELETE /api/sites/{domain}/imports/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    Path((domain, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    let site = site(&state, &domain).await?;
    let missing = || ApiError::NotFound(format!("no import {id} for {domain}"));
    let number: u32 = id.parse().map_err(|_| missing())?;
    if !plausible::delete_import(state.store.as_ref(), site.id, number)
        .await
        .map_err(store_error)?
    {
        return Err(missing());
    }
    tracing::info!(site = %site.domain, import = number, by = %admin, "import deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRange {
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
}

/// `GET /api/sites/{domain}/export/plausible[?from=&to=]`: the site's own data as a Plausible
/// export archive.
pub async fn export_plausible(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    Query(range): Query<ExportRange>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal(&state, &headers).await?.admin_reader()?;
    let site = site(&state, &domain).await?;
    let l = limits(&state);
    let (bytes, _, _) =
        plausible::export_archive(state.store.as_ref(), &site, &l, range.from, range.to)
            .await
            .map_err(import_error)?;
    let tz = crate::import::site_tz(&site).map_err(import_error)?;
    let name = plausible::export_name(&site, l.now.with_timezone(&tz).date_naive());
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
