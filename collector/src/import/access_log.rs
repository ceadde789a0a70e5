//! Server access log lines: the NCSA common and combined formats as Apache httpd and nginx
//! write them, Debian's `vhost_combined` (`host:port` in front), nginx's JSON logs
//! (`log_format … escape=json`, with the field names of the widely copied layouts), and
//! Caddy's JSON access log.
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Decided line by line: a JSON object is Caddy's when it has a `request` object, else
    /// nginx's; other lines are combined, combined with a virtual host, or common.
    Auto,
    /// `%h %l %u %t "%r" %>s %b` (no referrer or user-agent: every line is dropped as a bot,
    /// since a visit cannot be told from a crawler without a user-agent).
    Common,
    /// `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"` (Apache's and nginx's default).
    Combined,
    /// `%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"` (Debian's Apache).
    CombinedVhost,
    /// One JSON object per line from nginx's `log_format … escape=json`: the time in
    /// `time_iso8601`, `@timestamp`, `timestamp`, `time`, `time_local` or `msec`; the client
    /// in `remote_addr`, `client_ip` or `ip`; `request_method` and `request_uri` (or `method`
    /// and `uri`/`url`/`path` with `args`, or `request`); `status`; `host`, `http_host` or
    /// `server_name`; `http_referer` (or `http_referrer`, `referer`, `referrer`);
    /// `http_user_agent` (or `user_agent`).
    NginxJson,
    /// Caddy's JSON access log (`http.log.access`): `ts`, `status`, and the `request` object
    /// (`client_ip` or `remote_ip`, `method`, `host`, `uri`, `headers`).
    CaddyJson,
    /// Amazon CloudFront's standard logs: tab-separated, columns named by the `#Fields`
    /// directive, values URL-encoded, times in UTC; the site's host is `x-host-header`.
    Cloudfront,
    /// The W3C extended log format (IIS's default): space-separated, columns named by the
    /// `#Fields` directive (which may change within a file), `+` for a space in the
    /// user-agent, times in UTC; the host is `cs-host` where it is logged.
    W3c,
}

/// The columns a `#Fields` directive names (CloudFront and W3C/IIS logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    names: Vec<String>,
    /// CloudFront's layout: tabs between values, which are URL-encoded.
    cloudfront: bool,
}

impl Fields {
    /// The columns of a `#Fields: …` line; `None` for any other line.
    pub fn from_directive(line: &str) -> Option<Fields> {
        let names: Vec<String> = line
            .strip_prefix("#Fields:")?
            .split_whitespace()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        let cloudfront = names.iter().any(|n| n.starts_with("x-edge-"));
        Some(Fields { names, cloudfront })
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// Reads one line of a CloudFront or W3C log whose columns `fields` names.
pub fn parse_fields(line: &str, fields: &Fields) -> Result<Hit, LineError> {
    let layout = if fields.cloudfront {
        "cloudfront"
    } else {
        "w3c"
    };
    let values: Vec<&str> = if fields.cloudfront {
        line.trim_end_matches(['\r', '\n']).split('\t').collect()
    } else {
        line.split_whitespace().collect()
    };
    if values.len() < fields.names.len() {
        return Err(LineError::Layout(layout));
    }
    let get = |name: &str| -> Option<String> {
        let v = values.get(fields.index(name)?)?.trim();
        if v.is_empty() || v == "-" {
            return None;
        }
        Some(if fields.cloudfront {
            // CloudFront encodes a `%` already in the request again (`%2520`).
            let once = percent_decode(v);
            if once.contains('%') && v.contains("%25") {
                percent_decode(&once)
            } else {
                once
            }
        } else {
            v.to_string()
        })
    };
    let (date, time) = (
        get("date").unwrap_or_default(),
        get("time").unwrap_or_default(),
    );
    let stamp = format!("{date} {time}");
    let time = chrono::NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%d %H:%M:%S")
        .map_err(|_| LineError::Time(shorten(&stamp)))?
        .and_utc();
    let stem = get("cs-uri-stem").unwrap_or_default();
    let target = match get("cs-uri-query") {
        Some(q) => format!("{stem}?{q}"),
        None => stem,
    };
    let (method, target) = request_parts(&get("cs-method").unwrap_or_default(), &target)?;
    let mut user_agent = get("cs(user-agent)").unwrap_or_default();
    if !fields.cloudfront {
        user_agent = user_agent.replace('+', " ");
    }
    Ok(Hit {
        host: get("x-host-header")
            .or_else(|| get("cs-host"))
            .map(|h| strip_port(&h).to_ascii_lowercase()),
        client_ip: address(get("c-ip"))?,
        time,
        method,
        target,
        status: status_of(get("sc-status"))?,
        referrer: get("cs(referer)"),
        user_agent,
    })
}

/// `%XX` turned back into bytes (read as UTF-8, lossily); anything else kept.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
        Format::NginxJson => parse_nginx_json(line),
        Format::CaddyJson => parse_caddy(line),
        Format::Cloudfront | Format::W3c => Err(LineError::Layout(
            "line before any #Fields directive (CloudFront and W3C logs name their columns)",
        )),
        Format::Auto if line.trim_start().starts_with('{') => {
            if line.contains("\"request\":{") || line.contains("\"request\": {") {
                parse_caddy(line)
            } else {
                parse_nginx_json(line)
            }
        }
        // A line in the combined layout with a bad field (a scanner's binary request) is
        // reported as such, not as a line of the last layout tried.
        Format::Auto => parse_ncsa(line, false, true).or_else(|first| {
            parse_ncsa(line, true, true)
                .or_else(|_| parse_ncsa(line, false, false))
                .map_err(|last| match first {
                    LineError::Layout(_) => last,
                    bad_field => bad_field,
                })
        }),
    }
}

type Object = serde_json::Map<String, serde_json::Value>;

fn object(line: &str, layout: &'static str) -> Result<Object, LineError> {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        _ => Err(LineError::Layout(layout)),
    }
}

/// The first of `keys` in `o` with a value: a string other than `""` and `-`, or a number
/// (as its text).
fn field(o: &Object, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match o.get(*k)? {
        serde_json::Value::String(s) if !s.is_empty() && s != "-" => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A time as JSON logs write it: RFC 3339 (nginx's `$time_iso8601`, Caddy's `iso8601`),
/// seconds since 1970 (a number or its text, with a fraction), or the common log layout.
fn json_time(text: &str) -> Result<DateTime<Utc>, LineError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = text.parse::<f64>()
        && secs.is_finite()
        && (0.0..1e11).contains(&secs)
    {
        let whole = secs.trunc() as i64;
        let nanos = ((secs - secs.trunc()) * 1e9) as u32;
        if let Some(t) = DateTime::from_timestamp(whole, nanos) {
            return Ok(t);
        }
    }
    DateTime::parse_from_str(text, "%d/%b/%Y:%H:%M:%S %z")
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| LineError::Time(shorten(text)))
}

fn status_of(text: Option<String>) -> Result<u16, LineError> {
    let text = text.unwrap_or_default();
    text.parse::<u16>()
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| LineError::Status(shorten(&text)))
}

fn address(text: Option<String>) -> Result<IpAddr, LineError> {
    let text = text.unwrap_or_default();
    // A proxy chain (`$http_x_forwarded_for`) names the client first.
    let first = text.split(',').next().unwrap_or_default().trim();
    first
        .parse::<IpAddr>()
        .map_err(|_| LineError::Address(shorten(&text)))
}

fn request_parts(method: &str, target: &str) -> Result<(String, String), LineError> {
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) || target.is_empty() {
        return Err(LineError::Request(shorten(&format!("{method} {target}"))));
    }
    Ok((method.to_string(), target.to_string()))
}

fn parse_nginx_json(line: &str) -> Result<Hit, LineError> {
    let o = object(line, "nginx-json")?;
    let time = field(
        &o,
        &[
            "time_iso8601",
            "@timestamp",
            "timestamp",
            "time",
            "time_local",
            "msec",
        ],
    )
    .ok_or(LineError::Layout("nginx-json (no time field)"))?;
    let time = json_time(&time)?;
    let (method, target) = match (
        field(&o, &["request_method", "method"]),
        field(&o, &["request_uri", "url", "request_url", "path", "uri"]),
    ) {
        (Some(m), Some(mut t)) => {
            if !t.contains('?')
                && let Some(args) = field(&o, &["args", "query_string"])
            {
                t = format!("{t}?{args}");
            }
            request_parts(&m, &t)?
        }
        _ => {
            let request = field(&o, &["request"]).unwrap_or_default();
            let mut parts = request.split(' ');
            request_parts(
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            )?
        }
    };
    Ok(Hit {
        host: field(&o, &["host", "http_host", "server_name"])
            .map(|h| strip_port(&h).to_ascii_lowercase()),
        client_ip: address(field(&o, &["remote_addr", "client_ip", "ip"]))?,
        time,
        method,
        target,
        status: status_of(field(&o, &["status"]))?,
        referrer: field(
            &o,
            &["http_referer", "http_referrer", "referer", "referrer"],
        ),
        user_agent: field(&o, &["http_user_agent", "user_agent"]).unwrap_or_default(),
    })
}

fn parse_caddy(line: &str) -> Result<Hit, LineError> {
    let o = object(line, "caddy-json")?;
    if let Some(logger) = o.get("logger").and_then(|l| l.as_str())
        && !logger.starts_with("http.log.access")
    {
        return Err(LineError::Layout(
            "caddy-json access log (another logger's entry)",
        ));
    }
    let Some(serde_json::Value::Object(request)) = o.get("request") else {
        return Err(LineError::Layout("caddy-json (no request object)"));
    };
    let time = field(&o, &["ts"]).ok_or(LineError::Layout("caddy-json (no ts)"))?;
    let header = |name: &str| -> Option<String> {
        let headers = request.get("headers")?.as_object()?;
        let values = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))?
            .1
            .as_array()?;
        values
            .first()?
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let (method, target) = request_parts(
        &field(request, &["method"]).unwrap_or_default(),
        &field(request, &["uri"]).unwrap_or_default(),
    )?;
    Ok(Hit {
        host: field(request, &["host"]).map(|h| strip_port(&h).to_ascii_lowercase()),
        client_ip: address(field(request, &["client_ip", "remote_ip"]))?,
        time: json_time(&time)?,
        method,
        target,
        status: status_of(field(&o, &["status"]))?,
        referrer: header("Referer"),
        user_agent: header("User-Agent").unwrap_or_default(),
    })
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
    let status = status_of(Some(status.to_string()))?;
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
    let whole = || LineError::Request(shorten(&request));
    let mut parts = request.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(whole());
    };
    let protocol_ok = parts.next().is_none_or(|p| p.starts_with("HTTP/"));
    if !protocol_ok || parts.next().is_some() {
        return Err(whole());
    }
    let (method, target) = request_parts(method, target).map_err(|_| whole())?;
    Ok(Hit {
        host,
        client_ip,
        time,
        method,
        target,
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

/// Paths of endpoints that answer scripts, not people: real-time transports (Socket.IO's
/// long polling, SockJS), WordPress's JSON, AJAX, cron and XML-RPC endpoints, GraphQL,
/// `/.well-known/` and Cloudflare's `/cdn-cgi/`. A GET of one is not a pageview, whatever its
/// status.
pub const ENDPOINTS: &[&str] = &[
    "/socket.io/*",
    "/sockjs-node/*",
    "/.well-known/*",
    "/wp-json/*",
    "/wp-admin/admin-ajax.php",
    "/wp-cron.php",
    "/xmlrpc.php",
    "/graphql",
    "/cdn-cgi/*",
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
    /// An endpoint for scripts (see [`ENDPOINTS`]).
    Endpoint,
}

/// Whether `hit` is a pageview: a successful GET of something that is not an asset.
pub fn pageview(hit: &Hit) -> Result<(), NotPage> {
    if hit.method != "GET" {
        return Err(NotPage::Method);
    }
    if !((200..300).contains(&hit.status) || hit.status == 304) {
        return Err(NotPage::Status);
    }
    let full = hit.target.split(['?', '#']).next().unwrap_or_default();
    if ENDPOINTS.iter().any(|e| wildcard(e, full)) {
        return Err(NotPage::Endpoint);
    }
    let path = full.rsplit('/').next().unwrap_or_default();
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
    fn nginx_json_lines_read_back() {
        let line = format!(
            r#"{{"time_iso8601":"2026-12-01T10:00:00+01:00","remote_addr":"203.0.113.9","request_method":"GET","request_uri":"/a?utm_source=x","status":"200","body_bytes_sent":"512","http_referer":"","http_user_agent":"{CHROME}","host":"www.example.org:8080"}}"#
        );
        let hit = parse(&line, Format::NginxJson).unwrap();
        assert_eq!(hit.time.to_rfc3339(), "2026-12-01T09:00:00+00:00");
        assert_eq!((hit.target.as_str(), hit.status), ("/a?utm_source=x", 200));
        assert_eq!(hit.host.as_deref(), Some("www.example.org"));
        assert_eq!((hit.referrer, hit.user_agent.as_str()), (None, CHROME));
        assert_eq!(
            parse(&line, Format::Auto).unwrap().target,
            "/a?utm_source=x"
        );
        // `$msec`, numbers, `request` split, a proxy chain.
        let other = r#"{"msec": 1764583200.123, "remote_addr": "10.0.0.1, 10.0.0.2", "request": "GET /b HTTP/2.0", "status": 304, "http_referrer": "https://x.org/", "user_agent": "UA"}"#;
        let hit = parse(other, Format::Auto).unwrap();
        assert_eq!(hit.time.timestamp(), 1_764_583_200);
        assert_eq!(
            (hit.client_ip.to_string(), hit.target.as_str(), hit.status),
            ("10.0.0.1".into(), "/b", 304)
        );
        assert_eq!(hit.referrer.as_deref(), Some("https://x.org/"));
        for (bad, why) in [
            ("{}", "no time field"),
            (r#"{"time":"yesterday","status":200}"#, "time `yesterday`"),
            (
                r#"{"msec":1,"remote_addr":"1.1.1.1","request":"GET / HTTP/1.1","status":"OK"}"#,
                "status `OK`",
            ),
            ("[1,2]", "not a nginx-json log line"),
        ] {
            let e = parse(bad, Format::NginxJson).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn caddy_lines_read_back() {
        let line = format!(
            r#"{{"level":"info","ts":1764583200.5,"logger":"http.log.access.log0","msg":"handled request","request":{{"remote_ip":"10.0.0.1","remote_port":"5555","client_ip":"203.0.113.9","proto":"HTTP/2.0","method":"GET","host":"example.org:443","uri":"/pricing?ref=hn","headers":{{"User-Agent":["{CHROME}"],"Referer":["https://news.ycombinator.com/"],"Cookie":["REDACTED"]}}}},"bytes_read":0,"user_id":"","duration":0.001,"size":512,"status":200,"resp_headers":{{}}}}"#
        );
        let hit = parse(&line, Format::CaddyJson).unwrap();
        assert_eq!(hit.client_ip.to_string(), "203.0.113.9");
        assert_eq!(hit.time.timestamp(), 1_764_583_200);
        assert_eq!(
            (hit.method.as_str(), hit.target.as_str(), hit.status),
            ("GET", "/pricing?ref=hn", 200)
        );
        assert_eq!(hit.host.as_deref(), Some("example.org"));
        assert_eq!(
            hit.referrer.as_deref(),
            Some("https://news.ycombinator.com/")
        );
        assert_eq!(hit.user_agent, CHROME);
        assert_eq!(parse(&line, Format::Auto).unwrap(), hit);
        let error_log = r#"{"level":"error","ts":1764583200,"logger":"http.log.error","msg":"dial tcp: refused"}"#;
        assert!(
            parse(error_log, Format::CaddyJson)
                .unwrap_err()
                .to_string()
                .contains("another logger")
        );
    }

    #[test]
    fn cloudfront_and_w3c_lines_read_back_by_their_fields() {
        let cf = Fields::from_directive("#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol").unwrap();
        let line = "2026-12-01\t08:30:05\tFRA56-P1\t512\t203.0.113.9\tGET\td1234.cloudfront.net\t/caf%25C3%25A9/\t200\thttps://www.google.com/\tMozilla/5.0%2520(X11;%2520Linux%2520x86_64)\tutm_source=x\t-\tHit\tabc==\twww.example.org\thttps\t";
        let hit = parse_fields(line, &cf).unwrap();
        assert_eq!(hit.time.to_rfc3339(), "2026-12-01T08:30:05+00:00");
        assert_eq!(hit.target, "/café/?utm_source=x");
        assert_eq!(hit.user_agent, "Mozilla/5.0 (X11; Linux x86_64)");
        assert_eq!(hit.host.as_deref(), Some("www.example.org"));
        assert_eq!(hit.referrer.as_deref(), Some("https://www.google.com/"));
        let w3c = Fields::from_directive("#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken").unwrap();
        let line = "2026-12-01 06:10:38 172.24.45.9 GET /docs/ - 80 - 198.51.100.7 Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64;+rv:133.0)+Gecko/20100101+Firefox/133.0 - 304 0 64 646";
        let hit = parse_fields(line, &w3c).unwrap();
        assert_eq!(
            (hit.target.as_str(), hit.status, hit.referrer),
            ("/docs/", 304, None)
        );
        assert_eq!(
            hit.user_agent,
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
        );
        assert_eq!(hit.host, None);
        assert!(parse_fields("2026-12-01 06:10:38 too short", &w3c).is_err());
        assert!(
            parse("2026-12-01 06:10:38 x", Format::W3c)
                .unwrap_err()
                .to_string()
                .contains("#Fields")
        );
        assert_eq!(Fields::from_directive("#Version: 1.0"), None);
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
            pageview(&hit("GET", "/socket.io/?EIO=3&transport=polling&t=N", 200)),
            Err(NotPage::Endpoint)
        );
        assert_eq!(
            pageview(&hit("GET", "/wp-json/wp/v2/posts", 200)),
            Err(NotPage::Endpoint)
        );
        assert_eq!(pageview(&hit("GET", "/socket.io-guide", 200)), Ok(()));
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
