//! Bot and referrer-spam filtering.
//!
//! Two stages. [`is_bot_user_agent`] runs first on every event: a handful of lower-case
//! fragments (`bot`, `crawl`, `headless`, `curl/`…) and an empty or tiny user-agent, cheap
//! enough to need no cache. [`is_listed_bot`] runs inside the cached user-agent parse: the
//! published crawler list `data/crawler-user-agents.txt` (monperrus/crawler-user-agents, MIT,
//! refreshed by `scripts/update-ua-data.py`, less the patterns real browsers also send, in
//! `data/crawler-user-agents.skip.txt`), isbot's patterns (`data/isbot-patterns.txt`, from the
//! npm package isbot 5.2.3, Unlicense, matched without regard to case; the seven that need
//! look-around rewritten without it, four that real browsers send left out, as its header
//! says), and Footfall's own `data/extra-bot-patterns.txt` for what such lists miss: feed
//! readers and podcatchers, link-preview fetchers, uptime and health checks, headless and
//! automated browsers, scanners, HTTP libraries. BENCHMARKS.md has the recall and false
//! positives measured on public corpora. A referrer is spam when its host, or a parent domain
//! of it, is on the list of known referrer-spam domains.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::{Regex, RegexBuilder};

static CRAWLER_LIST: &str = include_str!("../../data/crawler-user-agents.txt");
static CRAWLER_SKIP: &str = include_str!("../../data/crawler-user-agents.skip.txt");
static ISBOT: &str = include_str!("../../data/isbot-patterns.txt");
static EXTRA: &str = include_str!("../../data/extra-bot-patterns.txt");

/// The patterns of a list file: one a line, `#` comments and blank lines skipped.
fn patterns(list: &str) -> impl Iterator<Item = &str> {
    list.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Every listed pattern, as one expression.
static LISTED: LazyLock<Regex> = LazyLock::new(|| {
    let skip: Vec<&str> = patterns(CRAWLER_SKIP).collect();
    let all: Vec<String> = patterns(CRAWLER_LIST)
        .filter(|p| !skip.contains(p))
        .chain(patterns(EXTRA))
        .map(|p| format!("(?:{p})"))
        .chain(patterns(ISBOT).map(|p| format!("(?i:{p})")))
        .collect();
    RegexBuilder::new(&all.join("|"))
        .size_limit(256 << 20)
        .dfa_size_limit(64 << 20)
        .build()
        .expect("the bot lists are valid patterns")
});

/// Compiles the lists now rather than on the first event.
pub fn warm_up() {
    LazyLock::force(&LISTED);
}

/// True when a published or Footfall's own list names the user-agent as not a person's
/// browser (run on a cache miss of the user-agent parse).
pub fn is_listed_bot(user_agent: &str) -> bool {
    LISTED.is_match(user_agent)
}

/// Lower-case fragments that only non-browsers send (the lists behind [`is_listed_bot`] know
/// the rest; a fragment here must never appear in a person's browser, as `yandex`, `monitor`
/// or `libwww` do).
const BOT_MARKERS: &[&str] = &[
    "googlebot",
    "bingbot",
    "crawler",
    "headlesschrome",
    "phantomjs",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "okhttp/",
    "apache-httpclient",
    "node-fetch",
    "facebookexternalhit",
    "gptbot",
    "claudebot",
    "ccbot",
    "bytespider",
    "ahrefsbot",
    "semrushbot",
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
    fn listed_bots_and_what_lists_miss() {
        for ua in [
            "Tiny Tiny RSS/1.11 (http://tt-rss.org/)",
            "Feedbin - 1 subscribers",
            "Digg Feed Fetcher 1.0 (Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_6_8; en-US) AppleWebKit/534.30 (KHTML, like Gecko) Chrome/12.0.742.112 Safari/534.30)",
            "Mozilla/5.0 (compatible; FlipboardRSS/1.1; +http://flipboard.com/browserproxy)",
            "Mozilla/5.0 (compatible; theoldreader.com; 3 subscribers; feed-id=5193582)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            "TelegramBot (like TwitterBot)",
            "WhatsApp/2.23.20.0",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
            "Mozilla/5.0 (compatible; Embedly/0.2; +http://support.embed.ly/)",
            "Overcast/1.0 Podcast Sync (123 subscribers; feed-id=456; +http://overcast.fm/)",
            "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
            "Datadog/Synthetics",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Cypress/13.6.0 Electron/27.1.3",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Chrome-Lighthouse",
            "Go-http-client/2.0",
        ] {
            assert!(is_listed_bot(ua), "{ua}");
        }
        for ua in [
            CHROME,
            "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; U; Android 15; en-us; CPH2609 Build/AP3A.240617.008) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.72 Mobile Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        ] {
            assert!(!is_listed_bot(ua), "{ua}");
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
