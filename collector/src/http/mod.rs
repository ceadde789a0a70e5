//! HTTP: the router, its state, and one module of routes per area.
//!
//! [`router`] builds the whole application from an [`AppState`] without a socket, so tests
//! drive it with `tower::ServiceExt::oneshot` and `MockConnectInfo`. `serve` in the CLI binds
//! it with `into_make_service_with_connect_info::<SocketAddr>()`.

mod error;
mod event;
mod health;
mod query;
mod script;

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, header};
use axum::routing::{get, post};
use ipnet::IpNet;
use tower_http::cors::{Any, CorsLayer};

pub use error::ApiError;

use crate::clock::SharedClock;
use crate::ingest::pipeline::Pipeline;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::writer::WriterHandle;

/// What the handlers need, and nothing more.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub writer: WriterHandle,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    pub trusted_proxies: Arc<[IpNet]>,
    /// Days of raw events kept: the query planner refuses questions beyond them.
    pub raw_retention_days: u32,
}

/// The header that names why an accepted request was not stored.
pub const DROP_HEADER: &str = "x-footfall-dropped";

/// The application's routes.
pub fn router(state: AppState) -> Router {
    // Events come from any site's pages: allow any origin, never credentials.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(86_400));
    let events = Router::new()
        .route("/api/event", post(event::post_event))
        .route("/api/event.gif", get(event::get_pixel))
        .layer(cors);
    Router::new()
        .merge(events)
        .route("/js/script.js", get(script::get_script))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v2/query", post(query::post_query))
        .route("/api/v2/realtime", get(query::get_realtime))
        .with_state(state)
}
