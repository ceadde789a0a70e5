//! `GET /js/script.js`: the tracker, cacheable and revalidated by its entity tag; and the
//! [`serve`] helper every embedded file is answered with.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::tracker::{ETAG, SCRIPT, SCRIPT_GZIP};

/// Browsers and CDNs may reuse the script for an hour, then revalidate it with its tag.
const CACHE_CONTROL: &str = "public, max-age=3600";

/// A file embedded in the binary, served with its entity tag and a gzip copy.
pub struct StaticFile {
    pub body: &'static [u8],
    pub gzip: &'static [u8],
    /// Quoted strong entity tag.
    pub etag: &'static str,
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

/// A strong entity tag for `body`, quoted as the header wants it.
pub fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", &blake3::hash(body).to_hex()[..20])
}

pub async fn get_script(headers: HeaderMap) -> Response {
    let file = StaticFile {
        body: SCRIPT,
        gzip: SCRIPT_GZIP,
        etag: ETAG.as_str(),
        content_type: "text/javascript; charset=utf-8",
        cache_control: CACHE_CONTROL,
    };
    serve(&file, &headers)
}

/// Answers with `file`: 304 when `If-None-Match` names it, gzipped when accepted.
pub fn serve(file: &StaticFile, headers: &HeaderMap) -> Response {
    let etag = HeaderValue::from_str(file.etag).expect("hex digits in quotes");
    let common = [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(file.cache_control),
        ),
        (header::ETAG, etag),
        (header::VARY, HeaderValue::from_static("Accept-Encoding")),
    ];
    if matches_etag(headers, file.etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let content_type = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(file.content_type),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if accepts_gzip(headers) {
        let encoding = [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))];
        (common, content_type, encoding, file.gzip).into_response()
    } else {
        (common, content_type, file.body).into_response()
    }
}

/// The comma-separated items of every `name` header, as given (unreadable values skipped).
fn list_items(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags compare too.
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    list_items(headers, header::IF_NONE_MATCH)
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// Whether `Accept-Encoding` lists gzip (or `*`) without `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    list_items(headers, header::ACCEPT_ENCODING).any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn gzip_negotiation() {
        let ae = header::ACCEPT_ENCODING;
        assert!(accepts_gzip(&headers(&[(ae.clone(), "gzip, deflate, br")])));
        assert!(accepts_gzip(&headers(&[(
            ae.clone(),
            "br;q=1.0, GZIP;q=0.5"
        )])));
        assert!(accepts_gzip(&headers(&[(ae.clone(), "*")])));
        assert!(!accepts_gzip(&headers(&[(ae.clone(), "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[(ae.clone(), "br, deflate")])));
        assert!(!accepts_gzip(&headers(&[(ae.clone(), "gzipx")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    async fn body(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn serves_the_script_gzipped_cacheable_and_revalidated() {
        let r = get_script(headers(&[(header::ACCEPT_ENCODING, "gzip, br")])).await;
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers().clone();
        assert_eq!(h[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        assert_eq!(h[header::CACHE_CONTROL], CACHE_CONTROL);
        assert_eq!(h[header::VARY], "Accept-Encoding");
        assert_eq!(h[header::ETAG], ETAG.as_str());
        assert_eq!(body(r).await, SCRIPT_GZIP);

        let plain = get_script(HeaderMap::new()).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain.headers()[header::ETAG], ETAG.as_str());
        assert_eq!(body(plain).await, SCRIPT);

        let again = get_script(headers(&[(header::IF_NONE_MATCH, ETAG.as_str())])).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], ETAG.as_str());
        assert!(body(again).await.is_empty());

        let stale = get_script(headers(&[(header::IF_NONE_MATCH, "\"0000\"")])).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    fn matches_etag_now(h: &HeaderMap) -> bool {
        matches_etag(h, ETAG.as_str())
    }

    #[test]
    fn etag_matching() {
        let inm = header::IF_NONE_MATCH;
        let tag = ETAG.as_str();
        assert!(matches_etag_now(&headers(&[(inm.clone(), tag)])));
        assert!(matches_etag_now(&headers(&[(
            inm.clone(),
            &format!("\"old\", W/{tag}")
        )])));
        assert!(matches_etag_now(&headers(&[(inm.clone(), "*")])));
        assert!(!matches_etag_now(&headers(&[(inm.clone(), "\"old\"")])));
        assert!(!matches_etag_now(&HeaderMap::new()));
    }
}
