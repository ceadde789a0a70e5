//! The dashboard's management API: sites, their settings, API keys, shared links and users.
//!
//! Reading the site list is open to every logged-in user (each sees the sites they may
//! read) and to a shared link (its one site). Everything else here is for admins, with the
//! session's CSRF token. [`STATE_CHANGING_ROUTES`] lists every route that changes anything;
//! the tests try each with a shared link, an API key, a viewer and a missing CSRF token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Principal, account_error, blocking, json_body, principal};
use super::{ApiError, AppState};
use crate::accounts::{self, Role, User};
use crate::cli::site::{validate_domain, validate_timezone};
use crate::store::{Site, StoreError};

/// Every route that changes state, as (method, path with sample parameters). Shared links,
/// API keys, viewers and requests without the CSRF token are refused on each.
pub const STATE_CHANGING_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/sites"),
    ("PUT", "/api/sites/{domain}"),
    ("DELETE", "/api/sites/{domain}"),
    ("PUT", "/api/sites/{domain}/rules"),
    ("POST", "/api/sites/{domain}/reset"),
    ("POST", "/api/sites/{domain}/purge"),
    ("PUT", "/api/sites/{domain}/mail"),
    ("POST", "/api/sites/{domain}/mail/send"),
    ("POST", "/api/sites/{domain}/mail/retry/{id}"),
    ("POST", "/api/sites/{domain}/keys"),
    ("DELETE", "/api/sites/{domain}/keys/{id}"),
    ("POST", "/api/sites/{domain}/shares"),
    ("DELETE", "/api/sites/{domain}/shares/{id}"),
    ("POST", "/api/sites/{domain}/imports/plausible"),
    ("DELETE", "/api/sites/{domain}/imports/{id}"),
    ("POST", "/api/sites/{domain}/goals"),
    ("DELETE", "/api/sites/{domain}/goals/{id}"),
    ("POST", "/api/sites/{domain}/subject"),
    ("POST", "/api/users"),
    ("PUT", "/api/users/{email}"),
    ("DELETE", "/api/users/{email}"),
    ("POST", "/api/auth/password"),
    ("POST", "/api/auth/two-factor/setup"),
    ("POST", "/api/auth/two-factor/enable"),
    ("POST", "/api/auth/two-factor/disable"),
    ("POST", "/api/auth/two-factor/recovery-codes"),
    ("DELETE", "/api/auth/sessions/{id}"),
    ("PUT", "/api/server/settings"),
    ("POST", "/api/server/mail-test"),
    ("POST", "/api/server/keys"),
    ("POST", "/api/sites/{domain}/annotations"),
    ("DELETE", "/api/sites/{domain}/annotations/{id}"),
    ("DELETE", "/api/server/keys/{id}"),
    ("POST", "/api/users/invite"),
    ("POST", "/api/auth/logout"),
];

/// Longest label of a shared link.
pub(super) const MAX_LABEL_CHARS: usize = 100;

pub(super) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::SiteExists(d) => ApiError::BadRequest(format!("site {d} already exists")),
        other => {
            tracing::error!(error = %other, "store failed");
            ApiError::Unavailable
        }
    }
}

fn site_json(s: &Site) -> Value {
    json!({"id": s.id, "domain": s.domain, "timezone": s.timezone})
}

/// The site named `domain` (admins see every site).
pub(super) async fn site(state: &AppState, domain: &str) -> Result<Site, ApiError> {
    state
        .store
        .meta()
        .sites()
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|s| s.domain == domain)
        .ok_or_else(|| ApiError::NotFound(format!("no site `{domain}`")))
}

/// The public address of this Footfall, as the browser sees it.
pub(super) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost:8000");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

/// Refreshes the pipeline's site list at once, so a new or renamed site takes events now.
pub(super) async fn reload_sites(state: &AppState) -> Result<(), ApiError> {
    state
        .pipeline
        .set_sites(state.store.meta().sites().await.map_err(store_error)?);
    Ok(())
}

pub async fn list_sites(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let sites: Vec<Value> = state
        .store
        .meta()
        .sites()
        .await
        .map_err(store_error)?
        .iter()
        .filter(|s| who.can_read(s))
        .map(site_json)
        .collect();
    Ok(Json(json!({ "sites": sites })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteBody {
    domain: String,
    #[serde(default)]
    timezone: Option<String>,
}

fn valid_site(body: &SiteBody) -> Result<(String, Option<String>), ApiError> {
    let domain = validate_domain(&body.domain).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let timezone = body
        .timezone
        .as_deref()
        .map(validate_timezone)
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((domain, timezone))
}

pub async fn add_site(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?;
    let body: SiteBody = json_body(&headers, body).await?;
    let (domain, timezone) = valid_site(&body)?;
    let site = state
        .store
        .meta()
        .add_site(&domain, timezone.as_deref().unwrap_or("UTC"))
        .await
        .map_err(store_error)?;
    tracing::info!(site = %site.domain, by = %admin.email, "site added");
    reload_sites(&state).await?;
    Ok((StatusCode::CREATED, Json(site_json(&site))))
}

pub async fn update_site(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?;
    let current = site(&state, &domain).await?;
    let body: SiteBody = json_body(&headers, body).await?;
    let (new_domain, timezone) = valid_site(&body)?;
    let updated = Site {
        id: current.id,
        domain: new_domain,
        timezone: timezone.unwrap_or(current.timezone),
    };
    if !state
        .store
        .meta()
        .update_site(&updated)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::NotFound(format!("no site `{domain}`")));
    }
    tracing::info!(site = %updated.domain, by = %admin.email, "site settings changed");
    reload_sites(&state).await?;
    Ok(Json(site_json(&updated)))
}

/// Everything the settings page shows: the site, retention, keys, links and the snippet.
pub async fn site_settings(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    principal(&state, &headers).await?.admin_reader()?;
    let site = site(&state, &domain).await?;
    let keys: Vec<Value> = state
        .store
        .meta()
        .api_keys()
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|k| k.site_id == site.id)
        .map(|k| json!({"id": k.id, "created_at": k.created_at, "revoked": k.revoked != 0}))
        .collect();
    let shares: Vec<Value> = accounts::shares(state.store.as_ref())
        .await
        .map_err(account_error)?
        .into_iter()
        .filter(|l| l.site_id == site.id)
        .map(|l| {
            json!({"id": l.id, "label": l.label, "password": l.password_hash.is_some(), "created_at": l.created_at, "embed_origins": l.embed_origins})
        })
        .collect();
    let base = base_url(&headers);
    Ok(Json(json!({
        "site": site_json(&site),
        "raw_retention_days": state.raw_retention_days,
        "aggregate_retention_days": state.aggregate_retention_days,
        "keys": keys,
        "shares": shares,
        "imports": super::imports::list(&state, site.id).await?,
        "rules": super::sites::settings_json(
            &state,
            &crate::sites::settings_of(state.store.as_ref(), site.id)
                .await
                .map_err(store_error)?,
        ),
        "goals": super::goals::list(&state, site.id).await?,
        "snippet": format!("<script defer data-domain=\"{}\" src=\"{base}/js/script.js\"></script>", site.domain),
    })))
}

pub async fn create_key(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?;
    let site = site(&state, &domain).await?;
    let now = u32::try_from(state.clock.now().timestamp()).unwrap_or(0);
    let key = crate::apikey::generate(site.id, now);
    state
        .store
        .meta()
        .add_api_key(&key.record)
        .await
        .map_err(store_error)?;
    tracing::info!(site = %site.domain, key = %key.record.id, by = %admin.email, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": key.record.id, "key": key.secret})),
    ))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    Path((domain, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?;
    let site = site(&state, &domain).await?;
    let owned = state
        .store
        .meta()
        .api_keys()
        .await
        .map_err(store_error)?
        .iter()
        .any(|k| k.id == id && k.site_id == site.id);
    if !owned
        || !state
            .store
            .meta()
            .revoke_api_key(&id)
            .await
            .map_err(store_error)?
    {
        return Err(ApiError::NotFound(format!("no API key {id} for {domain}")));
    }
    tracing::info!(site = %site.domain, key = %id, by = %admin.email, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    #[serde(default)]
    label: String,
    #[serde(default)]
    password: Option<String>,
    /// Origins whose pages may show the link in a frame (`?embed=true`).
    #[serde(default)]
    embed_origins: Vec<String>,
}

pub async fn create_share(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    let site = site(&state, &domain).await?;
    let body: ShareBody = json_body(&headers, body).await?;
    let label = body.label.trim().to_string();
    if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "a label has at most {MAX_LABEL_CHARS} characters and no control characters"
        )));
    }
    let password_hash = match body.password.filter(|p| !p.is_empty()) {
        Some(p) => Some(
            blocking(move || accounts::hash_password(&p))
                .await?
                .map_err(account_error)?,
        ),
        None => None,
    };
    let origins = accounts::embed_origins(&body.embed_origins).map_err(account_error)?;
    let (token, link) = accounts::create_embeddable_share(
        state.store.as_ref(),
        site.id,
        &label,
        password_hash,
        origins,
        state.clock.now().timestamp(),
    )
    .await
    .map_err(account_error)?;
    tracing::info!(site = %site.domain, share = %link.id, by = %admin, "shared link created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": link.id,
            "url": format!("{}/share/{token}", base_url(&headers)),
        })),
    ))
}

pub async fn revoke_share(
    State(state): State<AppState>,
    Path((domain, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?;
    let site = site(&state, &domain).await?;
    let store = state.store.as_ref();
    let owned = accounts::shares(store)
        .await
        .map_err(account_error)?
        .iter()
        .any(|l| l.id == id && l.site_id == site.id);
    if !owned
        || !accounts::revoke_share(store, &id)
            .await
            .map_err(account_error)?
    {
        return Err(ApiError::NotFound(format!(
            "no shared link {id} for {domain}"
        )));
    }
    tracing::info!(site = %site.domain, share = %id, by = %admin.email, "shared link revoked");
    Ok(StatusCode::NO_CONTENT)
}

fn user_json(u: &User, sites: &[Site]) -> Value {
    let domains: Vec<&str> = sites
        .iter()
        .filter(|s| u.sites.contains(&s.id))
        .map(|s| s.domain.as_str())
        .collect();
    json!({"email": u.email, "role": u.role, "sites": domains, "created_at": u.created_at})
}

pub async fn list_users(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    principal(&state, &headers).await?.admin_reader()?;
    let sites = state.store.meta().sites().await.map_err(store_error)?;
    let users: Vec<Value> = accounts::users(state.store.as_ref())
        .await
        .map_err(account_error)?
        .iter()
        .map(|u| user_json(u, &sites))
        .collect();
    Ok(Json(json!({ "users": users })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    role: Role,
    /// Domains a viewer may read.
    #[serde(default)]
    sites: Vec<String>,
}

pub(super) async fn site_ids(state: &AppState, domains: &[String]) -> Result<Vec<u32>, ApiError> {
    let sites = state.store.meta().sites().await.map_err(store_error)?;
    let mut ids = Vec::new();
    for d in domains {
        let site = sites
            .iter()
            .find(|s| &s.domain == d)
            .ok_or_else(|| ApiError::BadRequest(format!("no site `{d}`")))?;
        if !ids.contains(&site.id) {
            ids.push(site.id);
        }
    }
    Ok(ids)
}

/// The address of a user to be added (an admin's form, an invitation): valid, and no user's
/// yet.
pub(super) async fn new_user_email(state: &AppState, raw: &str) -> Result<String, ApiError> {
    let email = accounts::validate_email(raw).map_err(account_error)?;
    if accounts::user(state.store.as_ref(), &email)
        .await
        .map_err(account_error)?
        .is_some()
    {
        return Err(ApiError::BadRequest(format!("user {email} already exists")));
    }
    Ok(email)
}

pub async fn add_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    let body: UserBody = json_body(&headers, body).await?;
    let email = new_user_email(&state, body.email.as_deref().unwrap_or("")).await?;
    let store = state.store.as_ref();
    let sites = site_ids(&state, &body.sites).await?;
    let password = body.password.unwrap_or_default();
    let password_hash = blocking(move || accounts::hash_password(&password))
        .await?
        .map_err(account_error)?;
    let user = User {
        email,
        password_hash,
        role: body.role,
        sites,
        created_at: state.clock.now().timestamp(),
    };
    accounts::put_user(store, &user)
        .await
        .map_err(account_error)?;
    tracing::info!(user = %user.email, by = %admin, "user added");
    let all = store.meta().sites().await.map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(user_json(&user, &all))))
}

pub async fn update_user(
    State(state): State<AppState>,
    Path(email): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    let body: UserBody = json_body(&headers, body).await?;
    let store = state.store.as_ref();
    let user = accounts::user(store, &email)
        .await
        .map_err(account_error)?
        .ok_or_else(|| ApiError::NotFound(format!("no user {email}")))?;
    if user.email == admin && body.role != Role::Admin {
        return Err(ApiError::BadRequest(
            "you cannot take your own admin role away".into(),
        ));
    }
    let sites = site_ids(&state, &body.sites).await?;
    let new_password = body.password.filter(|p| !p.is_empty());
    let reset = new_password.is_some();
    let password_hash = match new_password {
        Some(p) => blocking(move || accounts::hash_password(&p))
            .await?
            .map_err(account_error)?,
        None => user.password_hash.clone(),
    };
    let user = User {
        role: body.role,
        sites,
        password_hash,
        ..user
    };
    accounts::put_user(store, &user)
        .await
        .map_err(account_error)?;
    if reset {
        // A new password ends the user's sessions, as `footfall user passwd` does (an admin
        // resetting their own keeps the session that did it).
        let keep = match &who {
            Principal::User { session_id, .. } if user.email == admin => Some(session_id.as_str()),
            _ => None,
        };
        accounts::end_sessions(store, |s| s.user.as_deref() == Some(&user.email), keep)
            .await
            .map_err(account_error)?;
    }
    tracing::info!(user = %user.email, by = %admin, password_reset = reset, "user changed");
    let all = store.meta().sites().await.map_err(store_error)?;
    Ok(Json(user_json(&user, &all)))
}

pub async fn delete_user(
    State(state): State<AppState>,
    Path(email): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    if email == admin {
        return Err(ApiError::BadRequest("you cannot delete yourself".into()));
    }
    if !accounts::delete_user(state.store.as_ref(), &email)
        .await
        .map_err(account_error)?
    {
        return Err(ApiError::NotFound(format!("no user {email}")));
    }
    tracing::info!(user = %email, by = %admin, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}
