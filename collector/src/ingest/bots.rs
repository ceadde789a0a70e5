//! Bot and referrer-spam filtering: cheap checks that run before the user-agent parser.
//!
//! A user-agent is a bot when it is empty, or names a crawler, a headless or automated
//! browser, an HTTP library or a monitoring service. A referrer is spam when its host, or a
//! parent domain of it, is on the list of known referrer-spam domains.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

/// Lower-case fragments that mark a user-agent as not a person's browser.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "headless",
    "phantomjs",
    "selenium",
    "webdriver",
    "puppeteer",
    "playwright",
    "lighthouse",
    "pagespeed",
    "gtmetrix",
    "pingdom",
    "uptime",
    "monitor",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "apache-httpclient",
    "node-fetch",
    "axios/",
    "undici",
    "scrapy",
    "httpclient",
    "facebookexternalhit",
    "embedly",
    "preview",
    "archiver",
    "feedfetcher",
    "mediapartners",
    "adsbot",
    "bingpreview",
    "yahoo! slurp",
    "ia_archiver",
    "semrush",
    "ahrefs",
    "mj12",
    "dotbot",
    "petalbot",
    "bytespider",
    "gptbot",
    "claudebot",
    "ccbot",
    "chatgpt-user",
    "perplexity",
    "amazonbot",
    "applebot",
    "yandex",
    "baiduspider",
    "cypress",
    "prerender",
    "rendertron",
];

/// Known referrer-spam domains (matched with their subdomains).
const SPAM_DOMAINS: &[&str] = &[
    "semalt.com",
    "buttons-for-website.com",
    "buttons-for-your-website.com",
    "darodar.com",
    "best-seo-offer.com",
    "best-seo-solution.com",
    "blackhatworth.com",
    "hulfingtonpost.com",
    "priceg.com",
    "savetubevideo.com",
    "kambasoft.com",
    "ilovevitaly.com",
    "ilovevitaly.ru",
    "econom.co",
    "free-social-buttons.com",
    "social-buttons.com",
    "get-free-traffic-now.com",
    "free-share-buttons.com",
    "trafficmonetize.org",
    "4webmasters.org",
    "floating-share-buttons.com",
    "seo-platform.com",
    "success-seo.com",
    "videos-for-your-business.com",
    "web-analytics.net",
    "100dollars-seo.com",
    "event-tracking.com",
    "rank-checker.online",
    "website-analyzer.info",
    "o-o-6-o-o.com",
    "o-o-8-o-o.com",
    "simple-share-buttons.com",
    "googlsucks.com",
    "fix-website-errors.com",
    "traffic2money.com",
    "seoanalyses.com",
    "site-auditor.online",
];

static BOT_MATCHER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(BOT_MARKERS)
        .expect("the bot markers are valid patterns")
});

/// True when the user-agent is not a person's browser.
pub fn is_bot_user_agent(user_agent: &str) -> bool {
    let ua = user_agent.trim();
    ua.len() < 10 || BOT_MATCHER.is_match(ua)
}

/// True when the referrer host (lower-case) is a known referrer-spam domain or under one.
pub fn is_spam_referrer(host: &str) -> bool {
    SPAM_DOMAINS.iter().any(|spam| {
        host == *spam
            || host
                .strip_suffix(spam)
                .is_some_and(|prefix| prefix.ends_with('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    #[test]
    fn browsers_pass() {
        assert!(!is_bot_user_agent(CHROME));
        assert!(!is_bot_user_agent(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
        ));
        assert!(!is_bot_user_agent(
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
        ));
    }

    #[test]
    fn bots_headless_and_empty_are_caught() {
        for ua in [
            "",
            "   ",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
            "curl/8.5.0",
            "python-requests/2.31.0",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        ] {
            assert!(is_bot_user_agent(ua), "{ua}");
        }
    }

    #[test]
    fn spam_referrers() {
        assert!(is_spam_referrer("semalt.com"));
        assert!(is_spam_referrer("x.semalt.com"));
        assert!(!is_spam_referrer("notsemalt.com"));
        assert!(!is_spam_referrer("google.com"));
    }
}
