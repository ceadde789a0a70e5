//! `POST /api/event` bodies: any bytes are refused with an error or carried through the
//! pipeline, never a panic.
#![no_main]

use footfall::ingest::body::parse_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = parse_body(data) {
        assert!(input.url.len() <= footfall::ingest::body::MAX_URL_BYTES);
        assert!(input.props.len() <= footfall::ingest::body::MAX_PROPS);
        footfall_fuzz::process(input, "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0");
    }
});
