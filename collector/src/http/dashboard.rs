//! The dashboard's pages and files, embedded in the binary (`dashboard/`, minified by
//! `build.rs`).
//!
//! Every page is the same HTML shell; `app.js` draws the page the path names. `/login` and
//! `/share/{token}` are open to anyone; every other page redirects to `/login?next=…` without
//! a valid login. The shell is sent with a strict Content-Security-Policy (nothing but this
//! origin), `Referrer-Policy: no-referrer` (a shared link's token never leaks in a
//! `Referer`), no framing, and `no-store`.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::AppState;
use super::script::{StaticFile, etag_of, serve};

const APP_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/app.min.js"));
const APP_JS_GZIP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/app.min.js.gz"));
const ADMIN_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/admin.min.js"));
const ADMIN_JS_GZIP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/admin.min.js.gz"));
const APP_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/app.css"));
const APP_CSS_GZIP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/app.css.gz"));
const INDEX_HTML: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/index.html"));
const INDEX_HTML_GZIP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/index.html.gz"));

static APP_JS_ETAG: LazyLock<String> = LazyLock::new(|| etag_of(APP_JS));
static ADMIN_JS_ETAG: LazyLock<String> = LazyLock::new(|| etag_of(ADMIN_JS));
static APP_CSS_ETAG: LazyLock<String> = LazyLock::new(|| etag_of(APP_CSS));

/// The dashboard's shipped bytes, gzipped: (HTML, JS, CSS).
pub fn shipped_sizes() -> (usize, usize, usize) {
    (INDEX_HTML_GZIP.len(), APP_JS_GZIP.len(), APP_CSS_GZIP.len())
}

/// What a `next` parameter escapes: all but the unreserved characters of RFC 3986.
const NEXT_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Revalidated on every load, so an upgrade shows at once; a 304 costs a round trip only.
const ASSET_CACHE: &str = "no-cache";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub async fn app_js(headers: HeaderMap) -> Response {
    serve(
        &StaticFile {
            body: APP_JS,
            gzip: APP_JS_GZIP,
            etag: APP_JS_ETAG.as_str(),
            content_type: "text/javascript; charset=utf-8",
            cache_control: ASSET_CACHE,
        },
        &headers,
    )
}

/// The admins' pages, which `app.js` imports when one is opened.
pub async fn admin_js(headers: HeaderMap) -> Response {
    serve(
        &StaticFile {
            body: ADMIN_JS,
            gzip: ADMIN_JS_GZIP,
            etag: ADMIN_JS_ETAG.as_str(),
            content_type: "text/javascript; charset=utf-8",
            cache_control: ASSET_CACHE,
        },
        &headers,
    )
}

pub async fn app_css(headers: HeaderMap) -> Response {
    serve(
        &StaticFile {
            body: APP_CSS,
            gzip: APP_CSS_GZIP,
            etag: APP_CSS_ETAG.as_str(),
            content_type: "text/css; charset=utf-8",
            cache_control: ASSET_CACHE,
        },
        &headers,
    )
}

fn shell(headers: &HeaderMap) -> Response {
    shell_framed_by(headers, &[])
}

/// The shell, which the pages of `origins` may show in a frame (none: no page may).
fn shell_framed_by(headers: &HeaderMap, origins: &[String]) -> Response {
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    let mut response = if gzip {
        ([(header::CONTENT_ENCODING, "gzip")], INDEX_HTML_GZIP).into_response()
    } else {
        INDEX_HTML.into_response()
    };
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::VARY, "Accept-Encoding"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    // Each origin was checked and written as `scheme://host[:port]` when the link was made.
    if !origins.is_empty()
        && let Ok(csp) = HeaderValue::from_str(&CSP.replace(
            "frame-ancestors 'none'",
            &format!("frame-ancestors {}", origins.join(" ")),
        ))
    {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
        h.remove(header::X_FRAME_OPTIONS);
    }
    response
}

/// `/share/{token}`: open to anyone; framed only by the origins the link lists.
pub async fn share_page(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    match crate::accounts::share_by_token(state.store.as_ref(), &token).await {
        Ok(Some(link)) => shell_framed_by(&headers, &link.embed_origins),
        _ => shell(&headers),
    }
}

/// `/login` and `/share/{token}`: open to anyone.
pub async fn public_page(headers: HeaderMap) -> Response {
    shell(&headers)
}

/// Every other page: the shell for a logged-in user, else a redirect to the login page
/// that comes back here.
pub async fn private_page(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    match super::auth::session_user(&state, &headers).await {
        Ok(Some(_)) => shell(&headers),
        Ok(None) => {
            let here = uri.path_and_query().map_or("/", |p| p.as_str());
            let next = utf8_percent_encode(here, NEXT_ESCAPES).to_string();
            let location = HeaderValue::from_str(&format!("/login?next={next}"))
                .unwrap_or_else(|_| HeaderValue::from_static("/login"));
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, location),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    /// What a first visit downloads, gzipped, at most: the page, its script and its styles.
    const MAX_SHIPPED_GZIP: usize = 16 * 1024;
    /// The admins' pages, loaded when an admin first opens one.
    const MAX_ADMIN_GZIP: usize = 12 * 1024;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn shipped_files_are_small_and_their_gzip_copies_match() {
        assert_eq!(gunzip(APP_JS_GZIP), APP_JS);
        assert_eq!(gunzip(APP_CSS_GZIP), APP_CSS);
        assert_eq!(gunzip(ADMIN_JS_GZIP), ADMIN_JS);
        assert_eq!(gunzip(INDEX_HTML_GZIP), INDEX_HTML);
        let (html, js, css) = shipped_sizes();
        let total = html + js + css;
        println!(
            "dashboard: {total} bytes gzipped (HTML {html}, JS {js}, CSS {css}; {} bytes minified JS; budget {MAX_SHIPPED_GZIP})",
            APP_JS.len()
        );
        assert!(
            total <= MAX_SHIPPED_GZIP,
            "the dashboard ships {total} bytes gzipped; the budget is {MAX_SHIPPED_GZIP}"
        );
        println!(
            "admin pages: {} bytes gzipped (budget {MAX_ADMIN_GZIP}), loaded when first opened",
            ADMIN_JS_GZIP.len()
        );
        assert!(ADMIN_JS_GZIP.len() <= MAX_ADMIN_GZIP);
    }
}
