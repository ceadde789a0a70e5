//! The one error type of the HTTP layer: every client-caused failure becomes a status code
//! and a JSON body `{"error": "..."}` that names the mistake; internal detail stays in logs.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ingest::body::BodyError;
use crate::ingest::pipeline::RejectReason;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is too large")]
    TooLarge,
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("the collector cannot take more events right now; retry later")]
    Busy { retry_after_secs: u32 },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// The password was right and the user logs in with a second factor: ask for the code.
    #[error("enter the code from your authenticator app (or a recovery code)")]
    TwoFactorRequired,
    #[error("too many attempts; retry in {retry_after_secs} seconds")]
    RateLimited { retry_after_secs: u32 },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("the store is unavailable; retry later")]
    Unavailable,
    /// A question ran past `query_timeout_secs` (the message names the setting).
    #[error("{0}")]
    QueryTimeout(String),
}

/// Why a request body could not be read: too large, too slow (past the body deadline), or
/// cut off by the client.
pub fn body_error(e: axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return ApiError::TooLarge;
        }
        if err.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::BodyTimeout;
        }
        source = err.source();
    }
    ApiError::BadRequest(format!("the request body could not be read: {e}"))
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => ApiError::TooLarge,
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

impl From<RejectReason> for ApiError {
    fn from(e: RejectReason) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Busy { .. } | ApiError::Unavailable | ApiError::QueryTimeout(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Unauthorized(_) | ApiError::TwoFactorRequired => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// Adds `Retry-After` to a response for this error when it has one.
    pub fn add_retry_after(&self, response: &mut Response) {
        if let ApiError::Busy { retry_after_secs } | ApiError::RateLimited { retry_after_secs } =
            self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self {
            // The login form then asks for the code.
            ApiError::TwoFactorRequired => {
                json!({ "error": self.to_string(), "two_factor": true })
            }
            _ => json!({ "error": self.to_string() }),
        };
        let mut response = (self.status(), Json(body)).into_response();
        self.add_retry_after(&mut response);
        response
    }
}
