//! Links sent by e-mail: an admin's invitation (the invited person chooses a password and is
//! in) and a forgotten password's reset. Each link carries a random 256-bit token of which
//! the store keeps only the hash; it works once, for an hour ([`accounts::EMAIL_LINK_SECS`]),
//! and points at `public_url`, never at the `Host` a request claimed.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{account_error, blocking, json_body, principal};
use super::{ApiError, AppState};
use crate::accounts::{self, EmailToken, Role, User};

/// The mailer and the public address, or why links cannot be sent.
fn mail_setup(state: &AppState) -> Result<(Arc<crate::mail::Mailer>, String), ApiError> {
    let mailer = state.mailer.clone().ok_or_else(|| {
        ApiError::Unprocessable("no SMTP server is configured: set smtp_url and smtp_from".into())
    })?;
    let public = state.public_url.clone().ok_or_else(|| {
        ApiError::Unprocessable(
            "set public_url (the dashboard's address) so that links in e-mails point to it".into(),
        )
    })?;
    Ok((mailer, public))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    email: String,
    role: Role,
    #[serde(default)]
    sites: Vec<String>,
}

/// `POST /api/users/invite` (admins): e-mails a link with which the person sets a password
/// and becomes a user with the role and sites given.
pub async fn invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    let b: InviteBody = json_body(&headers, body).await?;
    let email = super::admin::new_user_email(&state, &b.email).await?;
    let sites = super::admin::site_ids(&state, &b.sites).await?;
    let answer = send_invitation(&state, &admin, &email, b.role, sites).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"sent_to": email, "answer": answer})),
    ))
}

/// Mails `email` (checked, not yet a user) an invitation from `by` to `role` on `sites`;
/// returns the SMTP server's answer.
pub(super) async fn send_invitation(
    state: &AppState,
    by: &str,
    email: &str,
    role: accounts::Role,
    sites: Vec<u32>,
) -> Result<String, ApiError> {
    let store = state.store.as_ref();
    let (mailer, public) = mail_setup(state)?;
    let now = state.clock.now().timestamp();
    let token = accounts::issue_email_token(
        store,
        &EmailToken {
            purpose: "invite".into(),
            email: email.to_string(),
            role: Some(role),
            sites,
            expires_at: now + accounts::EMAIL_LINK_SECS,
        },
    )
    .await
    .map_err(account_error)?;
    let link = format!("{public}/invite/{token}");
    let text = format!(
        "{by} invites you to read web statistics in Footfall at {public}.\n\n\
         Choose your password here (the link works once, for an hour):\n{link}\n\n\
         If you did not expect this, ignore this message.\n"
    );
    let answer = mailer
        .send(email, "Your invitation to Footfall", &text, None)
        .await
        .map_err(ApiError::Unprocessable)?;
    tracing::info!(by = %by, "invitation sent");
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenPassword {
    token: String,
    password: String,
}

/// `POST /api/auth/accept-invite` `{"token", "password"}`: makes the invited user and logs
/// them in.
pub async fn accept_invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let b: TokenPassword = json_body(&headers, body).await?;
    accounts::validate_password(&b.password).map_err(account_error)?;
    let store = state.store.as_ref();
    let now = state.clock.now().timestamp();
    let Some(token) = accounts::take_email_token(store, b.token.trim(), "invite", now)
        .await
        .map_err(account_error)?
    else {
        return Err(ApiError::BadRequest(
            "this invitation link has expired or was used already: ask for a new one".into(),
        ));
    };
    if accounts::user(store, &token.email)
        .await
        .map_err(account_error)?
        .is_some()
    {
        return Err(ApiError::BadRequest(format!(
            "user {} exists already: log in",
            token.email
        )));
    }
    let password = b.password;
    let password_hash = blocking(move || accounts::hash_password(&password))
        .await?
        .map_err(account_error)?;
    let user = User {
        email: token.email.clone(),
        password_hash,
        role: token.role.unwrap_or(Role::Viewer),
        sites: token.sites,
        created_at: now,
    };
    accounts::put_user(store, &user)
        .await
        .map_err(account_error)?;
    tracing::info!(user = %user.email, "invitation accepted");
    super::auth::logged_in(&state, &headers, &user).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgotBody {
    email: String,
}

/// `POST /api/auth/forgot` `{"email"}`: e-mails a reset link when the address is a user's.
/// The answer is the same either way, sent before the e-mail, so it tells nobody whether an
/// account exists; rate-limited like logins.
pub async fn forgot(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let b: ForgotBody = json_body(&headers, body).await?;
    let (mailer, public) = mail_setup(&state)?;
    let ip = crate::ingest::ip::client_ip(peer.ip(), &headers, &state.proxies);
    let email = b.email.trim().to_lowercase();
    let t = state.clock.now().timestamp();
    let keys = [super::auth::address_key(ip), format!("reset:{email}")];
    if let Err(retry_after_secs) = state.login_limiter.attempt(&keys, t) {
        return Err(ApiError::RateLimited { retry_after_secs });
    }
    let answer = (
        StatusCode::ACCEPTED,
        Json(
            json!({"text": "If this address is a user's, a link to choose a new password is on its way. It works once, for an hour."}),
        ),
    );
    let Ok(email) = accounts::validate_email(&email) else {
        return Ok(answer);
    };
    let store = state.store.clone();
    tokio::spawn(async move {
        let user = match accounts::user(store.as_ref(), &email).await {
            Ok(Some(u)) => u,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%error, "password reset: the store failed");
                return;
            }
        };
        let token = match accounts::issue_email_token(
            store.as_ref(),
            &EmailToken {
                purpose: "reset".into(),
                email: user.email.clone(),
                role: None,
                sites: Vec::new(),
                expires_at: t + accounts::EMAIL_LINK_SECS,
            },
        )
        .await
        {
            Ok(token) => token,
            Err(error) => {
                tracing::error!(%error, "password reset: the store failed");
                return;
            }
        };
        let text = format!(
            "Someone, probably you, asked to choose a new password for {} in Footfall at {public}.\n\n\
             Choose it here (the link works once, for an hour):\n{public}/reset/{token}\n\n\
             If it was not you, ignore this message: your password stays as it is.\n",
            user.email
        );
        match mailer
            .send(&user.email, "Choose a new Footfall password", &text, None)
            .await
        {
            Ok(_) => tracing::info!("password reset link sent"),
            Err(error) => tracing::error!(%error, "password reset link not sent"),
        }
    });
    Ok(answer)
}

/// `POST /api/auth/reset` `{"token", "password"}`: sets the new password and ends every
/// session of the user (a second factor is still asked at the next login).
pub async fn reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<StatusCode, ApiError> {
    let b: TokenPassword = json_body(&headers, body).await?;
    accounts::validate_password(&b.password).map_err(account_error)?;
    let store = state.store.as_ref();
    let now = state.clock.now().timestamp();
    let Some(token) = accounts::take_email_token(store, b.token.trim(), "reset", now)
        .await
        .map_err(account_error)?
    else {
        return Err(ApiError::BadRequest(
            "this link has expired or was used already: ask for a new one".into(),
        ));
    };
    let Some(mut user) = accounts::user(store, &token.email)
        .await
        .map_err(account_error)?
    else {
        return Err(ApiError::BadRequest("this user no longer exists".into()));
    };
    let password = b.password;
    user.password_hash = blocking(move || accounts::hash_password(&password))
        .await?
        .map_err(account_error)?;
    accounts::put_user(store, &user)
        .await
        .map_err(account_error)?;
    accounts::end_sessions(
        store,
        |s| s.user.as_deref() == Some(user.email.as_str()),
        None,
    )
    .await
    .map_err(account_error)?;
    tracing::info!(user = %user.email, "password reset by e-mail");
    Ok(StatusCode::NO_CONTENT)
}
