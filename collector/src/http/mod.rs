//! HTTP: the router, its state, and one module of routes per area.
//!
//! [`router`] builds the whole application from an [`AppState`] without a socket, so tests
//! drive it with `tower::ServiceExt::oneshot` and `MockConnectInfo`. `serve` in the CLI binds
//! it with `into_make_service_with_connect_info::<SocketAddr>()`.

pub mod admin;
pub mod auth;
mod dashboard;
mod email_links;
mod error;
mod event;
mod export;
mod goals;
mod health;
mod imports;
pub mod limits;
mod privacy;
pub mod query;
mod reports;
mod script;
mod script_variants;
pub mod server;
mod sites;
pub mod two_factor;
mod v1;

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, header};
use axum::routing::{delete, get, post, put};
use tower_http::cors::{Any, CorsLayer};

pub use dashboard::shipped_sizes;
pub use error::ApiError;
pub use script::etag_of;

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
    /// Trusted proxies and the header they name the client in.
    pub proxies: Arc<crate::ingest::ip::Proxies>,
    /// Days of raw events kept: the query planner refuses questions beyond them.
    pub raw_retention_days: u32,
    /// Rows a question may read before it is answered from a sample (`sampling_threshold`).
    pub sample_threshold: u64,
    /// Days of daily rollups kept (shown in site settings).
    pub aggregate_retention_days: u32,
    pub login_limiter: Arc<auth::LoginLimiter>,
    /// The server settings admins change (the two-factor requirement), briefly cached.
    pub server_settings: Arc<two_factor::SettingsCache>,
    /// The SMTP server, when one is configured.
    pub mailer: Option<Arc<crate::mail::Mailer>>,
    /// The dashboard's address for links in e-mails (`public_url`).
    pub public_url: Option<String>,
    pub limits: Arc<limits::IngestLimits>,
    /// The blake3 hash of the bearer token `/metrics` asks for (`metrics_token`); open when
    /// none is set.
    pub metrics_token: Option<blake3::Hash>,
    /// Deadlines and turns of the Stats API's questions.
    pub queries: Arc<query::QueryLimits>,
    /// What the privacy notice states about this configuration (its site left empty).
    pub notice: Arc<crate::privacy::Facts>,
    /// E-mailed reports and alerts.
    pub reports: Arc<crate::reports::Reports>,
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
        .route("/js/{file}", get(script_variants::get_variant))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v2/query", post(query::post_query))
        .route("/api/v2/funnel", post(query::post_funnel))
        .route("/api/v2/realtime", get(query::get_realtime))
        .route("/api/v2/export", get(export::get_export))
        .route("/api/v2/props", get(query::get_prop_keys))
        .route("/api/docs/query/schema.json", get(query::get_schema))
        .route("/api/v1/stats/realtime/visitors", get(v1::realtime))
        .route("/api/v1/stats/aggregate", get(v1::aggregate))
        .route("/api/v1/stats/timeseries", get(v1::timeseries))
        .route("/api/v1/stats/breakdown", get(v1::breakdown))
        .merge(dashboard_routes())
        // A body must arrive whole within its deadline, however it trickles (the request
        // head has its own, in the server).
        .layer(tower_http::timeout::RequestBodyDeadlineLayer::new(
            server::BODY_TIMEOUT,
        ))
        // An export archive is larger, and gets longer.
        .merge(
            Router::new()
                .route(
                    "/api/sites/{domain}/imports/plausible",
                    post(imports::upload_plausible),
                )
                .layer(tower_http::timeout::RequestBodyDeadlineLayer::new(
                    imports::UPLOAD_TIMEOUT,
                )),
        )
        .with_state(state)
}

/// The dashboard: its pages, files, accounts and management API.
fn dashboard_routes() -> Router<AppState> {
    use dashboard::{admin_js, app_css, app_js, private_page, public_page};
    Router::new()
        .route("/", get(private_page))
        .route("/sites/{*rest}", get(private_page))
        .route("/account", get(private_page))
        .route("/users", get(private_page))
        .route("/login", get(public_page))
        .route("/share/{token}", get(dashboard::share_page))
        .route("/invite/{token}", get(public_page))
        .route("/reset/{token}", get(public_page))
        .route("/assets/app.js", get(app_js))
        .route("/assets/admin.js", get(admin_js))
        .route("/assets/app.css", get(app_css))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/me", get(auth::me))
        .route("/api/auth/password", post(auth::change_password))
        .route("/api/auth/two-factor/setup", post(two_factor::setup))
        .route("/api/auth/two-factor/enable", post(two_factor::enable))
        .route("/api/auth/two-factor/disable", post(two_factor::disable))
        .route(
            "/api/auth/two-factor/recovery-codes",
            post(two_factor::new_recovery_codes),
        )
        .route("/api/auth/sessions", get(two_factor::sessions))
        .route("/api/auth/sessions/{id}", delete(two_factor::end_session))
        .route(
            "/api/server/settings",
            get(two_factor::get_server).put(two_factor::put_server),
        )
        .route("/api/server/mail-test", post(two_factor::mail_test))
        .route("/api/users/invite", post(email_links::invite))
        .route("/api/auth/accept-invite", post(email_links::accept_invite))
        .route("/api/auth/forgot", post(email_links::forgot))
        .route("/api/auth/reset", post(email_links::reset))
        .route("/api/share/unlock", post(auth::unlock_share))
        .route("/api/sites", get(admin::list_sites).post(admin::add_site))
        .route(
            "/api/sites/{domain}",
            put(admin::update_site).delete(sites::delete),
        )
        .route("/api/sites/{domain}/rules", put(sites::put_rules))
        .route(
            "/api/sites/{domain}/mail",
            get(reports::get_mail).put(reports::put_mail),
        )
        .route("/api/sites/{domain}/mail/send", post(reports::send_now))
        .route("/api/sites/{domain}/mail/retry/{id}", post(reports::retry))
        .route(
            "/unsubscribe",
            get(reports::unsubscribe_page).post(reports::unsubscribe),
        )
        .route("/api/sites/{domain}/reset", post(sites::reset))
        .route("/api/sites/{domain}/purge", post(sites::purge))
        .route("/api/sites/{domain}/settings", get(admin::site_settings))
        .route("/api/sites/{domain}/keys", post(admin::create_key))
        .route("/api/sites/{domain}/keys/{id}", delete(admin::revoke_key))
        .route("/api/sites/{domain}/shares", post(admin::create_share))
        .route(
            "/api/sites/{domain}/shares/{id}",
            delete(admin::revoke_share),
        )
        .route("/api/sites/{domain}/imports/{id}", delete(imports::delete))
        .route(
            "/api/sites/{domain}/goals",
            get(goals::get_goals).post(goals::add_goal),
        )
        .route("/api/sites/{domain}/goals/{id}", delete(goals::delete_goal))
        .route(
            "/api/sites/{domain}/privacy-notice",
            get(privacy::privacy_notice),
        )
        .route(
            "/api/sites/{domain}/subject",
            post(privacy::subject_request),
        )
        .route(
            "/api/sites/{domain}/export/plausible",
            get(imports::export_plausible),
        )
        .route("/api/users", get(admin::list_users).post(admin::add_user))
        .route(
            "/api/users/{email}",
            put(admin::update_user).delete(admin::delete_user),
        )
}

#[cfg(test)]
mod route_tests {
    use super::admin::{OPEN_WRITE_ROUTES, STATE_CHANGING_ROUTES};

    /// Every `(METHOD, path)` the router's source declares.
    fn declared_routes() -> Vec<(String, String)> {
        let source = include_str!("mod.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        let method = regex::Regex::new(r"\b(get|post|put|delete|patch)\(").unwrap();
        let mut out = Vec::new();
        for (at, _) in code.match_indices(".route(") {
            // The call runs to its matching parenthesis.
            let rest = &code[at + ".route(".len()..];
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let call = &rest[..end];
            let path = call.split('"').nth(1).expect("a route's path").to_string();
            for m in method.captures_iter(call) {
                out.push((m[1].to_ascii_uppercase(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn every_route_that_writes_is_in_one_list_and_every_listed_route_exists() {
        let routes = declared_routes();
        assert!(routes.len() > 30, "{routes:?}");
        for (method, path) in &routes {
            if method == "GET" {
                continue;
            }
            let checked = STATE_CHANGING_ROUTES
                .iter()
                .any(|(m, p)| m == method && p == path);
            let open = OPEN_WRITE_ROUTES
                .iter()
                .any(|(m, p, _)| m == method && p == path);
            assert!(
                checked ^ open,
                "{method} {path}: add it to STATE_CHANGING_ROUTES (the access tests try it) or, \
                 with a reason, to OPEN_WRITE_ROUTES"
            );
        }
        for (m, p) in STATE_CHANGING_ROUTES
            .iter()
            .copied()
            .chain(OPEN_WRITE_ROUTES.iter().map(|(m, p, _)| (*m, *p)))
        {
            assert!(
                routes.iter().any(|(rm, rp)| rm == m && rp == p),
                "{m} {p} is listed but not routed"
            );
        }
    }
}
