//! `POST /api/event` and `GET /api/event.gif`.
//!
//! Both find the client address, apply the ingest limits ([`super::limits`]), parse their wire
//! format ([`crate::ingest::body`]), run the pipeline and hand the rows to the spool. Answers:
//! 202 `ok` once the rows are on disk, or when deliberately dropped (the `x-footfall-dropped`
//! header names the reason); 400/413 with a JSON error for bad input; 429 with `Retry-After`
//! over the client's rate; 503 with `Retry-After` when too many requests are in flight or
//! neither the queue nor the spool has room. The pixel answers a 1×1 GIF instead of `ok`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, DROP_HEADER};
use crate::ingest::body::{EventInput, MAX_BODY_BYTES, parse_body, parse_query};
use crate::ingest::ip::client_ip;
use crate::ingest::pipeline::{Outcome, Request};
use crate::ingest::useragent::{ClientHints, MAX_HINT_BYTES};
use crate::writer::Refused;
use tokio::sync::OwnedSemaphorePermit;

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// The header in which the pixel names a refused request's mistake.
const ERROR_HEADER: &str = "x-footfall-error";

/// User-agents longer than this are not a browser's.
const MAX_USER_AGENT_BYTES: usize = 2048;
/// A `Referer` longer than this is not used as the pixel's page.
const MAX_REFERER_BYTES: usize = 2048;
/// Seconds a client is told to wait when the queue is full.
const RETRY_AFTER_SECS: u32 = 5;

pub async fn post_event(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.metrics.received.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let result = async {
        let ip = client_ip(peer.ip(), &headers, &state.proxies);
        let _permit = admit(&state, ip)?;
        let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(super::error::body_error)?;
        let input = parse_body(&bytes)?;
        ingest(&state, input, ip, &headers).await
    }
    .await;
    state.metrics.observe_request(started.elapsed());
    let response = result.inspect_err(|_| {
        state.metrics.rejected.fetch_add(1, Ordering::Relaxed);
    })?;
    let mut r = (StatusCode::ACCEPTED, "ok").into_response();
    if let Some(reason) = response {
        r.headers_mut()
            .insert(DROP_HEADER, HeaderValue::from_static(reason));
    }
    Ok(r)
}

/// Applies the ingest limits, counting refusals.
fn admit(state: &AppState, ip: IpAddr) -> Result<OwnedSemaphorePermit, ApiError> {
    state.limits.admit(ip).inspect_err(|e| {
        let counter = match e {
            ApiError::RateLimited { .. } => &state.metrics.rate_limited,
            _ => &state.metrics.overloaded,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    })
}

/// The pixel always answers a GIF, so an `<img>` never shows as broken: an error keeps its
/// status code and names itself in `x-footfall-error` instead of a JSON body.
pub async fn get_pixel(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    state.metrics.received.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let result = async {
        let ip = client_ip(peer.ip(), &headers, &state.proxies);
        let _permit = admit(&state, ip)?;
        let referer = headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .filter(|r| r.len() <= MAX_REFERER_BYTES);
        let input = parse_query(query.as_deref().unwrap_or(""), referer)?;
        ingest(&state, input, ip, &headers).await
    }
    .await;
    state.metrics.observe_request(started.elapsed());
    let gif = |status: StatusCode| {
        (
            status,
            [
                (header::CONTENT_TYPE, "image/gif"),
                (header::CACHE_CONTROL, "no-store, max-age=0"),
            ],
            PIXEL,
        )
            .into_response()
    };
    match result {
        Ok(dropped) => {
            let mut r = gif(StatusCode::OK);
            if let Some(reason) = dropped {
                r.headers_mut()
                    .insert(DROP_HEADER, HeaderValue::from_static(reason));
            }
            r
        }
        Err(error) => {
            state.metrics.rejected.fetch_add(1, Ordering::Relaxed);
            let mut r = gif(error.status());
            error.add_retry_after(&mut r);
            // Header values must be visible ASCII; anything else in the message becomes `?`.
            let message: String = error
                .to_string()
                .chars()
                .map(|c| {
                    if c == ' ' || c.is_ascii_graphic() {
                        c
                    } else {
                        '?'
                    }
                })
                .collect();
            if let Ok(v) = HeaderValue::from_str(&message) {
                r.headers_mut().insert(ERROR_HEADER, v);
            }
            r
        }
    }
}

/// Runs the pipeline and hands the rows to the spool; `Ok(Some(reason))` when dropped on
/// purpose. Answers only once the rows are on disk.
async fn ingest(
    state: &AppState,
    input: EventInput,
    client_ip: IpAddr,
    headers: &HeaderMap,
) -> Result<Option<&'static str>, ApiError> {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .filter(|ua| ua.len() <= MAX_USER_AGENT_BYTES)
        .unwrap_or("");
    let hint = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= MAX_HINT_BYTES)
            .unwrap_or("")
    };
    let request = Request {
        input,
        client_ip,
        user_agent,
        client_hints: ClientHints {
            brands: hint("sec-ch-ua"),
            mobile: hint("sec-ch-ua-mobile"),
            platform: hint("sec-ch-ua-platform"),
        },
        received_at: state.clock.now(),
    };
    let rows = match state.pipeline.process(&request)? {
        Outcome::Dropped(reason) => {
            state.metrics.dropped(reason);
            return Ok(Some(reason.as_str()));
        }
        Outcome::Accepted(rows) => rows,
    };
    let n = rows.len() as u64;
    state.metrics.queued.fetch_add(n, Ordering::Relaxed);
    let kept = state.writer.submit(rows).await;
    state.metrics.queued.fetch_sub(n, Ordering::Relaxed);
    kept.map_err(|refused| {
        if refused == Refused::QueueFull {
            state.metrics.queue_full.fetch_add(1, Ordering::Relaxed);
        }
        ApiError::Busy {
            retry_after_secs: RETRY_AFTER_SECS,
        }
    })?;
    state.metrics.accepted.fetch_add(n, Ordering::Relaxed);
    Ok(None)
}
