//! User-agent strings: the bot check, the parser, and the whole pipeline with that header.
#![no_main]

use footfall::ingest::body::parse_body;
use footfall::ingest::bots::is_bot_user_agent;
use footfall::ingest::useragent::UaParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|ua: &str| {
    let _ = is_bot_user_agent(ua);
    let parser = UaParser::new(16);
    let _ = parser.parse_uncached(ua, &Default::default());
    // The same bytes as client hints, too.
    let hints = footfall::ingest::useragent::ClientHints {
        brands: ua,
        mobile: ua,
        platform: ua,
    };
    let _ = parser.parse_uncached("Mozilla/5.0", &hints);
    let input = parse_body(br#"{"n":"pageview","u":"https://example.com/"}"#).unwrap();
    footfall_fuzz::process(input, ua);
});
