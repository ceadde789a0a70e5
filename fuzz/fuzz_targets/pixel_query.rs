//! `GET /api/event.gif` query strings, as the pixel receives them.
#![no_main]

use footfall::ingest::body::parse_query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|query: &str| {
    if let Ok(input) = parse_query(query, None) {
        assert!(input.url.len() <= footfall::ingest::body::MAX_URL_BYTES);
        footfall_fuzz::process(input, "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X)");
    }
});
