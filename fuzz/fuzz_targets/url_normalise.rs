//! Page URL normalisation, in both path and hash mode.
#![no_main]

use footfall::ingest::page::normalise;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (bool, &str)| {
    let (hash_mode, url) = data;
    if let Ok(page) = normalise(url, hash_mode) {
        assert!(page.pathname.starts_with('/'), "{:?}", page.pathname);
        assert!(!page.hostname.is_empty());
        assert!(!page.hostname.contains(char::is_uppercase));
        for v in [&page.utm.source, &page.utm.medium, &page.utm.campaign] {
            assert!(v.chars().count() <= 200);
        }
    }
});
