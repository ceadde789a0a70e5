//! Server access log lines: the NCSA common and combined formats as Apache httpd and nginx
//! write them, and Debian's `vhost_combined` (`host:port` in front).
//!
//! ```text
//! 203.0.113.9 - - [10/Oct/2026:13:55:36 -0700] "GET /docs/?utm_source=x HTTP/1.1" 200 2326 "https://www.google.com/" "Mozilla/5.0 …"
//! ```
//!
//! Quoted fields undo both servers' escapes (Apache `\"` and `\\`, nginx `\x22`; any
//! `\xHH`), so a path or user-agent with UTF-8 reads back as the browser sent it. Fields after
//! the user-agent (`%I %O`, `$request_time`) are ignored.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

/// The layout of a log's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Combined, else common, else combined with a virtual host, decided line by line.
    Auto,
    /// `%h %l %u %t "%r" %>s %b` (no referrer or user-agent: every line is dropped as a bot,
    /// since a visit cannot be told from a crawler without a user-agent).
    Common,
    /// `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"` (Apache's and nginx's default).
    Combined,
    /// `%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"` (Debian's Apache).
    CombinedVhost,
}

/// One request, as the log line states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The virtual host (`combined-vhost`), without its port.
    pub host: Option<String>,
    pub client_ip: IpAddr,
    pub time: DateTime<Utc>,
    pub method: String,
    /// The request target as sent: a path with its query, or an absolute URL.
    pub target: String,
    pub status: u16,
    pub referrer: Option<String>,
    pub user_agent: String,
}

/// Why a line is not a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("not a {0} log line")]
    Layout(&'static str),
    #[error("client address `{0}` is not an IP address")]
    Address(String),
    #[error("time `{0}` is not `day/Mon/year:hh:mm:ss +zone`")]
    Time(String),
    #[error("status `{0}` is not a number from 100 to 599")]
    Status(String),
    #[error("request line `{0}` is not `METHOD target [protocol]`")]
    Request(String),
}

/// Longest line read, in bytes; a longer one is malformed.
pub const MAX_LINE: usize = 64 * 1024;

/// Reads one line in `format`.
pub fn parse(line: &str, format: Format) -> Result<Hit, LineError> {
    match format {
        Format::Common => parse_ncsa(line, false, false),
        Format::Combined => parse_ncsa(line, false, true),
        Format::CombinedVhost => parse_ncsa(line, true, true),
        Format::Auto => parse_ncsa(line, false, true)
            .or_else(|_| parse_ncsa(line, true, true))
            .or_else(|_| parse_ncsa(line, false, false)),
    }
}

fn layout(vhost: bool, combined: bool) -> LineError {
    LineError::Layout(match (vhost, combined) {
        (true, _) => "combined-vhost",
        (false, true) => "combined",
        (false, false) => "common",
    })
}

fn parse_ncsa(line: &str, vhost: bool, combined: bool) -> Result<Hit, LineError> {
    let bad = || layout(vhost, combined);
    let mut rest = line.trim_end_matches(['\r', '\n']);
    let host = if vhost {
        let (field, r) = word(rest).ok_or_else(bad)?;
        rest = r;
        Some(strip_port(field).to_ascii_lowercase())
    } else {
        None
    };
    let (ip, r) = word(rest).ok_or_else(bad)?;
    let client_ip = ip
        .parse::<IpAddr>()
        .map_err(|_| LineError::Address(shorten(ip)))?;
    let (_ident, r) = word(r).ok_or_else(bad)?;
    let (_user, r) = word(r).ok_or_else(bad)?;
    let r = r.trim_start().strip_prefix('[').ok_or_else(bad)?;
    let (stamp, r) = r.split_once(']').ok_or_else(bad)?;
    let time = DateTime::parse_from_str(stamp, "%d/%b/%Y:%H:%M:%S %z")
        .map_err(|_| LineError::Time(shorten(stamp)))?
        .with_timezone(&Utc);
    let (request, r) = quoted(r).ok_or_else(bad)?;
    let (status, r) = word(r).ok_or_else(bad)?;
    let status = status
        .parse::<u16>()
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| LineError::Status(shorten(status)))?;
    let (_size, r) = word(r).ok_or_else(bad)?;
    let (referrer, user_agent) = if combined {
        let (referrer, r) = quoted(r).ok_or_else(bad)?;
        let (user_agent, _extra) = quoted(r).ok_or_else(bad)?;
        (referrer, user_agent)
    } else {
        if !r.trim().is_empty() {
            return Err(bad());
        }
        (String::new(), String::new())
    };
    let mut parts = request.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(LineError::Request(shorten(&request)));
    };
    let protocol_ok = parts.next().is_none_or(|p| p.starts_with("HTTP/"));
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || target.is_empty()
        || !protocol_ok
        || parts.next().is_some()
    {
        return Err(LineError::Request(shorten(&request)));
    }
    Ok(Hit {
        host,
        client_ip,
        time,
        method: method.to_string(),
        target: target.to_string(),
        status,
        referrer: (!referrer.is_empty() && referrer != "-").then_some(referrer),
        user_agent: if user_agent == "-" {
            String::new()
        } else {
            user_agent
        },
    })
}

/// The next space-separated field and what follows it.
fn word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    Some(match s.find(' ') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    })
}

/// The next double-quoted field, unescaped, and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start_matches(' ').strip_prefix('"')?;
    let bytes = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len().min(512));
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let text = String::from_utf8_lossy(&out).into_owned();
                return Some((text, &s[i + 1..]));
            }
            b'\\' if i + 1 < bytes.len() => {
                let next = bytes[i + 1];
                let hex = |b: u8| (b as char).to_digit(16);
                if next == b'x'
                    && i + 3 < bytes.len()
                    && let (Some(h), Some(l)) = (hex(bytes[i + 2]), hex(bytes[i + 3]))
                {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 4;
                    continue;
                }
                out.push(match next {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    other => other,
                });
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

fn strip_port(host: &str) -> &str {
    if let Some(inner) = host.strip_prefix('[') {
        return inner.split(']').next().unwrap_or(inner);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// At most 80 characters of `s`, for error messages.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Extensions of files that are not pages: styles, scripts, images, fonts, media, archives,
/// documents and feeds. A request for one is not a pageview.
const ASSETS: &[&str] = &[
    "7z",
    "avi",
    "avif",
    "bmp",
    "br",
    "css",
    "csv",
    "doc",
    "docx",
    "eot",
    "epub",
    "exe",
    "flac",
    "gif",
    "gz",
    "ico",
    "jpeg",
    "jpg",
    "js",
    "json",
    "map",
    "mjs",
    "mov",
    "mp3",
    "mp4",
    "ogg",
    "otf",
    "pdf",
    "png",
    "ppt",
    "pptx",
    "rar",
    "rss",
    "svg",
    "tar",
    "tgz",
    "tif",
    "tiff",
    "ttf",
    "txt",
    "wasm",
    "wav",
    "webm",
    "webmanifest",
    "webp",
    "woff",
    "woff2",
    "xls",
    "xlsx",
    "xml",
    "zip",
];

/// Why a request is not a pageview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotPage {
    /// Not a GET.
    Method,
    /// Not a success: an error, a redirect (a 304 is a page served from the browser's cache,
    /// and counts).
    Status,
    /// A file that is not a page (see [`ASSETS`]).
    Asset,
}

/// Whether `hit` is a pageview: a successful GET of something that is not an asset.
pub fn pageview(hit: &Hit) -> Result<(), NotPage> {
    if hit.method != "GET" {
        return Err(NotPage::Method);
    }
    if !((200..300).contains(&hit.status) || hit.status == 304) {
        return Err(NotPage::Status);
    }
    let path = hit
        .target
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if let Some((_, ext)) = path.rsplit_once('.')
        && ASSETS.contains(&ext.to_ascii_lowercase().as_str())
    {
        return Err(NotPage::Asset);
    }
    Ok(())
}

/// Whether `path` matches `pattern`, where `*` stands for any run of characters (`/admin/*`,
/// `*/feed`).
pub fn wildcard(pattern: &str, path: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == path;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !path.starts_with(first) || path.len() < first.len() + last.len() || !path.ends_with(last) {
        return false;
    }
    let mut rest = &path[first.len()..path.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    #[test]
    fn combined_lines_from_apache_and_nginx_read_back() {
        let line = format!(
            r#"203.0.113.9 - frank [10/Oct/2026:13:55:36 -0700] "GET /docs/?utm_source=x HTTP/1.1" 200 2326 "https://www.google.com/" "{CHROME}""#
        );
        let hit = parse(&line, Format::Combined).unwrap();
        assert_eq!(hit.client_ip.to_string(), "203.0.113.9");
        assert_eq!(hit.time.to_rfc3339(), "2026-10-10T20:55:36+00:00");
        assert_eq!(
            (hit.method.as_str(), hit.target.as_str(), hit.status),
            ("GET", "/docs/?utm_source=x", 200)
        );
        assert_eq!(hit.referrer.as_deref(), Some("https://www.google.com/"));
        assert_eq!(hit.user_agent, CHROME);
        assert_eq!(parse(&line, Format::Auto).unwrap(), hit);
        // nginx: `-` for an empty size is 0, extra fields after the user-agent.
        let nginx = r#"2001:db8::1 - - [01/Dec/2026:00:00:01 +0000] "GET /caf\xC3\xA9 HTTP/2.0" 304 0 "-" "Say \x22hi\x22" 0.004"#;
        let hit = parse(nginx, Format::Auto).unwrap();
        assert_eq!(hit.target, "/café");
        assert_eq!(hit.referrer, None);
        assert_eq!(hit.user_agent, "Say \"hi\"");
        // Apache's escaped quote.
        let apache =
            r#"10.0.0.1 - - [01/Dec/2026:00:00:01 +0100] "GET / HTTP/1.1" 200 - "-" "a \"b\" c""#;
        assert_eq!(
            parse(apache, Format::Combined).unwrap().user_agent,
            "a \"b\" c"
        );
    }

    #[test]
    fn vhost_and_common_lines() {
        let vhost = format!(
            r#"www.example.com:443 198.51.100.4 - - [02/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 512 "-" "{CHROME}""#
        );
        let hit = parse(&vhost, Format::CombinedVhost).unwrap();
        assert_eq!(hit.host.as_deref(), Some("www.example.com"));
        assert_eq!(parse(&vhost, Format::Auto).unwrap().host, hit.host);
        let common = r#"198.51.100.4 - - [02/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.0" 200 512"#;
        let hit = parse(common, Format::Common).unwrap();
        assert_eq!((hit.user_agent.as_str(), hit.referrer), ("", None));
        assert!(parse(common, Format::Combined).is_err());
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let cases = [
            ("", "not a combined log line"),
            ("garbage", "client address `garbage` is not an IP address"),
            (
                r#"999.1.1.1 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x""#,
                "client address `999.1.1.1` is not an IP address",
            ),
            (
                r#"1.1.1.1 - - [02/13/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x""#,
                "time `02/13/2026:10:00:00 +0000`",
            ),
            (
                r#"1.1.1.1 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 999 1 "-" "x""#,
                "status `999`",
            ),
            (
                r#"1.1.1.1 - - [02/Dec/2026:10:00:00 +0000] "\x16\x03\x01" 400 1 "-" "-""#,
                "request line",
            ),
            (
                r#"1.1.1.1 - - [02/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "unterminated"#,
                "not a combined log line",
            ),
        ];
        for (line, expected) in cases {
            let e = parse(line, Format::Combined).unwrap_err().to_string();
            assert!(e.contains(expected), "{line:?}: {e}");
        }
    }

    #[test]
    fn pageviews_are_successful_gets_of_pages() {
        let hit = |method: &str, target: &str, status: u16| Hit {
            host: None,
            client_ip: "1.1.1.1".parse().unwrap(),
            time: Utc::now(),
            method: method.into(),
            target: target.into(),
            status,
            referrer: None,
            user_agent: CHROME.into(),
        };
        assert_eq!(pageview(&hit("GET", "/", 200)), Ok(()));
        assert_eq!(pageview(&hit("GET", "/blog/post.html?x=1", 304)), Ok(()));
        assert_eq!(pageview(&hit("GET", "/v1.2/", 200)), Ok(()));
        assert_eq!(pageview(&hit("POST", "/", 200)), Err(NotPage::Method));
        assert_eq!(pageview(&hit("GET", "/old", 301)), Err(NotPage::Status));
        assert_eq!(pageview(&hit("GET", "/x", 404)), Err(NotPage::Status));
        assert_eq!(
            pageview(&hit("GET", "/s/app.JS?v=3", 200)),
            Err(NotPage::Asset)
        );
        assert_eq!(
            pageview(&hit("GET", "/favicon.ico", 200)),
            Err(NotPage::Asset)
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("/admin/*", "/admin/users"));
        assert!(!wildcard("/admin/*", "/administrator"));
        assert!(wildcard("*/feed", "/blog/feed"));
        assert!(wildcard("/a/*/b/*", "/a/x/b/y"));
        assert!(!wildcard("/a/*/b", "/a/b"));
        assert!(wildcard("/exact", "/exact"));
        assert!(!wildcard("/exact", "/exact/"));
    }
}
