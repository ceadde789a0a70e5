//! Wire formats of an incoming event: the Plausible Events API body (`POST /api/event`) and
//! the pixel's query string (`GET /api/event.gif`).
//!
//! The body is JSON, usually sent as `text/plain` by `fetch`/`sendBeacon`. Both the short
//! names of the official tracker (`n`, `u`, `d`, `r`, `w`, `p`, `$`, `i`, `h`, `v`, `e`, `sd`)
//! and the long names of the Events API (`name`, `url`, `domain`, `referrer`, `screen_width`,
//! `props`, `revenue`, `interactive`) are accepted. Everything is validated here with the
//! limits below; what passes is an [`EventInput`] whose fields are all within bounds.

use serde::Deserialize;
use serde_json::{Map, Value};

/// Largest accepted request body, in bytes.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// Longest accepted page or referrer URL, in bytes.
pub const MAX_URL_BYTES: usize = 2000;
/// Longest accepted event name, in characters.
pub const MAX_NAME_CHARS: usize = 120;
/// Most custom properties on one event.
pub const MAX_PROPS: usize = 30;
/// Longest property key, in characters.
pub const MAX_PROP_KEY_CHARS: usize = 300;
/// Longest property value, in bytes.
pub const MAX_PROP_VALUE_BYTES: usize = 2000;
/// Longest accepted domain list, in bytes.
pub const MAX_DOMAIN_BYTES: usize = 1000;
/// Most sites one event may be recorded for (`"d":"a.com,b.com"`).
pub const MAX_DOMAINS: usize = 10;
/// Longest engagement time one event may report (a day, in milliseconds).
pub const MAX_ENGAGEMENT_MS: u64 = 24 * 60 * 60 * 1000;

/// A validated event as the client described it, before any enrichment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventInput {
    pub name: String,
    pub url: String,
    /// The site domain(s) named by the client; `None` means "the URL's host".
    pub domain: Option<String>,
    pub referrer: Option<String>,
    pub screen_width: Option<u16>,
    pub props: Vec<(String, String)>,
    pub revenue: Option<Revenue>,
    pub interactive: bool,
    pub hash_mode: bool,
    pub engagement_ms: Option<u32>,
    pub scroll_depth: Option<u8>,
}

/// Revenue attached to a goal, as millionths of the currency unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revenue {
    pub amount_micros: i64,
    pub currency: String,
}

/// Why an event body was refused; the message names the problem for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("request body is not valid UTF-8")]
    NotUtf8,
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> BodyError {
    BodyError::Invalid {
        field,
        reason: reason.into(),
    }
}

#[derive(Deserialize)]
struct Wire {
    #[serde(alias = "n")]
    name: Option<Value>,
    #[serde(alias = "u")]
    url: Option<Value>,
    #[serde(alias = "d")]
    domain: Option<Value>,
    #[serde(alias = "r")]
    referrer: Option<Value>,
    #[serde(alias = "w")]
    screen_width: Option<Value>,
    #[serde(alias = "p", alias = "m", alias = "meta")]
    props: Option<Value>,
    #[serde(rename = "$", alias = "revenue")]
    revenue: Option<Value>,
    #[serde(alias = "i")]
    interactive: Option<Value>,
    #[serde(rename = "h", alias = "hash_mode")]
    hash_mode: Option<Value>,
    #[serde(rename = "e", alias = "engagement_time")]
    engagement: Option<Value>,
    #[serde(rename = "sd", alias = "scroll_depth")]
    scroll_depth: Option<Value>,
}

/// Parses a `POST /api/event` body.
pub fn parse_body(bytes: &[u8]) -> Result<EventInput, BodyError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| BodyError::NotUtf8)?;
    if !text.trim_start().starts_with('{') {
        return Err(BodyError::Json("expected a JSON object".into()));
    }
    // Straight into the wire struct, so a field given twice (`n` and `name`) is an error.
    let wire: Wire = serde_json::from_str(text).map_err(|e| BodyError::Json(e.to_string()))?;
    from_wire(wire)
}

/// Parses the pixel's query string (`n`, `u`, `d`, `r`, `w`, and JSON-encoded `p` and `$`).
///
/// A pixel is a pageview: without `n` the name is `pageview`, and without `u` the page is
/// `referer` (the request's `Referer` header, the page that shows the image).
pub fn parse_query(query: &str, referer: Option<&str>) -> Result<EventInput, BodyError> {
    if query.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    let mut map = Map::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let key = key.into_owned();
        let value = match key.as_str() {
            "p" | "props" | "m" | "meta" | "$" | "revenue" => serde_json::from_str(&value)
                .map_err(|_| invalid(field_name(&key), "expected JSON"))?,
            _ => Value::String(value.into_owned()),
        };
        if map.insert(key.clone(), value).is_some() {
            return Err(invalid(field_name(&key), "given more than once"));
        }
    }
    if !map.contains_key("n") && !map.contains_key("name") {
        map.insert("n".into(), Value::String("pageview".into()));
    }
    if !map.contains_key("u")
        && !map.contains_key("url")
        && let Some(page) = referer.filter(|r| !r.is_empty())
    {
        map.insert("u".into(), Value::String(page.to_string()));
    }
    let wire: Wire =
        serde_json::from_value(Value::Object(map)).map_err(|e| BodyError::Json(e.to_string()))?;
    from_wire(wire)
}

fn field_name(key: &str) -> &'static str {
    match key {
        "p" | "props" | "m" | "meta" => "props",
        "$" | "revenue" => "revenue",
        _ => "query",
    }
}

fn from_wire(wire: Wire) -> Result<EventInput, BodyError> {
    let name = required_string(wire.name, "name")?;
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    let url = required_string(wire.url, "url")?;
    if url.len() > MAX_URL_BYTES {
        return Err(invalid("url", format!("longer than {MAX_URL_BYTES} bytes")));
    }
    let domain = optional_string(wire.domain, "domain")?.filter(|d| !d.trim().is_empty());
    if domain.as_ref().is_some_and(|d| d.len() > MAX_DOMAIN_BYTES) {
        return Err(invalid(
            "domain",
            format!("longer than {MAX_DOMAIN_BYTES} bytes"),
        ));
    }
    if domain
        .as_ref()
        .is_some_and(|d| d.split(',').filter(|s| !s.trim().is_empty()).count() > MAX_DOMAINS)
    {
        return Err(invalid(
            "domain",
            format!("more than {MAX_DOMAINS} comma-separated domains"),
        ));
    }
    // An over-long or empty referrer is not worth refusing the event for: it is ignored.
    let referrer = optional_string(wire.referrer, "referrer")?
        .filter(|r| !r.is_empty() && r.len() <= MAX_URL_BYTES);
    let screen_width = match optional_number(wire.screen_width, "screen_width")? {
        None => None,
        Some(w) if w <= u64::from(u16::MAX) => Some(w as u16),
        Some(_) => return Err(invalid("screen_width", "out of range")),
    };
    let engagement_ms = match optional_number(wire.engagement, "e")? {
        None => None,
        Some(e) if e <= MAX_ENGAGEMENT_MS => Some(e as u32),
        Some(_) => return Err(invalid("e", "engagement time out of range")),
    };
    let scroll_depth = match wire.scroll_depth {
        // The tracker sends -1 before it has measured anything.
        Some(Value::Number(n)) if n.as_i64().is_some_and(|v| v < 0) => None,
        other => optional_number(other, "sd")?.map(|v| v.min(100) as u8),
    };
    Ok(EventInput {
        name,
        url,
        domain,
        referrer,
        screen_width,
        props: parse_props(wire.props)?,
        revenue: parse_revenue(wire.revenue)?,
        interactive: optional_bool(wire.interactive, "interactive")?.unwrap_or(true),
        hash_mode: optional_bool(wire.hash_mode, "h")?.unwrap_or(false),
        engagement_ms,
        scroll_depth,
    })
}

fn required_string(v: Option<Value>, field: &'static str) -> Result<String, BodyError> {
    optional_string(v, field)?.ok_or(BodyError::Missing(field))
}

fn optional_string(v: Option<Value>, field: &'static str) -> Result<Option<String>, BodyError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(field, "expected a string")),
    }
}

fn optional_number(v: Option<Value>, field: &'static str) -> Result<Option<u64>, BodyError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.is_finite())
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| invalid(field, "expected a non-negative number")),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| invalid(field, "expected a non-negative number")),
        Some(_) => Err(invalid(field, "expected a number")),
    }
}

fn optional_bool(v: Option<Value>, field: &'static str) -> Result<Option<bool>, BodyError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::Number(n)) => Ok(Some(n.as_f64() != Some(0.0))),
        Some(Value::String(s)) => match s.as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(invalid(field, "expected a boolean")),
        },
        Some(_) => Err(invalid(field, "expected a boolean")),
    }
}

fn parse_props(v: Option<Value>) -> Result<Vec<(String, String)>, BodyError> {
    let map = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        // Older trackers send props as a JSON-encoded string.
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => m,
            _ => return Err(invalid("props", "expected an object")),
        },
        Some(_) => return Err(invalid("props", "expected an object")),
    };
    if map.len() > MAX_PROPS {
        return Err(invalid(
            "props",
            format!("more than {MAX_PROPS} properties"),
        ));
    }
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        if key.is_empty() || key.chars().count() > MAX_PROP_KEY_CHARS {
            return Err(invalid(
                "props",
                format!("keys must be 1-{MAX_PROP_KEY_CHARS} characters"),
            ));
        }
        let value = match value {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(invalid(
                    "props",
                    format!("`{key}` is not flat: values must be strings, numbers or booleans"),
                ));
            }
        };
        if value.is_empty() {
            continue;
        }
        if value.len() > MAX_PROP_VALUE_BYTES {
            return Err(invalid(
                "props",
                format!("`{key}` is longer than {MAX_PROP_VALUE_BYTES} bytes"),
            ));
        }
        out.push((key, value));
    }
    // Sorted by key, so what is stored does not depend on the order the client sent, nor on
    // whether serde_json keeps it (its `preserve_order` feature, which another crate may enable).
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn parse_revenue(v: Option<Value>) -> Result<Option<Revenue>, BodyError> {
    let map = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid("revenue", "expected {\"amount\", \"currency\"}")),
    };
    let currency = match map.get("currency") {
        Some(Value::String(c)) if c.len() == 3 && c.chars().all(|c| c.is_ascii_alphabetic()) => {
            c.to_ascii_uppercase()
        }
        _ => {
            return Err(invalid(
                "revenue",
                "currency must be a 3-letter ISO 4217 code",
            ));
        }
    };
    let amount = match map.get("amount") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        _ => return Err(invalid("revenue", "amount must be a number")),
    };
    let amount_micros = decimal_to_micros(&amount).ok_or_else(|| {
        invalid(
            "revenue",
            format!("amount `{amount}` is not a decimal number"),
        )
    })?;
    Ok(Some(Revenue {
        amount_micros,
        currency,
    }))
}

/// Parses a plain decimal (`-12.5`, `3`, `0.000001`) into millionths, exactly; `None` for
/// anything else, including more than six decimals or more than 12 integer digits.
fn decimal_to_micros(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() || int.len() > 12 || frac.len() > 6 {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: i64 = int.parse().ok()?;
    let frac_micros: i64 = format!("{frac:0<6}").parse().ok()?;
    let v = int * 1_000_000 + frac_micros;
    Some(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_tracker_short_names() {
        let body = br#"{"n":"pageview","v":22,"u":"https://example.com/a?utm_source=x","d":"example.com","r":"https://www.google.com/","h":1,"p":{"plan":"pro","n":3},"$":{"amount":"12.50","currency":"eur"},"i":false}"#;
        let e = parse_body(body).unwrap();
        assert_eq!(e.name, "pageview");
        assert_eq!(e.domain.as_deref(), Some("example.com"));
        assert_eq!(e.referrer.as_deref(), Some("https://www.google.com/"));
        assert!(e.hash_mode);
        assert!(!e.interactive);
        assert_eq!(
            e.props,
            vec![("n".into(), "3".into()), ("plan".into(), "pro".into())]
        );
        assert_eq!(
            e.revenue,
            Some(Revenue {
                amount_micros: 12_500_000,
                currency: "EUR".into()
            })
        );
    }

    #[test]
    fn engagement_event() {
        let e = parse_body(
            br#"{"n":"engagement","u":"https://example.com/","d":"example.com","e":15230,"sd":87}"#,
        )
        .unwrap();
        assert_eq!(e.engagement_ms, Some(15230));
        assert_eq!(e.scroll_depth, Some(87));
        let e =
            parse_body(br#"{"n":"engagement","u":"https://example.com/","sd":-1,"e":0}"#).unwrap();
        assert_eq!(e.scroll_depth, None);
    }

    #[test]
    fn long_names_and_stringified_props() {
        let e = parse_body(br#"{"name":"Signup","url":"https://a.org/x","domain":"a.org","referrer":null,"screen_width":1280,"props":"{\"k\":\"v\"}","revenue":{"amount":3,"currency":"USD"},"interactive":true}"#).unwrap();
        assert_eq!(e.name, "Signup");
        assert_eq!(e.screen_width, Some(1280));
        assert_eq!(e.props, vec![("k".into(), "v".into())]);
        assert_eq!(e.revenue.unwrap().amount_micros, 3_000_000);
        assert!(e.referrer.is_none());
    }

    #[test]
    fn missing_domain_is_allowed() {
        assert_eq!(
            parse_body(br#"{"n":"pageview","u":"https://a.org/"}"#)
                .unwrap()
                .domain,
            None
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "not valid JSON"),
            (b"[1,2]", "JSON object"),
            (br#"{"u":"https://a.org/"}"#, "`name`"),
            (br#"{"n":"pageview"}"#, "`url`"),
            (br#"{"n":"","u":"https://a.org/"}"#, "`name`"),
            (br#"{"n":5,"u":"https://a.org/"}"#, "`name`"),
            (
                br#"{"n":"x","u":"https://a.org/","p":{"a":{"b":1}}}"#,
                "not flat",
            ),
            (br#"{"n":"x","u":"https://a.org/","p":[1]}"#, "`props`"),
            (
                br#"{"n":"x","u":"https://a.org/","$":{"amount":"1e9","currency":"EUR"}}"#,
                "revenue",
            ),
            (
                br#"{"n":"x","u":"https://a.org/","$":{"amount":1,"currency":"EURO"}}"#,
                "currency",
            ),
            (br#"{"n":"x","u":"https://a.org/","w":-5}"#, "screen_width"),
            (br#"{"n":"x","n":"y","u":"https://a.org/"}"#, "duplicate"),
            (b"\xff\xfe", "UTF-8"),
        ];
        for (body, needle) in cases {
            let err = parse_body(body).unwrap_err().to_string();
            assert!(
                err.contains(needle),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn limits() {
        let long_name = format!(r#"{{"n":"{}","u":"https://a.org/"}}"#, "x".repeat(121));
        assert!(parse_body(long_name.as_bytes()).is_err());
        let long_url = format!(r#"{{"n":"p","u":"https://a.org/{}"}}"#, "x".repeat(2000));
        assert!(parse_body(long_url.as_bytes()).is_err());
        let props: Vec<String> = (0..31).map(|i| format!(r#""k{i}":"v""#)).collect();
        let many = format!(
            r#"{{"n":"p","u":"https://a.org/","p":{{{}}}}}"#,
            props.join(",")
        );
        assert!(
            parse_body(many.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("30")
        );
        let big_value = format!(
            r#"{{"n":"p","u":"https://a.org/","p":{{"k":"{}"}}}}"#,
            "v".repeat(2001)
        );
        assert!(parse_body(big_value.as_bytes()).is_err());
        assert_eq!(
            parse_body(&vec![b' '; MAX_BODY_BYTES + 1]),
            Err(BodyError::TooLarge)
        );
    }

    #[test]
    fn pixel_query() {
        let e = parse_query("n=pageview&u=https%3A%2F%2Fa.org%2Fnews&d=a.org&r=https%3A%2F%2Fnews.ycombinator.com%2F&p=%7B%22k%22%3A%22v%22%7D", None).unwrap();
        assert_eq!(e.url, "https://a.org/news");
        assert_eq!(e.props, vec![("k".into(), "v".into())]);
        assert!(
            parse_query("n=pageview", None)
                .unwrap_err()
                .to_string()
                .contains("url")
        );
        assert!(parse_query("n=a&u=https://a.org/&p=notjson", None).is_err());
        assert!(parse_query("n=a&n=b&u=https://a.org/", None).is_err());
    }

    #[test]
    fn a_pixel_without_a_name_is_a_pageview_of_its_referer() {
        let e = parse_query("d=a.org&u=https%3A%2F%2Fa.org%2Fpricing", None).unwrap();
        assert_eq!(
            (e.name.as_str(), e.url.as_str()),
            ("pageview", "https://a.org/pricing")
        );
        let e = parse_query("d=a.org", Some("https://a.org/news?id=7")).unwrap();
        assert_eq!(
            (e.name.as_str(), e.url.as_str()),
            ("pageview", "https://a.org/news?id=7")
        );
        // An explicit page and name win over the defaults.
        let e = parse_query(
            "n=Signup&u=https%3A%2F%2Fa.org%2Fx",
            Some("https://a.org/y"),
        )
        .unwrap();
        assert_eq!(
            (e.name.as_str(), e.url.as_str()),
            ("Signup", "https://a.org/x")
        );
        // Neither `u` nor a Referer: the page is still required.
        assert!(
            parse_query("d=a.org", None)
                .unwrap_err()
                .to_string()
                .contains("url")
        );
        assert!(
            parse_query("d=a.org", Some(""))
                .unwrap_err()
                .to_string()
                .contains("url")
        );
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal_to_micros("0.000001"), Some(1));
        assert_eq!(decimal_to_micros("-2.5"), Some(-2_500_000));
        assert_eq!(decimal_to_micros("1.0000001"), None);
        assert_eq!(decimal_to_micros("abc"), None);
        assert_eq!(decimal_to_micros("."), None);
    }
}
