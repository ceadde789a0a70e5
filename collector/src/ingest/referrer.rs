//! Referrer and UTM → source name and channel.
//!
//! The referrer is cut to host + path (query and fragment dropped); a referrer from the page's
//! own host is ignored. A host is matched against Footfall's own list of well-known sources,
//! first exactly, then by its parent domains, then by brand (`google.co.uk`, `amazon.de`).
//! Without a referrer, `utm_source` or the `ref`/`source` hint names the source. The channel
//! follows the usual marketing grouping (paid before organic, then e-mail, referral, direct).

use std::collections::HashMap;
use std::sync::LazyLock;

use super::page::{Page, strip_www};

/// What kind of place a source is; decides its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Search,
    Social,
    Video,
    Email,
    Shopping,
    Other,
}

struct Known {
    name: &'static str,
    category: Category,
    /// Hosts, matched exactly or as a parent domain.
    hosts: &'static [&'static str],
    /// Second-level names matched under any short country suffix (`google` → `google.com.br`).
    brand: Option<&'static str>,
    /// Lower-case `utm_source` values that mean this source.
    aliases: &'static [&'static str],
}

const fn k(
    name: &'static str,
    category: Category,
    hosts: &'static [&'static str],
    brand: Option<&'static str>,
    aliases: &'static [&'static str],
) -> Known {
    Known {
        name,
        category,
        hosts,
        brand,
        aliases,
    }
}

use Category::{Email, Other, Search, Shopping, Social, Video};

static KNOWN: &[Known] = &[
    // Search engines
    k(
        "Google",
        Search,
        &["google.com"],
        Some("google"),
        &["google", "adwords", "googleads"],
    ),
    k(
        "Bing",
        Search,
        &["bing.com"],
        Some("bing"),
        &["bing", "msn"],
    ),
    k(
        "DuckDuckGo",
        Search,
        &["duckduckgo.com", "ddg.gg"],
        None,
        &["duckduckgo", "ddg"],
    ),
    k(
        "Yahoo!",
        Search,
        &["yahoo.com", "search.yahoo.com"],
        Some("yahoo"),
        &["yahoo"],
    ),
    k(
        "Yandex",
        Search,
        &["yandex.ru", "ya.ru"],
        Some("yandex"),
        &["yandex"],
    ),
    k("Baidu", Search, &["baidu.com"], Some("baidu"), &["baidu"]),
    k("Ecosia", Search, &["ecosia.org"], None, &["ecosia"]),
    k(
        "Brave Search",
        Search,
        &["search.brave.com"],
        None,
        &["brave"],
    ),
    k(
        "Startpage",
        Search,
        &["startpage.com"],
        None,
        &["startpage"],
    ),
    k("Qwant", Search, &["qwant.com"], None, &["qwant"]),
    k("Naver", Search, &["naver.com"], None, &["naver"]),
    k("Seznam", Search, &["seznam.cz"], None, &["seznam"]),
    k("Ask", Search, &["ask.com"], None, &["ask"]),
    k(
        "AOL",
        Search,
        &["search.aol.com", "aol.com"],
        None,
        &["aol"],
    ),
    k("Sogou", Search, &["sogou.com"], None, &["sogou"]),
    k("360 Search", Search, &["so.com"], None, &[]),
    k("Kagi", Search, &["kagi.com"], None, &["kagi"]),
    k("Mojeek", Search, &["mojeek.com"], None, &["mojeek"]),
    k("Daum", Search, &["daum.net"], None, &["daum"]),
    k("Petal Search", Search, &["petalsearch.com"], None, &[]),
    k(
        "Perplexity",
        Search,
        &["perplexity.ai"],
        None,
        &["perplexity"],
    ),
    // AI assistants that link out
    k(
        "ChatGPT",
        Other,
        &["chatgpt.com", "chat.openai.com"],
        None,
        &["chatgpt", "chatgpt.com", "openai"],
    ),
    k("Claude", Other, &["claude.ai"], None, &["claude"]),
    k("Gemini", Other, &["gemini.google.com"], None, &["gemini"]),
    k(
        "Microsoft Copilot",
        Other,
        &["copilot.microsoft.com"],
        None,
        &["copilot"],
    ),
    // Social networks and communities
    k(
        "Facebook",
        Social,
        &["facebook.com", "fb.com", "fb.me"],
        Some("facebook"),
        &["facebook", "fb"],
    ),
    k(
        "Instagram",
        Social,
        &["instagram.com"],
        None,
        &["instagram", "ig"],
    ),
    k(
        "Twitter",
        Social,
        &["twitter.com", "t.co", "x.com"],
        None,
        &["twitter", "x", "x.com"],
    ),
    k(
        "LinkedIn",
        Social,
        &["linkedin.com", "lnkd.in"],
        None,
        &["linkedin"],
    ),
    k(
        "Reddit",
        Social,
        &["reddit.com", "redd.it"],
        None,
        &["reddit"],
    ),
    k(
        "Pinterest",
        Social,
        &["pinterest.com", "pin.it"],
        Some("pinterest"),
        &["pinterest"],
    ),
    k("Tumblr", Social, &["tumblr.com"], None, &["tumblr"]),
    k("Quora", Social, &["quora.com"], None, &["quora"]),
    k(
        "VKontakte",
        Social,
        &["vk.com", "vk.ru"],
        None,
        &["vk", "vkontakte"],
    ),
    k(
        "Mastodon",
        Social,
        &[
            "mastodon.social",
            "mastodon.online",
            "mstdn.social",
            "fosstodon.org",
            "hachyderm.io",
        ],
        None,
        &["mastodon"],
    ),
    k(
        "Bluesky",
        Social,
        &["bsky.app", "bsky.social"],
        None,
        &["bluesky", "bsky"],
    ),
    k(
        "Threads",
        Social,
        &["threads.net", "threads.com"],
        None,
        &["threads"],
    ),
    k(
        "Hacker News",
        Social,
        &["news.ycombinator.com"],
        None,
        &["hackernews", "hacker news", "hn", "ycombinator"],
    ),
    k(
        "Product Hunt",
        Social,
        &["producthunt.com"],
        None,
        &["producthunt", "product hunt"],
    ),
    k(
        "Telegram",
        Social,
        &["t.me", "telegram.org", "telegram.me"],
        None,
        &["telegram"],
    ),
    k(
        "WhatsApp",
        Social,
        &["whatsapp.com", "wa.me"],
        None,
        &["whatsapp"],
    ),
    k(
        "Discord",
        Social,
        &["discord.com", "discordapp.com", "discord.gg"],
        None,
        &["discord"],
    ),
    k("Slack", Social, &["slack.com"], None, &["slack"]),
    k("Snapchat", Social, &["snapchat.com"], None, &["snapchat"]),
    k("TikTok", Social, &["tiktok.com"], None, &["tiktok"]),
    k(
        "Weibo",
        Social,
        &["weibo.com", "weibo.cn"],
        None,
        &["weibo"],
    ),
    k(
        "WeChat",
        Social,
        &["wechat.com", "weixin.qq.com"],
        None,
        &["wechat", "weixin"],
    ),
    k("XING", Social, &["xing.com"], None, &["xing"]),
    k("Lobsters", Social, &["lobste.rs"], None, &["lobsters"]),
    k(
        "DEV Community",
        Social,
        &["dev.to"],
        None,
        &["dev.to", "devto"],
    ),
    k("Medium", Social, &["medium.com"], None, &["medium"]),
    k(
        "Stack Overflow",
        Social,
        &["stackoverflow.com", "stackexchange.com"],
        None,
        &["stackoverflow"],
    ),
    k("LINE", Social, &["line.me"], None, &["line"]),
    k(
        "Messenger",
        Social,
        &["messenger.com"],
        None,
        &["messenger"],
    ),
    k("Nextdoor", Social, &["nextdoor.com"], None, &["nextdoor"]),
    k(
        "Lemmy",
        Social,
        &["lemmy.world", "lemmy.ml"],
        None,
        &["lemmy"],
    ),
    // Video
    k(
        "YouTube",
        Video,
        &["youtube.com", "youtu.be"],
        None,
        &["youtube", "yt"],
    ),
    k("Vimeo", Video, &["vimeo.com"], None, &["vimeo"]),
    k("Twitch", Video, &["twitch.tv"], None, &["twitch"]),
    k(
        "Dailymotion",
        Video,
        &["dailymotion.com"],
        None,
        &["dailymotion"],
    ),
    // Web mail
    k("Gmail", Email, &["mail.google.com"], None, &["gmail"]),
    k(
        "Outlook.com",
        Email,
        &[
            "outlook.live.com",
            "outlook.office.com",
            "outlook.office365.com",
        ],
        None,
        &["outlook"],
    ),
    k(
        "Yahoo! Mail",
        Email,
        &["mail.yahoo.com", "mail.yahoo.co.jp"],
        None,
        &["yahoo mail"],
    ),
    k(
        "Proton Mail",
        Email,
        &["mail.proton.me", "mail.protonmail.com"],
        None,
        &["protonmail", "proton"],
    ),
    k(
        "GMX",
        Email,
        &["gmx.net", "gmx.de", "gmx.com"],
        None,
        &["gmx"],
    ),
    k("WEB.DE", Email, &["web.de"], None, &["web.de"]),
    k(
        "Zoho Mail",
        Email,
        &["mail.zoho.com", "mail.zoho.eu"],
        None,
        &[],
    ),
    k("Fastmail", Email, &["fastmail.com"], None, &["fastmail"]),
    // Shopping
    k(
        "Amazon",
        Shopping,
        &["amazon.com"],
        Some("amazon"),
        &["amazon"],
    ),
    k("eBay", Shopping, &["ebay.com"], Some("ebay"), &["ebay"]),
    k("Etsy", Shopping, &["etsy.com"], None, &["etsy"]),
    k(
        "AliExpress",
        Shopping,
        &["aliexpress.com"],
        None,
        &["aliexpress"],
    ),
    k("Walmart", Shopping, &["walmart.com"], None, &["walmart"]),
    k("Shopify", Shopping, &["shopify.com"], None, &["shopify"]),
    // Other well-known referrers
    k("GitHub", Other, &["github.com"], None, &["github"]),
    k("GitLab", Other, &["gitlab.com"], None, &["gitlab"]),
    k("Wikipedia", Other, &["wikipedia.org"], None, &["wikipedia"]),
    k(
        "Notion",
        Other,
        &["notion.so", "notion.site"],
        None,
        &["notion"],
    ),
    k("Substack", Other, &["substack.com"], None, &["substack"]),
];

struct Index {
    by_host: HashMap<&'static str, &'static Known>,
    by_brand: HashMap<&'static str, &'static Known>,
    by_alias: HashMap<String, &'static Known>,
}

static INDEX: LazyLock<Index> = LazyLock::new(|| {
    let mut index = Index {
        by_host: HashMap::new(),
        by_brand: HashMap::new(),
        by_alias: HashMap::new(),
    };
    for known in KNOWN {
        for host in known.hosts {
            index.by_host.insert(host, known);
        }
        if let Some(brand) = known.brand {
            index.by_brand.insert(brand, known);
        }
        index.by_alias.insert(known.name.to_lowercase(), known);
        for alias in known.aliases {
            index.by_alias.insert((*alias).to_string(), known);
        }
    }
    index
});

/// How many sources Footfall knows by name.
pub fn known_source_count() -> usize {
    KNOWN.len()
}

fn lookup_host(host: &str) -> Option<&'static Known> {
    let index = &*INDEX;
    let mut rest = host;
    loop {
        if let Some(k) = index.by_host.get(rest) {
            return Some(k);
        }
        match rest.split_once('.') {
            Some((_, parent)) if parent.contains('.') => rest = parent,
            _ => break,
        }
    }
    // Brand under a country suffix: the brand label followed by at most two short labels.
    let labels: Vec<&str> = host.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        let suffix = &labels[i + 1..];
        if !suffix.is_empty()
            && suffix.len() <= 2
            && suffix.iter().all(|l| l.len() <= 3)
            && let Some(k) = index.by_brand.get(label)
        {
            return Some(k);
        }
    }
    None
}

/// Where a visit came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Source {
    /// Referrer host + path; empty without a (foreign) referrer.
    pub referrer: String,
    /// Source name: a well-known name, else the referrer's host, else the UTM source.
    pub source: String,
    pub channel: String,
}

/// The host of a referrer URL, lower-cased and without `www.`; `None` if it is not an
/// http(s) URL with a host.
pub fn referrer_host(referrer: &str) -> Option<String> {
    let url = url::Url::parse(referrer).ok()?;
    if !matches!(url.scheme(), "http" | "https" | "android-app") {
        return None;
    }
    url.host_str()
        .filter(|h| !h.is_empty())
        .map(|h| strip_www(&h.to_ascii_lowercase()).to_string())
}

/// Classifies the referrer and UTM parameters of a page view.
pub fn classify(referrer: Option<&str>, page: &Page) -> Source {
    let mut out = Source::default();
    let mut category = None;
    if let Some(raw) = referrer
        && let (Some(host), Ok(url)) = (referrer_host(raw), url::Url::parse(raw))
        && host != page.hostname
    {
        let path = url.path();
        out.referrer = if path == "/" {
            host.clone()
        } else {
            format!("{host}{path}")
        };
        match lookup_host(&host) {
            Some(k) => {
                out.source = k.name.to_string();
                category = Some(k.category);
            }
            None => out.source = host,
        }
    }
    let utm_source = page.utm.source.to_lowercase();
    if out.source.is_empty() {
        let hint = if utm_source.is_empty() {
            page.source_hint.as_deref().unwrap_or("").to_lowercase()
        } else {
            utm_source.clone()
        };
        if !hint.is_empty() {
            match INDEX
                .by_alias
                .get(hint.as_str())
                .copied()
                .or_else(|| lookup_host(&hint))
            {
                Some(k) => {
                    out.source = k.name.to_string();
                    category = Some(k.category);
                }
                None => {
                    out.source = if utm_source.is_empty() {
                        page.source_hint.clone().unwrap_or_default()
                    } else {
                        page.utm.source.clone()
                    }
                }
            }
        }
    }
    out.channel = channel(
        category,
        &page.utm.medium.to_lowercase(),
        &utm_source,
        !out.source.is_empty(),
    )
    .to_string();
    out
}

/// Footfall's name of a source another tool names `raw` (a lower-case name such as
/// `google`, an alias or a host), or `raw` itself when Footfall does not know it.
pub fn source_name(raw: &str) -> String {
    let lower = raw.to_lowercase();
    INDEX
        .by_alias
        .get(lower.as_str())
        .copied()
        .or_else(|| lookup_host(&lower))
        .map_or_else(|| raw.to_string(), |k| k.name.to_string())
}

/// The channel of a visit known only by its source name (a well-known name such as
/// `Google`, a host, or a UTM source), referrer (host and path) and UTM source and medium, as
/// other tools' exports give them.
pub fn channel_of(
    source: &str,
    referrer: &str,
    utm_source: &str,
    utm_medium: &str,
) -> &'static str {
    let host = referrer.split('/').next().unwrap_or("");
    let known = INDEX
        .by_alias
        .get(source.to_lowercase().as_str())
        .copied()
        .or_else(|| lookup_host(&source.to_lowercase()))
        .or_else(|| lookup_host(host).filter(|_| !host.is_empty()));
    channel(
        known.map(|k| k.category),
        &utm_medium.to_lowercase(),
        &utm_source.to_lowercase(),
        !source.is_empty(),
    )
}

fn channel(
    category: Option<Category>,
    medium: &str,
    utm_source: &str,
    has_source: bool,
) -> &'static str {
    let paid = matches!(
        medium,
        "cpc"
            | "ppc"
            | "paid"
            | "paidsearch"
            | "paid_search"
            | "paid-search"
            | "paidsocial"
            | "paid_social"
            | "paid-social"
            | "retargeting"
            | "cpv"
            | "cpa"
            | "cpp"
    ) || medium.starts_with("paid");
    if paid {
        return match category {
            Some(Search) => "Paid Search",
            Some(Social) => "Paid Social",
            Some(Video) => "Paid Video",
            Some(Shopping) => "Paid Shopping",
            _ if medium.contains("social") => "Paid Social",
            _ => "Paid Other",
        };
    }
    if matches!(
        medium,
        "display" | "banner" | "expandable" | "interstitial" | "cpm"
    ) {
        return "Display";
    }
    let email_word = |s: &str| {
        matches!(
            s,
            "email" | "e-mail" | "e_mail" | "e mail" | "newsletter" | "mail"
        )
    };
    match category {
        _ if medium == "organic" => "Organic Search",
        Some(Search) => "Organic Search",
        Some(Social) => "Organic Social",
        _ if matches!(
            medium,
            "social" | "social-network" | "social-media" | "sm" | "social network" | "social media"
        ) =>
        {
            "Organic Social"
        }
        Some(Video) => "Organic Video",
        _ if medium.contains("video") => "Organic Video",
        Some(Shopping) => "Organic Shopping",
        Some(Email) => "Email",
        _ if email_word(medium) || email_word(utm_source) => "Email",
        _ if medium == "affiliate" => "Affiliates",
        _ if medium == "sms" || utm_source == "sms" => "SMS",
        _ if medium == "audio" => "Audio",
        _ if matches!(medium, "push" | "mobile" | "notification") => "Mobile Push Notifications",
        _ if has_source || !medium.is_empty() => "Referral",
        _ => "Direct",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::page::normalise;

    fn src(referrer: Option<&str>, url: &str) -> Source {
        classify(referrer, &normalise(url, false).unwrap())
    }

    #[test]
    fn at_least_sixty_sources() {
        assert!(known_source_count() >= 60, "{}", known_source_count());
        let names: std::collections::HashSet<_> = KNOWN.iter().map(|k| k.name).collect();
        assert_eq!(names.len(), KNOWN.len(), "duplicate source names");
    }

    #[test]
    fn search_engines_by_host_and_brand() {
        for (r, name) in [
            ("https://www.google.com/", "Google"),
            ("https://www.google.co.uk/", "Google"),
            ("https://google.com.br/search", "Google"),
            ("https://www.bing.com/search?q=x", "Bing"),
            ("https://duckduckgo.com/", "DuckDuckGo"),
            ("https://search.yahoo.co.jp/", "Yahoo!"),
            ("https://yandex.ru/", "Yandex"),
        ] {
            let s = src(Some(r), "https://a.org/");
            assert_eq!(
                (s.source.as_str(), s.channel.as_str()),
                (name, "Organic Search"),
                "{r}"
            );
        }
    }

    #[test]
    fn social_video_email_shopping() {
        for (r, name, channel) in [
            (
                "https://l.facebook.com/l.php?u=x",
                "Facebook",
                "Organic Social",
            ),
            ("https://t.co/abc", "Twitter", "Organic Social"),
            ("https://x.com/someone", "Twitter", "Organic Social"),
            (
                "https://www.linkedin.com/feed/",
                "LinkedIn",
                "Organic Social",
            ),
            ("https://old.reddit.com/r/rust/", "Reddit", "Organic Social"),
            (
                "https://news.ycombinator.com/item?id=1",
                "Hacker News",
                "Organic Social",
            ),
            (
                "https://m.youtube.com/watch?v=1",
                "YouTube",
                "Organic Video",
            ),
            ("https://mail.google.com/mail/u/0/", "Gmail", "Email"),
            ("https://www.amazon.de/dp/1", "Amazon", "Organic Shopping"),
            ("https://github.com/org/repo", "GitHub", "Referral"),
        ] {
            let s = src(Some(r), "https://a.org/");
            assert_eq!(
                (s.source.as_str(), s.channel.as_str()),
                (name, channel),
                "{r}"
            );
        }
    }

    #[test]
    fn referrer_is_host_and_path_without_query() {
        let s = src(
            Some("https://news.ycombinator.com/item?id=1"),
            "https://a.org/",
        );
        assert_eq!(s.referrer, "news.ycombinator.com/item");
        let s = src(Some("https://blog.example.net/"), "https://a.org/");
        assert_eq!(
            (s.referrer.as_str(), s.source.as_str(), s.channel.as_str()),
            ("blog.example.net", "blog.example.net", "Referral")
        );
    }

    #[test]
    fn own_site_and_missing_referrer_are_direct() {
        assert_eq!(
            src(Some("https://www.a.org/other"), "https://a.org/").channel,
            "Direct"
        );
        assert_eq!(src(None, "https://a.org/").channel, "Direct");
        assert_eq!(src(Some("not a url"), "https://a.org/").channel, "Direct");
    }

    #[test]
    fn utm_decides_without_referrer_and_paid_before_organic() {
        let s = src(
            None,
            "https://a.org/?utm_source=newsletter&utm_medium=email",
        );
        assert_eq!(
            (s.source.as_str(), s.channel.as_str()),
            ("newsletter", "Email")
        );
        let s = src(
            Some("https://www.google.com/"),
            "https://a.org/?utm_medium=cpc",
        );
        assert_eq!(s.channel, "Paid Search");
        let s = src(None, "https://a.org/?utm_source=fb&utm_medium=paid_social");
        assert_eq!(
            (s.source.as_str(), s.channel.as_str()),
            ("Facebook", "Paid Social")
        );
        let s = src(None, "https://a.org/?ref=producthunt");
        assert_eq!(
            (s.source.as_str(), s.channel.as_str()),
            ("Product Hunt", "Organic Social")
        );
        let s = src(None, "https://a.org/?utm_medium=display");
        assert_eq!(s.channel, "Display");
        let s = src(None, "https://a.org/?utm_source=partner-site");
        assert_eq!(
            (s.source.as_str(), s.channel.as_str()),
            ("partner-site", "Referral")
        );
    }
}
