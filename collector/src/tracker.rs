//! The tracker script, minified by `build.rs` from `tracker/script.js` and embedded here.

use std::sync::LazyLock;

/// The minified script, as served.
pub const SCRIPT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/script.min.js"));
/// The same script gzipped, served to clients that accept gzip.
pub const SCRIPT_GZIP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/script.min.js.gz"));

/// A strong entity tag of the script's content, quoted as the header wants it.
pub static ETAG: LazyLock<String> = LazyLock::new(|| crate::http::etag_of(SCRIPT));

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    /// The size budget of the issue that introduced the tracker: under 1 KiB gzipped.
    const MAX_GZIP_BYTES: usize = 1024;

    #[test]
    fn gzip_copy_is_the_script_and_fits_the_budget() {
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(SCRIPT_GZIP)
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, SCRIPT);
        println!(
            "tracker: {} bytes minified, {} bytes gzipped (budget {MAX_GZIP_BYTES})",
            SCRIPT.len(),
            SCRIPT_GZIP.len()
        );
        assert!(
            SCRIPT_GZIP.len() < MAX_GZIP_BYTES,
            "the tracker is {} bytes gzipped; the budget is under {MAX_GZIP_BYTES}",
            SCRIPT_GZIP.len()
        );
    }

    #[test]
    fn minified_script_keeps_its_contract() {
        let text = std::str::from_utf8(SCRIPT).unwrap();
        // No comment survives, and nothing leaks into the page's global scope but `footfall` (and `plausible`, the same function).
        assert!(!text.contains("// "), "{text}");
        assert!(text.starts_with('{') && text.ends_with('}'), "{text}");
        for needle in [
            "/api/event",
            "keepalive",
            "sendBeacon",
            "footfall_ignore",
            "engagement",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
        // No cookie, no storage write.
        for needle in ["cookie", "setItem", "sessionStorage"] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
    }
}
