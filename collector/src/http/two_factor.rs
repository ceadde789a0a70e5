//! Two-factor login in the dashboard: setting it up with an authenticator app (TOTP, RFC
//! 6238), recovery codes shown once, turning it off, the server-wide requirement an admin
//! sets, and the list of a user's login sessions, any of which they can end. Every code
//! check is rate-limited like a password.

use std::sync::Mutex;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Principal, account_error, json_body, principal, principal_enrolling};
use super::{ApiError, AppState};
use crate::accounts::{self, ServerSettings, TwoFactor, User};

/// How long a collector trusts the server settings it read (others' changes show within it).
const SETTINGS_SECS: i64 = 5;

/// The server settings, read at most every [`SETTINGS_SECS`].
#[derive(Default)]
pub struct SettingsCache(Mutex<Option<(i64, ServerSettings)>>);

impl SettingsCache {
    fn get(&self, now: i64) -> Option<ServerSettings> {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.as_ref()
            .filter(|(at, _)| now - at < SETTINGS_SECS)
            .map(|(_, s)| s.clone())
    }

    fn set(&self, now: i64, s: ServerSettings) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, s));
    }
}

async fn settings(state: &AppState) -> Result<ServerSettings, ApiError> {
    let now = state.clock.now().timestamp();
    if let Some(s) = state.server_settings.get(now) {
        return Ok(s);
    }
    let s = accounts::server_settings(state.store.as_ref())
        .await
        .map_err(account_error)?;
    state.server_settings.set(now, s.clone());
    Ok(s)
}

/// Whether every user must log in with a second factor.
pub async fn required(state: &AppState) -> Result<bool, ApiError> {
    Ok(settings(state).await?.require_two_factor)
}

/// What `/api/auth/me` says of the user's two-factor login.
pub async fn status(state: &AppState, email: &str) -> Result<Value, ApiError> {
    let tf = accounts::two_factor(state.store.as_ref(), email)
        .await
        .map_err(account_error)?;
    Ok(json!({
        "enabled": tf.enabled(),
        "required": required(state).await?,
        "recovery_codes_left": tf.recovery.len(),
    }))
}

/// The logged-in user making a change (CSRF checked), even before they have set up a
/// second factor the server requires.
async fn me(state: &AppState, headers: &HeaderMap) -> Result<User, ApiError> {
    let who = principal_enrolling(state, headers).await?;
    Ok(who.editor(headers)?.clone())
}

/// The step a code from the app matches for `secret` (after `last_step`), checked under the
/// login rate limits of the user's account.
fn checked_step(
    state: &AppState,
    user: &User,
    secret: &str,
    code: &str,
    last_step: i64,
) -> Result<i64, ApiError> {
    let t = state.clock.now().timestamp();
    let account = format!("email:{}", user.email);
    if let Err(retry_after_secs) = state
        .login_limiter
        .attempt(std::slice::from_ref(&account), t)
    {
        return Err(ApiError::RateLimited { retry_after_secs });
    }
    let step = crate::totp::verify(secret, code, t, last_step).ok_or_else(|| {
        ApiError::BadRequest(
            "wrong code: enter the current code from your authenticator app".into(),
        )
    })?;
    state.login_limiter.take_back(&account, t);
    Ok(step)
}

/// `POST /api/auth/two-factor/setup`: a new secret to add to an authenticator app, as a QR
/// code, an `otpauth://` URI and the secret itself. It counts once confirmed with a code.
pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let user = me(&state, &headers).await?;
    let store = state.store.as_ref();
    let mut tf = accounts::two_factor(store, &user.email)
        .await
        .map_err(account_error)?;
    if tf.enabled() {
        return Err(ApiError::BadRequest(
            "two-factor login is on already: turn it off first to use another app".into(),
        ));
    }
    let secret = crate::totp::new_secret();
    tf.pending = Some(secret.clone());
    accounts::put_two_factor(store, &user.email, &tf)
        .await
        .map_err(account_error)?;
    let uri = crate::totp::uri(&secret, &user.email);
    Ok(Json(json!({
        "secret": secret,
        "uri": uri,
        "qr_svg": crate::totp::qr_svg(&uri),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    code: String,
}

/// `POST /api/auth/two-factor/enable` `{"code"}`: confirms the secret being set up with a
/// code from the app; answers the recovery codes, shown this once. The user's other sessions
/// end.
pub async fn enable(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let who = principal_enrolling(&state, &headers).await?;
    let user = who.editor(&headers)?.clone();
    let b: CodeBody = json_body(&headers, body).await?;
    let store = state.store.as_ref();
    let mut tf = accounts::two_factor(store, &user.email)
        .await
        .map_err(account_error)?;
    let Some(pending) = tf.pending.clone() else {
        return Err(ApiError::BadRequest(
            "start the set-up first: there is no secret to confirm".into(),
        ));
    };
    let step = checked_step(&state, &user, &pending, &b.code, 0)?;
    let codes = crate::totp::new_recovery_codes();
    tf = TwoFactor {
        secret: Some(pending),
        pending: None,
        recovery: crate::totp::recovery_hashes(&codes),
        last_step: step,
        enabled_at: state.clock.now().timestamp(),
    };
    accounts::put_two_factor(store, &user.email, &tf)
        .await
        .map_err(account_error)?;
    if let Principal::User { session_id, .. } = &who {
        accounts::end_sessions(
            store,
            |s| s.user.as_deref() == Some(user.email.as_str()),
            Some(session_id),
        )
        .await
        .map_err(account_error)?;
    }
    tracing::info!(user = %user.email, "two-factor login turned on");
    Ok(Json(json!({ "recovery_codes": codes })))
}

/// `POST /api/auth/two-factor/recovery-codes` `{"code"}`: new recovery codes (the old ones
/// stop working), for a current code from the app.
pub async fn new_recovery_codes(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let user = me(&state, &headers).await?;
    let b: CodeBody = json_body(&headers, body).await?;
    let store = state.store.as_ref();
    let mut tf = accounts::two_factor(store, &user.email)
        .await
        .map_err(account_error)?;
    let Some(secret) = tf.secret.clone() else {
        return Err(ApiError::BadRequest("two-factor login is off".into()));
    };
    tf.last_step = checked_step(&state, &user, &secret, &b.code, tf.last_step)?;
    let codes = crate::totp::new_recovery_codes();
    tf.recovery = crate::totp::recovery_hashes(&codes);
    accounts::put_two_factor(store, &user.email, &tf)
        .await
        .map_err(account_error)?;
    tracing::info!(user = %user.email, "two-factor recovery codes made again");
    Ok(Json(json!({ "recovery_codes": codes })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    password: String,
}

/// `POST /api/auth/two-factor/disable` `{"password"}`: turns two-factor login off (not
/// while the server requires it).
pub async fn disable(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<StatusCode, ApiError> {
    let user = me(&state, &headers).await?;
    let b: PasswordBody = json_body(&headers, body).await?;
    if required(&state).await? {
        return Err(ApiError::Forbidden(
            "this server requires two-factor login; it cannot be turned off".into(),
        ));
    }
    let t = state.clock.now().timestamp();
    let account = format!("email:{}", user.email);
    if let Err(retry_after_secs) = state
        .login_limiter
        .attempt(std::slice::from_ref(&account), t)
    {
        return Err(ApiError::RateLimited { retry_after_secs });
    }
    if !state
        .login_limiter
        .verify(b.password, Some(user.password_hash.clone()))
        .await?
    {
        return Err(ApiError::BadRequest("wrong password".into()));
    }
    state.login_limiter.take_back(&account, t);
    accounts::put_two_factor(state.store.as_ref(), &user.email, &TwoFactor::default())
        .await
        .map_err(account_error)?;
    tracing::info!(user = %user.email, "two-factor login turned off");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/auth/sessions`: the user's login sessions (the id shown is the first 8 hex
/// digits of the stored hash of the session's token).
pub async fn sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let who = principal_enrolling(&state, &headers).await?;
    let Principal::User {
        user, session_id, ..
    } = &who
    else {
        return Err(ApiError::Forbidden("log in to see your sessions".into()));
    };
    let now = state.clock.now().timestamp();
    let list: Vec<Value> = accounts::sessions_of(state.store.as_ref(), &user.email, now)
        .await
        .map_err(account_error)?
        .into_iter()
        .map(|(id, s)| {
            json!({
                "id": &id[..8.min(id.len())],
                "created_at": s.created_at,
                "expires_at": s.expires_at,
                "current": &id == session_id,
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": list })))
}

/// `DELETE /api/auth/sessions/{id}`: ends one of the user's own sessions.
pub async fn end_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let user = me(&state, &headers).await?;
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest("a session id is 8 hex digits".into()));
    }
    let now = state.clock.now().timestamp();
    let Some((full, _)) = accounts::sessions_of(state.store.as_ref(), &user.email, now)
        .await
        .map_err(account_error)?
        .into_iter()
        .find(|(full, _)| full.starts_with(&id))
    else {
        return Err(ApiError::NotFound(format!("no session {id} of yours")));
    };
    accounts::end_session(state.store.as_ref(), &full)
        .await
        .map_err(account_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/server/settings` (admins), with where e-mail goes.
pub async fn get_server(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    principal(&state, &headers).await?.admin_reader()?;
    let mut out = json!(settings(&state).await?);
    out["mail"] = match &state.mailer {
        None => json!({"configured": false}),
        Some(m) => json!({"configured": true, "server": m.describe}),
    };
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailTestBody {
    to: String,
}

/// `POST /api/server/mail-test` `{"to"}` (admins): sends a test message and answers what the
/// SMTP server said.
pub async fn mail_test(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.clone();
    let b: MailTestBody = json_body(&headers, body).await?;
    let Some(mailer) = &state.mailer else {
        return Err(ApiError::Unprocessable(
            "no SMTP server is configured: set smtp_url and smtp_from".into(),
        ));
    };
    let answer = mailer
        .send_test(&b.to)
        .await
        .map_err(ApiError::Unprocessable)?;
    tracing::info!(by = %admin.email, "test e-mail sent");
    Ok(Json(json!({ "answer": answer, "server": mailer.describe })))
}

/// `PUT /api/server/settings` `{"require_two_factor": true}` (admins). An admin turning the
/// requirement on must have a second factor already.
pub async fn put_server(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.clone();
    let wanted: ServerSettings = json_body(&headers, body).await?;
    if wanted.require_two_factor
        && !accounts::two_factor(state.store.as_ref(), &admin.email)
            .await
            .map_err(account_error)?
            .enabled()
    {
        return Err(ApiError::BadRequest(
            "set up two-factor login for your own account before requiring it of everyone".into(),
        ));
    }
    accounts::put_server_settings(state.store.as_ref(), &wanted)
        .await
        .map_err(account_error)?;
    state
        .server_settings
        .set(state.clock.now().timestamp(), wanted.clone());
    tracing::info!(by = %admin.email, require_two_factor = wanted.require_two_factor, "server settings changed");
    Ok(Json(json!(wanted)))
}
