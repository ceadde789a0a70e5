//! Who is asking, and what they may do.
//!
//! A request to the Stats API or the dashboard's API is made by one [`Principal`]:
//! - an API key (`Authorization: Bearer ff_…`): reads its one site;
//! - a logged-in user (the `ff_session` cookie): reads the sites their role allows; changes
//!   things only with the session's CSRF token in `X-CSRF-Token`;
//! - a shared link (`X-Footfall-Share: <token>`, plus the `ff_share` cookie when the link has
//!   a password): reads its one site, and can never change anything.
//!
//! Routes: `POST /api/auth/login`, `POST /api/auth/logout`, `GET /api/auth/me`,
//! `POST /api/auth/password`, `POST /api/share/unlock`. Failed logins are limited per client
//! IP and per e-mail address (in memory; the IP is never written anywhere).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::accounts::{self, AccountError, SharedLink, User};
use crate::ingest::ip::client_ip;
use crate::store::{ApiKey, Site};

pub const SESSION_COOKIE: &str = "ff_session";
pub const SHARE_COOKIE: &str = "ff_share";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const SHARE_HEADER: &str = "x-footfall-share";
/// Largest body of an account request, in bytes.
pub const MAX_AUTH_BODY: usize = 16 * 1024;

/// The maker of a request.
pub enum Principal {
    Key(ApiKey),
    User {
        user: User,
        session_id: String,
        csrf: String,
    },
    Share(SharedLink),
}

impl Principal {
    pub fn can_read(&self, site: &Site) -> bool {
        match self {
            Principal::Key(k) => k.site_id == site.id,
            Principal::User { user, .. } => user.can_read(site.id),
            Principal::Share(l) => l.site_id == site.id,
        }
    }

    /// The logged-in user allowed to make a change: never a key or a shared link, and only
    /// with the session's CSRF token.
    pub fn editor(&self, headers: &HeaderMap) -> Result<&User, ApiError> {
        match self {
            Principal::Key(_) => Err(ApiError::Forbidden(
                "API keys only read statistics; log in to change anything".into(),
            )),
            Principal::Share(_) => Err(ApiError::Forbidden("a shared link is read-only".into())),
            Principal::User { user, csrf, .. } => {
                let sent = headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if accounts::constant_time_eq(sent, csrf) {
                    Ok(user)
                } else {
                    Err(ApiError::Forbidden(
                        "missing or wrong CSRF token: send the session's token in X-CSRF-Token"
                            .into(),
                    ))
                }
            }
        }
    }

    /// A logged-in admin, for reading what only admins see (no change, so no CSRF token).
    pub fn admin_reader(&self) -> Result<&User, ApiError> {
        match self {
            Principal::User { user, .. } if user.is_admin() => Ok(user),
            _ => Err(ApiError::Forbidden("only an admin may see this".into())),
        }
    }

    /// An admin allowed to make a change.
    pub fn admin(&self, headers: &HeaderMap) -> Result<&User, ApiError> {
        let user = self.editor(headers)?;
        if user.is_admin() {
            Ok(user)
        } else {
            Err(ApiError::Forbidden("only an admin may do this".into()))
        }
    }
}

pub fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::Invalid(m) => ApiError::BadRequest(m),
        other => {
            tracing::error!(error = %other, "account store failed");
            ApiError::Unavailable
        }
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over HTTPS (through a TLS-terminating proxy).
fn https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure over HTTPS; `max_age` 0 deletes it.
fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if https(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn now(state: &AppState) -> i64 {
    state.clock.now().timestamp()
}

/// The logged-in user of a session cookie, if any.
pub async fn session_user(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(User, String, String)>, ApiError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let store = state.store.as_ref();
    let Some((id, session)) = accounts::session(store, token, now(state))
        .await
        .map_err(account_error)?
    else {
        return Ok(None);
    };
    let Some(email) = session.user else {
        return Ok(None);
    };
    Ok(accounts::user(store, &email)
        .await
        .map_err(account_error)?
        .map(|u| (u, id, session.csrf)))
}

/// Who made the request: 401 when no one valid.
pub async fn principal(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let store = state.store.as_ref();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthorized("send `Authorization: Bearer <key>`".into()))?;
        let key = crate::apikey::verify(store, token)
            .await
            .map_err(|_| ApiError::Unavailable)?
            .ok_or_else(|| ApiError::Unauthorized("invalid or revoked API key".into()))?;
        return Ok(Principal::Key(key));
    }
    if let Some(token) = headers.get(SHARE_HEADER) {
        let token = token.to_str().unwrap_or("");
        let link = accounts::share_by_token(store, token)
            .await
            .map_err(account_error)?
            .ok_or_else(|| {
                ApiError::Unauthorized("this shared link is invalid or revoked".into())
            })?;
        if link.password_hash.is_some() && !share_unlocked(state, headers, &link).await? {
            return Err(ApiError::Unauthorized(
                "this shared link needs its password".into(),
            ));
        }
        return Ok(Principal::Share(link));
    }
    match session_user(state, headers).await? {
        Some((user, session_id, csrf)) => Ok(Principal::User {
            user,
            session_id,
            csrf,
        }),
        None => Err(ApiError::Unauthorized(
            "log in, or send an API key as `Authorization: Bearer <key>`".into(),
        )),
    }
}

async fn share_unlocked(
    state: &AppState,
    headers: &HeaderMap,
    link: &SharedLink,
) -> Result<bool, ApiError> {
    let Some(token) = cookie(headers, SHARE_COOKIE) else {
        return Ok(false);
    };
    Ok(accounts::session(state.store.as_ref(), token, now(state))
        .await
        .map_err(account_error)?
        .is_some_and(|(_, s)| s.share.as_deref() == Some(link.id.as_str())))
}

/// The site named `domain` if the principal may read it; 404 otherwise, so a site's existence
/// is not revealed to those who may not read it.
pub async fn readable_site(
    state: &AppState,
    principal: &Principal,
    domain: &str,
) -> Result<Site, ApiError> {
    state
        .store
        .sites()
        .await
        .map_err(|_| ApiError::Unavailable)?
        .into_iter()
        .find(|s| s.domain == domain && principal.can_read(s))
        .ok_or_else(|| ApiError::NotFound(format!("no site `{domain}` for this account")))
}

/// Reads a JSON body of at most [`MAX_AUTH_BODY`] bytes sent as `application/json` (a
/// cross-site form cannot send that type without the browser asking first).
pub async fn json_body<T: for<'de> Deserialize<'de>>(
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::BadRequest(
            "send the body as application/json".into(),
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_AUTH_BODY)
        .await
        .map_err(|_| ApiError::TooLarge)?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("bad body: {e}")))
}

/// Runs CPU-heavy password work off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::Unavailable)
}

/// Failed login attempts per client IP and per e-mail, over a sliding window.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, Vec<i64>>>,
}

impl LoginLimiter {
    pub const WINDOW_SECS: i64 = 15 * 60;
    pub const MAX_FAILURES: usize = 10;
    /// Most keys remembered; beyond it the stalest are forgotten.
    const MAX_KEYS: usize = 100_000;

    /// Seconds to wait when any of `keys` has used up its failures.
    pub fn blocked(&self, keys: &[String], now: i64) -> Option<u32> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|k| map.get(k))
            .filter_map(|times| {
                let recent: Vec<i64> = times
                    .iter()
                    .copied()
                    .filter(|t| now - t < Self::WINDOW_SECS)
                    .collect();
                (recent.len() >= Self::MAX_FAILURES).then(|| {
                    let oldest = recent.iter().min().copied().unwrap_or(now);
                    u32::try_from(oldest + Self::WINDOW_SECS - now)
                        .unwrap_or(1)
                        .max(1)
                })
            })
            .max()
    }

    pub fn fail(&self, keys: &[String], now: i64) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::MAX_KEYS {
            map.retain(|_, times| times.iter().any(|t| now - t < Self::WINDOW_SECS));
            if map.len() >= Self::MAX_KEYS {
                map.clear();
            }
        }
        for key in keys {
            let times = map.entry(key.clone()).or_default();
            times.retain(|t| now - t < Self::WINDOW_SECS);
            times.push(now);
        }
    }

    pub fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

fn me_json(user: &User, csrf: &str) -> Value {
    json!({
        "email": user.email,
        "role": user.role,
        "sites": user.sites,
        "csrf": csrf,
    })
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body: LoginBody = json_body(&headers, body).await?;
    let email = body.email.trim().to_lowercase();
    let ip = client_ip(peer.ip(), &headers, &state.proxies);
    let keys = [format!("ip:{ip}"), format!("email:{email}")];
    let t = now(&state);
    if let Some(retry_after_secs) = state.login_limiter.blocked(&keys, t) {
        return Err(ApiError::RateLimited { retry_after_secs });
    }
    let store = state.store.as_ref();
    let user = if email.len() <= accounts::MAX_EMAIL_BYTES {
        accounts::user(store, &email).await.map_err(account_error)?
    } else {
        None
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = body.password;
    let ok = blocking(move || accounts::verify_password(&password, hash.as_deref())).await?;
    let Some(user) = user.filter(|_| ok) else {
        state.login_limiter.fail(&keys, t);
        return Err(ApiError::Unauthorized("wrong e-mail or password".into()));
    };
    state.login_limiter.clear(&keys[1]);
    let (token, session) =
        accounts::start_session(store, Some(&user.email), None, t, accounts::SESSION_SECS)
            .await
            .map_err(account_error)?;
    tracing::info!(user = %user.email, "dashboard login");
    let cookie = set_cookie(&headers, SESSION_COOKIE, &token, accounts::SESSION_SECS);
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(me_json(&user, &session.csrf)),
    )
        .into_response())
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = principal(&state, &headers).await?;
    who.editor(&headers)?;
    if let Principal::User { session_id, .. } = &who {
        accounts::end_session(state.store.as_ref(), session_id)
            .await
            .map_err(account_error)?;
    }
    let cookie = set_cookie(&headers, SESSION_COOKIE, "", 0);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

pub async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    match session_user(&state, &headers).await? {
        Some((user, _, csrf)) => Ok(Json(me_json(&user, &csrf))),
        None => Err(ApiError::Unauthorized("not logged in".into())),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current: String,
    new: String,
}

/// Changes the user's own password and ends their other sessions.
pub async fn change_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<StatusCode, ApiError> {
    let who = principal(&state, &headers).await?;
    let user = who.editor(&headers)?.clone();
    let Principal::User { session_id, .. } = &who else {
        return Err(ApiError::Forbidden("log in to change a password".into()));
    };
    let body: PasswordBody = json_body(&headers, body).await?;
    let old_hash = user.password_hash.clone();
    let (ok, new_hash) = blocking(move || {
        let ok = accounts::verify_password(&body.current, Some(&old_hash));
        (ok, ok.then(|| accounts::hash_password(&body.new)))
    })
    .await?;
    if !ok {
        return Err(ApiError::Forbidden("the current password is wrong".into()));
    }
    let new_hash = new_hash
        .unwrap_or_else(|| Err(AccountError::Invalid("no new password".into())))
        .map_err(account_error)?;
    let store = state.store.as_ref();
    let email = user.email.clone();
    accounts::put_user(
        store,
        &User {
            password_hash: new_hash,
            ..user
        },
    )
    .await
    .map_err(account_error)?;
    accounts::end_sessions(
        store,
        |s| s.user.as_deref() == Some(&email),
        Some(session_id),
    )
    .await
    .map_err(account_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlockBody {
    token: String,
    password: String,
}

/// Opens a password-protected shared link in this browser for a day.
pub async fn unlock_share(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body: UnlockBody = json_body(&headers, body).await?;
    let ip = client_ip(peer.ip(), &headers, &state.proxies);
    let keys = [format!("ip:{ip}")];
    let t = now(&state);
    if let Some(retry_after_secs) = state.login_limiter.blocked(&keys, t) {
        return Err(ApiError::RateLimited { retry_after_secs });
    }
    let store = state.store.as_ref();
    let link = accounts::share_by_token(store, &body.token)
        .await
        .map_err(account_error)?
        .ok_or_else(|| ApiError::Unauthorized("this shared link is invalid or revoked".into()))?;
    let hash = link.password_hash.clone();
    let password = body.password;
    let ok = match hash {
        Some(h) => blocking(move || accounts::verify_password(&password, Some(&h))).await?,
        None => true,
    };
    if !ok {
        state.login_limiter.fail(&keys, t);
        return Err(ApiError::Unauthorized("wrong password".into()));
    }
    let (token, _) =
        accounts::start_session(store, None, Some(&link.id), t, accounts::SHARE_SESSION_SECS)
            .await
            .map_err(account_error)?;
    let cookie = set_cookie(&headers, SHARE_COOKIE, &token, accounts::SHARE_SESSION_SECS);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_blocks_after_ten_failures_in_the_window() {
        let l = LoginLimiter::default();
        let keys = ["ip:192.0.2.1".to_string(), "email:a@b.c".to_string()];
        for i in 0..9 {
            l.fail(&keys, 1000 + i);
        }
        assert_eq!(l.blocked(&keys, 1010), None);
        l.fail(&keys, 1010);
        let wait = l.blocked(&keys, 1010).unwrap();
        assert_eq!(wait, 900 - 10);
        assert!(l.blocked(&["ip:192.0.2.2".to_string()], 1010).is_none());
        assert_eq!(l.blocked(&keys, 1000 + 900 + 9), None);
        l.clear("email:a@b.c");
        assert!(l.blocked(&keys[1..], 1011).is_none());
        assert!(l.blocked(&keys[..1], 1011).is_some());
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ff_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        let v = set_cookie(&h, SESSION_COOKIE, "x", 60);
        assert_eq!(
            v.to_str().unwrap(),
            "ff_session=x; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(
            set_cookie(&h, SESSION_COOKIE, "x", 60)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }
}
