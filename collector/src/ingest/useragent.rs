//! User-agent → browser + major version, OS + version, device class; with a cache in front.
//!
//! Parsing uses the `woothee` crate's data set; Footfall maps its names to the ones analytics
//! users know (`macOS`, `iOS`, `Windows 10`) and splits phones from tablets. The raw
//! user-agent is only a cache key in memory; it is never stored or logged.

use std::sync::Arc;

use quick_cache::sync::Cache;

/// What the user-agent says about the visitor's software and device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UaInfo {
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    pub device: String,
    /// The parser recognised a crawler.
    pub is_bot: bool,
}

/// Parses user-agents, remembering recent answers.
pub struct UaParser {
    parser: woothee::parser::Parser,
    cache: Cache<String, Arc<UaInfo>>,
}

/// How many distinct user-agents the cache keeps by default.
pub const DEFAULT_CACHE_ENTRIES: usize = 20_000;
/// User-agents longer than this are parsed but not cached.
const MAX_CACHED_UA_BYTES: usize = 512;

impl Default for UaParser {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_ENTRIES)
    }
}

impl UaParser {
    pub fn new(cache_entries: usize) -> Self {
        Self {
            parser: woothee::parser::Parser::new(),
            cache: Cache::new(cache_entries.max(1)),
        }
    }

    /// Parses `ua`, answering from the cache when it has seen it.
    pub fn parse(&self, ua: &str) -> Arc<UaInfo> {
        if ua.len() > MAX_CACHED_UA_BYTES {
            return Arc::new(self.parse_uncached(ua));
        }
        if let Some(hit) = self.cache.get(ua) {
            return hit;
        }
        let info = Arc::new(self.parse_uncached(ua));
        self.cache.insert(ua.to_string(), info.clone());
        info
    }

    /// Parses `ua` without the cache.
    pub fn parse_uncached(&self, ua: &str) -> UaInfo {
        let Some(r) = self.parser.parse(ua) else {
            return UaInfo {
                browser: "Unknown".into(),
                os: "Unknown".into(),
                device: "Unknown".into(),
                ..UaInfo::default()
            };
        };
        let (os, os_version) = os_name(r.os, &r.os_version);
        let tablet = r.os == "iPad" || (r.os == "Android" && !ua.contains("Mobile"));
        let device = match r.category {
            "pc" => "Desktop",
            "smartphone" | "mobilephone" if tablet => "Tablet",
            "smartphone" | "mobilephone" => "Mobile",
            "appliance" => "Other",
            _ => "Unknown",
        };
        UaInfo {
            browser: known(r.name),
            browser_version: major(r.version),
            os,
            os_version,
            device: device.into(),
            is_bot: r.category == "crawler",
        }
    }
}

fn known(s: &str) -> String {
    if s.is_empty() || s == "UNKNOWN" {
        "Unknown".into()
    } else {
        s.into()
    }
}

fn major(version: &str) -> String {
    match version.split('.').next() {
        Some(v) if !v.is_empty() && v != "UNKNOWN" => v.to_string(),
        _ => String::new(),
    }
}

fn major_minor(version: &str) -> String {
    let parts: Vec<&str> = version.split(['.', '_']).take(2).collect();
    if version.is_empty() || version == "UNKNOWN" {
        String::new()
    } else {
        parts.join(".")
    }
}

fn os_name(os: &str, version: &str) -> (String, String) {
    match os {
        "iPhone" | "iPad" | "iPod" => ("iOS".into(), major_minor(version)),
        "Mac OSX" => ("macOS".into(), major_minor(version)),
        "Android" => ("Android".into(), major(version)),
        "ChromeOS" => ("Chrome OS".into(), major(version)),
        w if w.starts_with("Windows") => {
            let v = w.trim_start_matches("Windows").trim();
            ("Windows".into(), v.to_string())
        }
        other => (known(other), major_minor(version)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ua(s: &str) -> UaInfo {
        UaParser::default().parse_uncached(s)
    }

    #[test]
    fn desktop_chrome_on_windows() {
        let i = ua(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        );
        assert_eq!(
            (i.browser.as_str(), i.browser_version.as_str()),
            ("Chrome", "131")
        );
        assert_eq!((i.os.as_str(), i.os_version.as_str()), ("Windows", "10"));
        assert_eq!(i.device, "Desktop");
    }

    #[test]
    fn firefox_on_mac() {
        let i = ua(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
        );
        assert_eq!(
            (i.browser.as_str(), i.browser_version.as_str()),
            ("Firefox", "133")
        );
        assert_eq!((i.os.as_str(), i.os_version.as_str()), ("macOS", "10.15"));
        assert_eq!(i.device, "Desktop");
    }

    #[test]
    fn iphone_safari_is_mobile() {
        let i = ua(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(
            (i.browser.as_str(), i.browser_version.as_str()),
            ("Safari", "17")
        );
        assert_eq!((i.os.as_str(), i.os_version.as_str()), ("iOS", "17.5"));
        assert_eq!(i.device, "Mobile");
    }

    #[test]
    fn tablets() {
        let ipad = ua(
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        );
        assert_eq!((ipad.os.as_str(), ipad.device.as_str()), ("iOS", "Tablet"));
        let tab = ua(
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        );
        assert_eq!(
            (
                tab.os.as_str(),
                tab.os_version.as_str(),
                tab.device.as_str()
            ),
            ("Android", "13", "Tablet")
        );
        let phone = ua(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        );
        assert_eq!(phone.device, "Mobile");
    }

    #[test]
    fn crawler_is_flagged_and_garbage_is_unknown() {
        assert!(
            ua("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)").is_bot
        );
        let g = ua("\u{0}\u{1}garbage");
        assert_eq!(g.browser, "Unknown");
        assert!(!g.is_bot);
    }

    #[test]
    fn cache_answers_the_same() {
        let p = UaParser::new(4);
        let s = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        let a = p.parse(s);
        let b = p.parse(s);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*a, p.parse_uncached(s));
    }
}
