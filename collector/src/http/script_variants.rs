//! Plausible's script names, so a page keeps its snippet and changes only the host:
//! `/js/script.js` (the tracker), `/js/script.<extension>….js` and `/js/plausible.….js`, whose
//! extensions turn features on, and the per-site `/js/pa-<id>.js`, configured by the page's
//! `plausible.init({…})`.
//!
//! A variant is the tracker with a short prefix that sets the `data-*` flags its extensions
//! stand for (and, for `plausible.init` options, the same flags and `data-api`), so the
//! tracker itself stays one file under its size budget. Extensions Footfall has no feature
//! for are refused with 404 rather than served doing less than the name says.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::script::{StaticFile, etag_of, serve};
use crate::tracker::SCRIPT;

/// Plausible's script extensions Footfall serves, and the tracker flag each sets.
pub const EXTENSIONS: [(&str, &str); 6] = [
    ("hash", "hash"),
    ("outbound-links", "outboundLinks"),
    ("file-downloads", "fileDownloads"),
    ("form-submissions", "formSubmissions"),
    // Custom events and revenue go through `plausible()` in every variant.
    ("revenue", ""),
    ("compat", ""),
];

/// The prefix of the per-site script: the page's `plausible.init({…})` options as flags.
const INIT_PREFIX: &str = "{let o=window.plausible?.o||{},d=document.currentScript.dataset;o.hashBasedRouting&&(d.hash='');o.outboundLinks&&(d.outboundLinks='');o.fileDownloads&&(d.fileDownloads='');o.formSubmissions&&(d.formSubmissions='');o.endpoint&&(d.api=o.endpoint)}";

/// A served variant: the script with its prefix, gzipped, and its tag.
struct Variant {
    body: Vec<u8>,
    gzip: Vec<u8>,
    etag: String,
}

/// Variants made so far, by their flags: at most one per set of the four flags and one for
/// `plausible.init`, each made once and kept for the life of the process.
static MADE: LazyLock<Mutex<HashMap<String, &'static Variant>>> = LazyLock::new(Default::default);

/// The flags a script file name asks for, or `None` when it is not one Footfall serves.
pub fn flags(file: &str) -> Option<String> {
    let stem = file.strip_suffix(".js")?;
    if let Some(id) = stem.strip_prefix("pa-") {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return ok.then(|| "init".to_string());
    }
    let mut parts = stem.split('.');
    if !matches!(parts.next(), Some("script" | "plausible")) {
        return None;
    }
    let mut on: Vec<&str> = Vec::new();
    for ext in parts {
        let (_, flag) = EXTENSIONS.iter().find(|(name, _)| *name == ext)?;
        if !flag.is_empty() && !on.contains(flag) {
            on.push(flag);
        }
    }
    on.sort_unstable();
    Some(on.join(","))
}

/// The script for `flags` (see [`flags`]).
pub fn script(flags: &str) -> Vec<u8> {
    let prefix = if flags == "init" {
        INIT_PREFIX.to_string()
    } else if flags.is_empty() {
        String::new()
    } else {
        let sets: String = flags
            .split(',')
            .map(|f| format!("d.{f}=''"))
            .collect::<Vec<_>>()
            .join(",");
        format!("{{let d=document.currentScript.dataset;{sets}}}")
    };
    let mut out = prefix.into_bytes();
    out.extend_from_slice(SCRIPT);
    out
}

fn variant(flags: &str) -> &'static Variant {
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    made.entry(flags.to_string()).or_insert_with(|| {
        use std::io::Write as _;
        let body = script(flags);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let _ = gz.write_all(&body);
        let gzip = gz.finish().unwrap_or_default();
        Box::leak(Box::new(Variant {
            etag: etag_of(&body),
            body,
            gzip,
        }))
    })
}

/// `GET /js/{file}`: a Plausible script name; 404 for any other.
pub async fn get_variant(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(flags) = flags(&file) else {
        return (StatusCode::NOT_FOUND, "no such script").into_response();
    };
    if flags.is_empty() {
        return super::script::get_script(headers).await;
    }
    let v = variant(&flags);
    serve(
        &StaticFile {
            body: &v.body,
            gzip: &v.gzip,
            etag: &v.etag,
            content_type: "text/javascript; charset=utf-8",
            cache_control: "public, max-age=3600",
        },
        &headers,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_names_turn_their_features_on() {
        assert_eq!(flags("script.js").as_deref(), Some(""));
        assert_eq!(
            flags("script.outbound-links.file-downloads.hash.js").as_deref(),
            Some("fileDownloads,hash,outboundLinks")
        );
        assert_eq!(
            flags("plausible.hash.outbound-links.js").as_deref(),
            Some("hash,outboundLinks")
        );
        assert_eq!(flags("script.revenue.js").as_deref(), Some(""));
        assert_eq!(flags("pa-Ab12_x-9.js").as_deref(), Some("init"));
        for bad in [
            "script.manual.js",
            "other.js",
            "pa-.js",
            "pa-a/b.js",
            "script.hash",
        ] {
            assert_eq!(flags(bad), None, "{bad}");
        }
        for name in [
            "script.js",
            "script.hash.js",
            "script.outbound-links.file-downloads.hash.js",
            "script.file-downloads.form-submissions.hash.outbound-links.js",
            "pa-XyZ.js",
        ] {
            let v = variant(&flags(name).unwrap());
            println!(
                "tracker /js/{name}: {} bytes, {} bytes gzipped",
                v.body.len(),
                v.gzip.len()
            );
            let text = std::str::from_utf8(&v.body).unwrap();
            assert!(text.ends_with(std::str::from_utf8(SCRIPT).unwrap()));
        }
        assert!(
            script("hash,outboundLinks").starts_with(
                b"{let d=document.currentScript.dataset;d.hash='',d.outboundLinks=''}"
            )
        );
    }
}
