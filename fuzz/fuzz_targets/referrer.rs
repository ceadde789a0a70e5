//! Referrers: host extraction, the spam list and source/channel classification.
#![no_main]

use footfall::ingest::bots::is_spam_referrer;
use footfall::ingest::page::normalise;
use footfall::ingest::referrer::{classify, referrer_host};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|referrer: &str| {
    if let Some(host) = referrer_host(referrer) {
        assert!(!host.is_empty());
        assert_eq!(host, host.to_ascii_lowercase());
        let _ = is_spam_referrer(&host);
    }
    let page = normalise("https://example.com/landing?utm_source=x", false).unwrap();
    let source = classify(Some(referrer), &page);
    assert!(!source.channel.is_empty(), "every event gets a channel");
});
