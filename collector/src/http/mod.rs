//! HTTP: the router, its state, and one module of routes per area.
//!
//! [`router`] builds the whole application from an [`AppState`] without a socket, so tests
//! drive it with `tower::ServiceExt::oneshot` and `MockConnectInfo`. `serve` in the CLI binds
//! it with `into_make_service_with_connect_info::<SocketAddr>()`.

pub mod admin;
mod annotations;
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
pub mod routes;
mod script;
mod script_variants;
pub mod server;
mod sites;
mod sites_api;
pub mod two_factor;
mod v1;

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, header};
use tower_http::cors::{Any, CorsLayer};

pub use dashboard::shipped_sizes;
pub use error::ApiError;
pub use routes::Routes;
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
    routes().into_router().with_state(state)
}

/// Every route, declared with who may call it and what it does (see [`routes::Routes`]).
pub fn routes() -> Routes {
    use routes::Access::{Admin, MetricsToken, Open, Reader, SitesKey};
    // Events come from any site's pages: allow any origin, never credentials.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(86_400));
    let events = Routes::new("Events")
        .post(
            "/api/event",
            Open("ingest, from any site's pages"),
            "Record a pageview or an event (Plausible's Events API body)",
            event::post_event,
        )
        .get(
            "/api/event.gif",
            Open("ingest, from any site's pages"),
            "Record a pageview from an image request (the no-script pixel)",
            event::get_pixel,
        )
        .wrap(|r| r.layer(cors));
    let main = Routes::new("Tracker")
        .get(
            "/js/script.js",
            Open("the tracking script"),
            "The tracking script",
            script::get_script,
        )
        .get(
            "/js/{file}",
            Open("the tracking script"),
            "The tracking script under Plausible's names (script.hash.outbound-links.js, pa-<id>.js, …)",
            script_variants::get_variant,
        )
        .tag("Operations")
        .get("/healthz", Open("a liveness probe"), "Liveness", health::healthz)
        .get(
            "/readyz",
            Open("a readiness probe"),
            "Readiness: the store answers",
            health::readyz,
        )
        .get(
            "/metrics",
            MetricsToken,
            "Prometheus metrics",
            health::metrics,
        )
        .tag("Stats API v2")
        .post(
            "/api/v2/query",
            Reader,
            "Ask a question of a site's stats (Plausible's Stats API v2)",
            query::post_query,
        )
        .post(
            "/api/v2/funnel",
            Reader,
            "A funnel's steps and conversions",
            query::post_funnel,
        )
        .get(
            "/api/v2/realtime",
            Reader,
            "Visitors in the last minutes",
            query::get_realtime,
        )
        .get(
            "/api/v2/export",
            Reader,
            "A site's stats as a zip of CSV files, as Plausible exports them",
            export::get_export,
        )
        .get(
            "/api/v2/props",
            Reader,
            "The custom property names an event carried",
            query::get_prop_keys,
        )
        .tag("Documentation")
        .get(
            "/api/docs/query/schema.json",
            Open("documentation"),
            "The JSON Schema of a Stats API v2 query",
            query::get_schema,
        )
        .get(
            "/api/docs/openapi.json",
            Open("documentation"),
            "This document",
            get_openapi,
        )
        .tag("Sites API")
        .get(
            "/api/v1/sites",
            SitesKey("sites:read"),
            "Sites, newest first, paged (Plausible's Sites API)",
            sites_api::list_sites,
        )
        .post(
            "/api/v1/sites",
            SitesKey("sites:provision"),
            "Add a site",
            sites_api::create_site,
        )
        .get(
            "/api/v1/sites/teams",
            SitesKey("sites:read"),
            "The one team: this server",
            sites_api::list_teams,
        )
        .put(
            "/api/v1/sites/shared-links",
            SitesKey("sites:provision"),
            "The shared link of a name, made when there is none",
            sites_api::shared_link,
        )
        .get(
            "/api/v1/sites/goals",
            SitesKey("sites:read"),
            "A site's goals, newest first, paged",
            sites_api::list_goals,
        )
        .put(
            "/api/v1/sites/goals",
            SitesKey("sites:provision"),
            "The goal counting an event or a page, made when there is none",
            sites_api::put_goal,
        )
        .delete(
            "/api/v1/sites/goals/{goal_id}",
            SitesKey("sites:provision"),
            "Delete a goal",
            sites_api::delete_goal,
        )
        .get(
            "/api/v1/sites/custom-props",
            SitesKey("sites:read"),
            "A site's custom properties, alphabetical",
            sites_api::list_props,
        )
        .put(
            "/api/v1/sites/custom-props",
            SitesKey("sites:provision"),
            "Declare a custom property",
            sites_api::put_prop,
        )
        .delete(
            "/api/v1/sites/custom-props/{*property}",
            SitesKey("sites:provision"),
            "Remove a custom property",
            sites_api::delete_prop,
        )
        .get(
            "/api/v1/sites/guests",
            SitesKey("sites:read"),
            "A site's viewers and invitations, paged",
            sites_api::list_guests,
        )
        .put(
            "/api/v1/sites/guests",
            SitesKey("sites:provision"),
            "Give a viewer the site, or invite an address by e-mail",
            sites_api::put_guest,
        )
        .delete(
            "/api/v1/sites/guests/{email}",
            SitesKey("sites:provision"),
            "Take the site from a viewer or an invitation",
            sites_api::delete_guest,
        )
        .get(
            "/api/v1/sites/{site_id}",
            SitesKey("sites:read"),
            "A site, with its custom properties",
            sites_api::get_site,
        )
        .put(
            "/api/v1/sites/{site_id}",
            SitesKey("sites:provision"),
            "Change a site's domain",
            sites_api::update_site,
        )
        .delete(
            "/api/v1/sites/{site_id}",
            SitesKey("sites:provision"),
            "Delete a site and all its data",
            sites_api::delete_site,
        )
        .tag("Stats API v1")
        .get(
            "/api/v1/stats/realtime/visitors",
            Reader,
            "Current visitors (Plausible's Stats API v1)",
            v1::realtime,
        )
        .get(
            "/api/v1/stats/aggregate",
            Reader,
            "Totals over a period (Stats API v1)",
            v1::aggregate,
        )
        .get(
            "/api/v1/stats/timeseries",
            Reader,
            "Totals per interval (Stats API v1)",
            v1::timeseries,
        )
        .get(
            "/api/v1/stats/breakdown",
            Reader,
            "Totals per value of a property (Stats API v1)",
            v1::breakdown,
        )
        .merge(dashboard_routes());
    // An export archive is larger, and gets longer.
    let upload = Routes::new("Imports")
        .post(
            "/api/sites/{domain}/imports/plausible",
            Admin,
            "Import a Plausible export (a zip of CSV files)",
            imports::upload_plausible,
        )
        .wrap(|r| {
            r.layer(tower_http::timeout::RequestBodyDeadlineLayer::new(
                imports::UPLOAD_TIMEOUT,
            ))
        });
    events
        .merge(main)
        // A body must arrive whole within its deadline, however it trickles (the request
        // head has its own, in the server); events included.
        .wrap(|r| {
            r.layer(tower_http::timeout::RequestBodyDeadlineLayer::new(
                server::BODY_TIMEOUT,
            ))
        })
        .merge(upload)
}

/// `GET /api/docs/openapi.json`: written once from [`routes`].
async fn get_openapi() -> axum::Json<serde_json::Value> {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    axum::Json(DOC.get_or_init(|| routes::openapi(routes().docs())).clone())
}

/// The dashboard: its pages, files, accounts and management API.
fn dashboard_routes() -> Routes {
    use dashboard::{admin_js, app_css, app_js, private_page, public_page};
    use routes::Access::{Admin, Open, Reader, Session};
    const PAGE: routes::Access = Open("an HTML page; what it shows needs a session");
    const FILE: routes::Access = Open("the dashboard's code");
    Routes::new("Dashboard pages")
        .get("/", PAGE, "The dashboard", private_page)
        .get("/sites/{*rest}", PAGE, "A site's dashboard", private_page)
        .get("/account", PAGE, "The account page", private_page)
        .get("/users", PAGE, "The users page", private_page)
        .get("/login", PAGE, "The login page", public_page)
        .get(
            "/share/{token}",
            Open("a shared link: the token is the secret"),
            "A shared link's dashboard",
            dashboard::share_page,
        )
        .get("/invite/{token}", PAGE, "Accept an invitation", public_page)
        .get("/reset/{token}", PAGE, "Choose a new password", public_page)
        .get("/assets/app.js", FILE, "The dashboard's script", app_js)
        .get("/assets/admin.js", FILE, "The admin pages' script", admin_js)
        .get("/assets/app.css", FILE, "The dashboard's styles", app_css)
        .tag("Accounts")
        .post(
            "/api/auth/login",
            Open("starts a session; rate-limited"),
            "Log in (then the second factor, when it is on)",
            auth::login,
        )
        .post("/api/auth/logout", Session, "End this session", auth::logout)
        .get("/api/auth/me", Session, "Who is logged in", auth::me)
        .post(
            "/api/auth/password",
            Session,
            "Change one's password",
            auth::change_password,
        )
        .post(
            "/api/auth/two-factor/setup",
            Session,
            "Start setting up two-factor login (TOTP)",
            two_factor::setup,
        )
        .post(
            "/api/auth/two-factor/enable",
            Session,
            "Turn two-factor login on with a first code",
            two_factor::enable,
        )
        .post(
            "/api/auth/two-factor/disable",
            Session,
            "Turn two-factor login off",
            two_factor::disable,
        )
        .post(
            "/api/auth/two-factor/recovery-codes",
            Session,
            "New recovery codes, shown once",
            two_factor::new_recovery_codes,
        )
        .get(
            "/api/auth/sessions",
            Session,
            "This account's sessions",
            two_factor::sessions,
        )
        .delete(
            "/api/auth/sessions/{id}",
            Session,
            "End one of this account's sessions",
            two_factor::end_session,
        )
        .get(
            "/api/server/settings",
            Admin,
            "The server's settings admins change",
            two_factor::get_server,
        )
        .put(
            "/api/server/settings",
            Admin,
            "Change the server's settings (two-factor for everyone)",
            two_factor::put_server,
        )
        .get(
            "/api/server/keys",
            Admin,
            "Sites API keys (never the keys themselves)",
            sites_api::list_keys,
        )
        .post(
            "/api/server/keys",
            Admin,
            "Make a Sites API key with a scope (shown once)",
            sites_api::create_key,
        )
        .delete(
            "/api/server/keys/{id}",
            Admin,
            "Revoke a Sites API key",
            sites_api::revoke_key,
        )
        .post(
            "/api/server/mail-test",
            Admin,
            "Send a test message; answers the SMTP server's reply",
            two_factor::mail_test,
        )
        .post(
            "/api/users/invite",
            Admin,
            "Invite someone by e-mail, with a role",
            email_links::invite,
        )
        .post(
            "/api/auth/accept-invite",
            Open("an e-mailed invitation's single-use token; starts a session"),
            "Accept an invitation",
            email_links::accept_invite,
        )
        .post(
            "/api/auth/forgot",
            Open("asks for a reset link; rate-limited, answers alike for every address"),
            "Ask for a password reset link",
            email_links::forgot,
        )
        .post(
            "/api/auth/reset",
            Open("an e-mailed reset link's single-use token"),
            "Set a new password with a reset link",
            email_links::reset,
        )
        .post(
            "/api/share/unlock",
            Open("a shared link's password; rate-limited"),
            "Open a password-protected shared link",
            auth::unlock_share,
        )
        .get(
            "/api/users",
            Admin,
            "Users and their roles",
            admin::list_users,
        )
        .post("/api/users", Admin, "Add a user", admin::add_user)
        .put(
            "/api/users/{email}",
            Admin,
            "Change a user's role or password",
            admin::update_user,
        )
        .delete(
            "/api/users/{email}",
            Admin,
            "Remove a user",
            admin::delete_user,
        )
        .tag("Sites")
        .get(
            "/api/sites",
            Session,
            "The sites this user (or shared link) may read",
            admin::list_sites,
        )
        .post("/api/sites", Admin, "Add a site", admin::add_site)
        .put(
            "/api/sites/{domain}",
            Admin,
            "Change a site's domain or time zone",
            admin::update_site,
        )
        .delete(
            "/api/sites/{domain}",
            Admin,
            "Delete a site and all its data",
            sites::delete,
        )
        .put(
            "/api/sites/{domain}/rules",
            Admin,
            "A site's exclusions and retention",
            sites::put_rules,
        )
        .post(
            "/api/sites/{domain}/reset",
            Admin,
            "Delete a site's data, keeping the site",
            sites::reset,
        )
        .post(
            "/api/sites/{domain}/purge",
            Admin,
            "Delete a site's data by page and date",
            sites::purge,
        )
        .get(
            "/api/sites/{domain}/settings",
            Admin,
            "A site's settings, keys, shared links and imports",
            admin::site_settings,
        )
        .post(
            "/api/sites/{domain}/keys",
            Admin,
            "Make a Stats API key (shown once)",
            admin::create_key,
        )
        .delete(
            "/api/sites/{domain}/keys/{id}",
            Admin,
            "Revoke a Stats API key",
            admin::revoke_key,
        )
        .post(
            "/api/sites/{domain}/shares",
            Admin,
            "Make a shared link",
            admin::create_share,
        )
        .delete(
            "/api/sites/{domain}/shares/{id}",
            Admin,
            "Revoke a shared link",
            admin::revoke_share,
        )
        .delete(
            "/api/sites/{domain}/imports/{id}",
            Admin,
            "Delete an import",
            imports::delete,
        )
        .get(
            "/api/sites/{domain}/goals",
            Reader,
            "A site's goals",
            goals::get_goals,
        )
        .post(
            "/api/sites/{domain}/goals",
            Admin,
            "Add a goal",
            goals::add_goal,
        )
        .delete(
            "/api/sites/{domain}/goals/{id}",
            Admin,
            "Delete a goal",
            goals::delete_goal,
        )
        .get(
            "/api/sites/{domain}/privacy-notice",
            Reader,
            "The privacy notice this site's configuration allows",
            privacy::privacy_notice,
        )
        .post(
            "/api/sites/{domain}/subject",
            Admin,
            "A data subject's request: find or erase one visitor's events",
            privacy::subject_request,
        )
        .get(
            "/api/sites/{domain}/export/plausible",
            Admin,
            "Export a site's stats as Plausible's CSV files",
            imports::export_plausible,
        )
        .tag("Annotations")
        .get(
            "/api/sites/{domain}/annotations",
            Reader,
            "The chart's dated notes (site-wide, and one's own personal ones)",
            annotations::list,
        )
        .post(
            "/api/sites/{domain}/annotations",
            Admin,
            "Add a dated note, site-wide or personal",
            annotations::add,
        )
        .delete(
            "/api/sites/{domain}/annotations/{id}",
            Admin,
            "Delete a note",
            annotations::delete,
        )
        .tag("Reports")
        .get(
            "/api/sites/{domain}/mail",
            Admin,
            "A site's report and alert settings, and its outbox",
            reports::get_mail,
        )
        .put(
            "/api/sites/{domain}/mail",
            Admin,
            "Change a site's report and alert settings",
            reports::put_mail,
        )
        .post(
            "/api/sites/{domain}/mail/send",
            Admin,
            "Send last week's or month's report now",
            reports::send_now,
        )
        .post(
            "/api/sites/{domain}/mail/retry/{id}",
            Admin,
            "Try a failed message again now",
            reports::retry,
        )
        .get(
            "/unsubscribe",
            Open("a report's signed link; the page only asks to confirm"),
            "Confirm unsubscribing from a report",
            reports::unsubscribe_page,
        )
        .post(
            "/unsubscribe",
            Open(
                "a report's signed one-click unsubscribe link (RFC 8058); only takes its address off its list",
            ),
            "Unsubscribe (one click)",
            reports::unsubscribe,
        )
}

#[cfg(test)]
mod route_tests {
    use super::admin::STATE_CHANGING_ROUTES;
    use super::routes::Access;

    #[test]
    fn every_route_that_writes_is_checked_by_the_access_tests_or_open_with_a_reason() {
        let routes = super::routes();
        let docs = routes.docs();
        assert!(docs.len() > 60, "{docs:?}");
        for doc in docs.iter().filter(|d| d.writes()) {
            let listed = STATE_CHANGING_ROUTES
                .iter()
                .any(|(m, p)| *m == doc.method.as_str() && *p == doc.path);
            match doc.access {
                Access::Admin | Access::Session => assert!(
                    listed,
                    "{} {}: add it to STATE_CHANGING_ROUTES (the access tests try it)",
                    doc.method, doc.path
                ),
                Access::Open(why) => {
                    assert!(!listed && why.len() > 10, "{doc:?}")
                }
                // Reads with a body; the Sites API has its own scope tests.
                Access::Reader | Access::SitesKey(_) | Access::MetricsToken => {
                    assert!(!listed, "{doc:?}")
                }
            }
        }
        for (m, p) in STATE_CHANGING_ROUTES {
            assert!(
                docs.iter().any(|d| d.method.as_str() == *m && d.path == *p),
                "{m} {p} is listed but not routed"
            );
        }
    }

    #[test]
    fn each_method_and_path_is_declared_once() {
        let routes = super::routes();
        let mut seen = std::collections::HashSet::new();
        for d in routes.docs() {
            assert!(seen.insert((d.method.clone(), d.path)), "{d:?}");
        }
    }
}
