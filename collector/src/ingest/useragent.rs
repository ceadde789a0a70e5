//! User-agent → browser + major version, OS + version, device class; with a cache in front.
//!
//! Parsing uses the ua-parser project's uap-core rules (`data/uap-regexes.json`, Apache-2.0,
//! refreshed by `scripts/update-ua-data.py`) through the `ua-parser` crate. Footfall stores the
//! names Plausible stores (`Chrome`, `Safari`, `Microsoft Edge`, `Samsung Browser`; `Mac`,
//! `iOS`, `iPadOS`, `GNU/Linux`; `Desktop`, `Mobile`, `Tablet`), so filters written for
//! Plausible match; what nothing recognises is stored empty. Where a Chromium browser sends
//! User-Agent Client Hints (`Sec-CH-UA`, `-Mobile`, `-Platform`), they name the brand (Edge,
//! Opera, Brave, Chrome…), the platform and whether it is a phone, which the frozen
//! user-agent string no longer tells. The raw user-agent and hints are only a cache key in
//! memory; they are never stored or logged.

use std::sync::{Arc, LazyLock};

use quick_cache::sync::Cache;

use super::bots;

/// What the user-agent says about the visitor's software and device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UaInfo {
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    pub device: String,
    /// A crawler, feed reader, link previewer, monitor, tool or automated browser.
    pub is_bot: bool,
}

/// The low-entropy User-Agent Client Hints as the request carried them (raw header values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientHints<'a> {
    /// `Sec-CH-UA`: `"Chromium";v="131", "Google Chrome";v="131", "Not_A Brand";v="24"`.
    pub brands: &'a str,
    /// `Sec-CH-UA-Mobile`: `?1` or `?0`.
    pub mobile: &'a str,
    /// `Sec-CH-UA-Platform`: `"Windows"`.
    pub platform: &'a str,
}

/// Header values longer than this are not a browser's hints and are ignored.
pub const MAX_HINT_BYTES: usize = 256;

impl ClientHints<'_> {
    fn is_empty(&self) -> bool {
        self.brands.is_empty() && self.mobile.is_empty() && self.platform.is_empty()
    }
}

/// Parses user-agents, remembering recent answers.
pub struct UaParser {
    cache: Cache<String, Arc<UaInfo>>,
}

/// How many distinct user-agents the cache keeps by default.
pub const DEFAULT_CACHE_ENTRIES: usize = 20_000;
/// User-agents longer than this are parsed but not cached.
const MAX_CACHED_UA_BYTES: usize = 512;

static RULES: &str = include_str!("../../data/uap-regexes.json");

/// The uap-core rules, compiled once (about half a second; `serve` does it at start).
static UAP: LazyLock<ua_parser::Extractor<'static>> = LazyLock::new(|| {
    let regexes: ua_parser::Regexes<'static> =
        serde_json::from_str(RULES).expect("data/uap-regexes.json is valid");
    ua_parser::Extractor::try_from(regexes).expect("the uap-core rules compile")
});

impl Default for UaParser {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_ENTRIES)
    }
}

impl UaParser {
    pub fn new(cache_entries: usize) -> Self {
        Self {
            cache: Cache::new(cache_entries.max(1)),
        }
    }

    /// Compiles the rules and the bot lists now rather than on the first event.
    pub fn warm_up() {
        LazyLock::force(&UAP);
        bots::warm_up();
    }

    /// Parses `ua` with its client hints, answering from the cache when it has seen them.
    pub fn parse(&self, ua: &str, hints: &ClientHints<'_>) -> Arc<UaInfo> {
        let hint_bytes = hints.brands.len() + hints.mobile.len() + hints.platform.len();
        if ua.len() + hint_bytes > MAX_CACHED_UA_BYTES {
            return Arc::new(self.parse_uncached(ua, hints));
        }
        // Without hints the user-agent is the key: a hit allocates nothing.
        let hinted = (!hints.is_empty()).then(|| {
            format!(
                "{ua}\n{}\n{}\n{}",
                hints.brands, hints.mobile, hints.platform
            )
        });
        let key = hinted.as_deref().unwrap_or(ua);
        if let Some(hit) = self.cache.get(key) {
            return hit;
        }
        let info = Arc::new(self.parse_uncached(ua, hints));
        self.cache
            .insert(hinted.unwrap_or_else(|| ua.to_string()), info.clone());
        info
    }

    /// Parses `ua` and its hints without the cache.
    pub fn parse_uncached(&self, ua: &str, hints: &ClientHints<'_>) -> UaInfo {
        let (agent, os, device) = UAP.extract(ua);
        let family = agent.as_ref().map_or("", |a| a.family.as_ref());
        let device_family = device.as_ref().map_or("", |d| d.device.as_ref());
        let device_brand = device
            .as_ref()
            .and_then(|d| d.brand.as_deref())
            .unwrap_or("");
        let os_family = os.as_ref().map_or("", |o| o.os.as_ref());
        let os_major = os.as_ref().and_then(|o| o.major.as_deref()).unwrap_or("");
        let os_minor = os.as_ref().and_then(|o| o.minor.as_deref()).unwrap_or("");

        let is_bot =
            device_family == "Spider" || family == "HeadlessChrome" || bots::is_listed_bot(ua);
        let ipad_os = device_family == "iPad" && os_major.parse::<u32>().is_ok_and(|v| v >= 13);
        let mut info = UaInfo {
            browser: browser_name(family).to_string(),
            browser_version: if browser_name(family) == "Mobile App" {
                String::new()
            } else {
                agent
                    .as_ref()
                    .and_then(|a| a.major)
                    .unwrap_or("")
                    .to_string()
            },
            os: os_name(os_family, ipad_os).to_string(),
            os_version: version(os_major, os_minor),
            device: device_class(ua, family, os_family, device_family, device_brand).to_string(),
            is_bot,
        };
        apply_hints(&mut info, hints);
        info
    }
}

/// Plausible's name for a uap-core browser family; empty for what nothing recognises.
fn browser_name(family: &str) -> &str {
    match family {
        "" | "Other" => "",
        "Chrome" | "Chrome Mobile" | "Chrome Mobile iOS" | "Chrome Frame" => "Chrome",
        "Chrome Mobile WebView"
        | "Facebook"
        | "Instagram"
        | "Facebook Messenger"
        | "LINE"
        | "TikTok"
        | "Snapchat"
        | "Pinterest"
        | "Twitter"
        | "WeChat"
        | "WeChat Browser" => "Mobile App",
        "Edge" | "Edge Mobile" => "Microsoft Edge",
        "Safari" | "Mobile Safari" | "Mobile Safari UI/WKWebView" => "Safari",
        "Firefox" | "Firefox Mobile" | "Firefox iOS" | "Firefox Beta" | "Firefox Alpha" => {
            "Firefox"
        }
        "Opera" | "Opera Mobile" | "Opera Mini" | "Opera Tablet" => "Opera",
        "Samsung Internet" => "Samsung Browser",
        "DuckDuckGo" | "DuckDuckGo Mobile" => "DuckDuckGo Privacy Browser",
        "MiuiBrowser" => "Mi Browser",
        "Amazon Silk" => "Mobile Silk",
        "IE" => "Internet Explorer",
        "Whale" => "Whale Browser",
        other => other,
    }
}

/// Plausible's name for a uap-core OS family; empty for what nothing recognises.
fn os_name(family: &str, ipad_os: bool) -> &str {
    match family {
        "" | "Other" => "",
        "Mac OS X" | "Mac OS" => "Mac",
        "iOS" if ipad_os => "iPadOS",
        "Linux" => "GNU/Linux",
        "WatchOS" => "watchOS",
        "Chromecast" => "Chrome OS",
        other => other,
    }
}

fn version(major: &str, minor: &str) -> String {
    match (major, minor) {
        ("", _) => String::new(),
        (major, "") => major.to_string(),
        (major, minor) => format!("{major}.{minor}"),
    }
}

/// Desktop, Mobile or Tablet (uap-core has no device class): TVs and consoles count as
/// desktops, as Plausible counts them.
fn device_class(ua: &str, family: &str, os: &str, device: &str, brand: &str) -> &'static str {
    const TV_OR_CONSOLE: [&str; 8] = [
        "SMART-TV",
        "SmartTV",
        "Xbox",
        "PlayStation",
        "CrKey",
        "HbbTV",
        "AFT",
        "Nintendo",
    ];
    if TV_OR_CONSOLE.iter().any(|m| ua.contains(m)) {
        return "Desktop";
    }
    let tablet = device == "iPad"
        || brand == "Generic_Android_Tablet"
        || device == "Generic Tablet"
        || device.starts_with("Kindle")
        || family == "Opera Tablet"
        || (os == "Android" && !ua.contains("Mobile") && !ua.contains("Opera Mini"));
    if tablet {
        return "Tablet";
    }
    let mobile_os = matches!(
        os,
        "Android"
            | "iOS"
            | "Windows Phone"
            | "Windows Mobile"
            | "KaiOS"
            | "BlackBerry OS"
            | "Firefox OS"
            | "WatchOS"
            | "Symbian OS"
            | "Symbian^3"
            | "Tizen"
    ) && !ua.contains("SMART-TV");
    if matches!(
        device,
        "iPhone" | "iPod" | "Generic Smartphone" | "Generic Feature Phone"
    ) || brand == "Generic_Android"
        || mobile_os
    {
        return "Mobile";
    }
    let desktop_os = matches!(
        os,
        "Windows"
            | "Mac OS X"
            | "Mac OS"
            | "Linux"
            | "Ubuntu"
            | "Fedora"
            | "Debian"
            | "Red Hat"
            | "Gentoo"
            | "Chrome OS"
            | "FreeBSD"
            | "OpenBSD"
            | "NetBSD"
            | "Solaris"
            | "Mint"
            | "Arch Linux"
            | "SUSE"
            | "openSUSE"
    );
    if desktop_os || device == "Mac" {
        return "Desktop";
    }
    ""
}

/// Where Client Hints are present they win: the brand (the user-agent string of Edge, Opera
/// and Brave can say Chrome), whether it is a phone, and the platform.
fn apply_hints(info: &mut UaInfo, hints: &ClientHints<'_>) {
    if hints.brands.len() <= MAX_HINT_BYTES
        && let Some((brand, major)) = brand(hints.brands)
    {
        info.browser = brand.to_string();
        info.browser_version = major;
    }
    let platform = sf_string(hints.platform).and_then(|p| match p {
        "Windows" => Some("Windows"),
        "macOS" => Some("Mac"),
        "Linux" => Some("GNU/Linux"),
        "Android" => Some("Android"),
        "Chrome OS" | "Chromium OS" => Some("Chrome OS"),
        "iOS" => Some("iOS"),
        _ => None,
    });
    if let Some(os) = platform
        && info.os != os
    {
        // The string's version belongs to the OS it named.
        info.os = os.to_string();
        info.os_version = String::new();
    }
    let os = info.os.as_str();
    match hints.mobile.trim() {
        "?1" => info.device = "Mobile".into(),
        "?0" if os == "Android" => info.device = "Tablet".into(),
        "?0" if matches!(os, "Windows" | "Mac" | "GNU/Linux" | "Chrome OS") => {
            info.device = "Desktop".into();
        }
        _ => {}
    }
}

/// The unquoted value of an RFC 8941 string (`"Windows"`), if it is one.
fn sf_string(value: &str) -> Option<&str> {
    let v = value.trim();
    if v.len() > MAX_HINT_BYTES {
        return None;
    }
    v.strip_prefix('"')?
        .strip_suffix('"')
        .filter(|s| !s.contains(['"', '\\']))
}

/// The browser a `Sec-CH-UA` list names, with its major version: the most specific brand
/// (GREASE entries such as `"Not_A Brand"` are skipped; `Chromium` alone means Chromium).
fn brand(header: &str) -> Option<(&'static str, String)> {
    const BRANDS: [(&str, &str); 10] = [
        ("Microsoft Edge", "Microsoft Edge"),
        ("Opera GX", "Opera GX"),
        ("Opera", "Opera"),
        ("Brave", "Brave"),
        ("Samsung Internet", "Samsung Browser"),
        ("YaBrowser", "Yandex Browser"),
        ("DuckDuckGo", "DuckDuckGo Privacy Browser"),
        ("Vivaldi", "Vivaldi"),
        ("Google Chrome", "Chrome"),
        ("Chromium", "Chromium"),
    ];
    let listed: Vec<(&str, &str)> = header
        .split(',')
        .filter_map(|item| {
            let (name, params) = item.trim().split_once(';').unwrap_or((item.trim(), ""));
            let name = sf_string(name)?;
            let version = params
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("v="))
                .find_map(sf_string)
                .unwrap_or("");
            Some((name, version))
        })
        .collect();
    BRANDS.iter().find_map(|(sent, stored)| {
        listed.iter().find(|(name, _)| name == sent).map(|(_, v)| {
            let major = v.split('.').next().unwrap_or("");
            let major = if major.chars().all(|c| c.is_ascii_digit()) && major.len() <= 6 {
                major
            } else {
                ""
            };
            (*stored, major.to_string())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ua(s: &str) -> UaInfo {
        UaParser::default().parse_uncached(s, &ClientHints::default())
    }

    fn with_hints(s: &str, brands: &str, mobile: &str, platform: &str) -> UaInfo {
        UaParser::default().parse_uncached(
            s,
            &ClientHints {
                brands,
                mobile,
                platform,
            },
        )
    }

    fn names(i: &UaInfo) -> (&str, &str, &str, &str, &str) {
        (
            i.browser.as_str(),
            i.browser_version.as_str(),
            i.os.as_str(),
            i.os_version.as_str(),
            i.device.as_str(),
        )
    }

    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    #[test]
    fn plausible_names_for_common_browsers() {
        for (s, want) in [
            (
                CHROME_WINDOWS,
                ("Chrome", "131", "Windows", "10", "Desktop"),
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
                ("Firefox", "133", "Mac", "10.15", "Desktop"),
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                ("Safari", "17", "iOS", "17.5", "Mobile"),
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
                ("Chrome", "120", "Android", "14", "Mobile"),
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
                ("Microsoft Edge", "131", "Windows", "10", "Desktop"),
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 OPR/114.0.0.0",
                ("Opera", "114", "Windows", "10", "Desktop"),
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
                ("Samsung Browser", "25", "Android", "14", "Mobile"),
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
                ("Firefox", "133", "GNU/Linux", "", "Desktop"),
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                ("Chrome", "131", "Chrome OS", "14541.0", "Desktop"),
            ),
            (
                "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
                ("Internet Explorer", "11", "Windows", "7", "Desktop"),
            ),
        ] {
            assert_eq!(names(&ua(s)), want, "{s}");
        }
    }

    #[test]
    fn tablets_and_in_app_browsers() {
        let ipad = ua(
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(
            (ipad.os.as_str(), ipad.device.as_str()),
            ("iPadOS", "Tablet")
        );
        let tab = ua(
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        );
        assert_eq!(names(&tab), ("Chrome", "120", "Android", "13", "Tablet"));
        let instagram = ua(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 334.0.4.32.98 (iPhone14,5; iOS 17_5; en_US; en; scale=3.00; 1170x2532; 609118149)",
        );
        assert_eq!(
            (instagram.browser.as_str(), instagram.device.as_str()),
            ("Mobile App", "Mobile")
        );
    }

    #[test]
    fn crawlers_are_flagged_and_garbage_is_not_set() {
        for s in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
        ] {
            assert!(ua(s).is_bot, "{s}");
        }
        let g = ua("\u{0}\u{1}garbage");
        assert_eq!(names(&g), ("", "", "", "", ""));
        assert!(!g.is_bot);
        assert!(!ua(CHROME_WINDOWS).is_bot);
    }

    #[test]
    fn client_hints_name_the_brand_the_platform_and_phones() {
        // Edge, Brave and Opera with a user-agent string that says Chrome.
        let edge = with_hints(
            CHROME_WINDOWS,
            r#""Microsoft Edge";v="131", "Chromium";v="131", "Not_A Brand";v="24""#,
            "?0",
            r#""Windows""#,
        );
        assert_eq!(
            names(&edge),
            ("Microsoft Edge", "131", "Windows", "10", "Desktop")
        );
        let brave = with_hints(
            CHROME_WINDOWS,
            r#""Brave";v="131", "Chromium";v="131", "Not_A Brand";v="24""#,
            "?0",
            r#""Windows""#,
        );
        assert_eq!(brave.browser, "Brave");
        let chrome = with_hints(
            CHROME_WINDOWS,
            r#""Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24""#,
            "?0",
            r#""Windows""#,
        );
        assert_eq!(chrome.browser, "Chrome");
        // A frozen Android string (`Android 10; K`) and a Mac that is really on Windows
        // (spoofed or mis-set string): the platform hint wins and the string's version goes.
        let frozen = with_hints(
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            r#""Chromium";v="131", "Google Chrome";v="131", "Not_A Brand";v="24""#,
            "?1",
            r#""Android""#,
        );
        assert_eq!(names(&frozen), ("Chrome", "131", "Android", "10", "Mobile"));
        let mac_string = with_hints(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            r#""Opera";v="114", "Chromium";v="129", "Not=A?Brand";v="8""#,
            "?0",
            r#""Windows""#,
        );
        assert_eq!(
            names(&mac_string),
            ("Opera", "114", "Windows", "", "Desktop")
        );
        // Debian's Chromium sends only Chromium and GREASE.
        let chromium = with_hints(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
            r#""Not:A-Brand";v="8", "Chromium";v="156""#,
            "?0",
            r#""Linux""#,
        );
        assert_eq!(
            names(&chromium),
            ("Chromium", "156", "GNU/Linux", "", "Desktop")
        );
        // Nonsense hints change nothing.
        let odd = with_hints(CHROME_WINDOWS, "garbage;;,", "maybe", "\"Plan 9\"");
        assert_eq!(names(&odd), names(&ua(CHROME_WINDOWS)));
        let long = "x".repeat(MAX_HINT_BYTES + 1);
        assert_eq!(
            names(&with_hints(CHROME_WINDOWS, &long, "", &long)),
            names(&ua(CHROME_WINDOWS))
        );
    }

    #[test]
    fn cache_answers_the_same_and_keys_on_the_hints() {
        let p = UaParser::new(4);
        let s = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        let none = ClientHints::default();
        let a = p.parse(s, &none);
        let b = p.parse(s, &none);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*a, p.parse_uncached(s, &none));
        let hinted = ClientHints {
            brands: r#""Brave";v="131""#,
            mobile: "?0",
            platform: r#""Windows""#,
        };
        assert_eq!(p.parse(CHROME_WINDOWS, &hinted).browser, "Brave");
        assert_eq!(p.parse(CHROME_WINDOWS, &none).browser, "Chrome");
    }
}
