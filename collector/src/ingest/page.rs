//! URL normalisation of the page an event happened on.
//!
//! Keeps the hostname (lower case, without a leading `www.`) and the path; drops the query
//! string except the UTM parameters and the `ref`/`source` source hints, which are returned
//! as fields rather than kept in the path. In hash mode (single-page apps routing on the
//! fragment) the fragment's route is part of the path (its own query string, and fragments
//! that hold parameters such as `#access_token=…`, are dropped); otherwise it is dropped.

/// The parts of a page URL that are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub hostname: String,
    pub pathname: String,
    pub utm: Utm,
    /// `ref` or `source` query parameter: a source hint used when there is no referrer.
    pub source_hint: Option<String>,
}

/// UTM parameters of the landing URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Utm {
    pub medium: String,
    pub source: String,
    pub campaign: String,
    pub content: String,
    pub term: String,
}

/// Longest kept UTM or hint value, in characters.
const MAX_PARAM_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("`url` is not a valid URL")]
    Unparseable,
    #[error("`url` must be an http or https URL")]
    Scheme,
    #[error("`url` has no host")]
    NoHost,
}

/// Normalises `raw` into a [`Page`].
pub fn normalise(raw: &str, hash_mode: bool) -> Result<Page, PageError> {
    let url = url::Url::parse(raw.trim()).map_err(|_| PageError::Unparseable)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PageError::Scheme);
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or(PageError::NoHost)?;
    let mut pathname = percent_encoding::percent_decode_str(url.path())
        .decode_utf8_lossy()
        .into_owned();
    if pathname.is_empty() {
        pathname.push('/');
    }
    if hash_mode && let Some(route) = url.fragment().and_then(fragment_route) {
        pathname.push('#');
        pathname.push_str(&percent_encoding::percent_decode_str(route).decode_utf8_lossy());
    }
    let mut page = Page {
        hostname: strip_www(&host.to_ascii_lowercase()).to_string(),
        pathname,
        ..Page::default()
    };
    for (key, value) in url.query_pairs() {
        let value: String = value.trim().chars().take(MAX_PARAM_CHARS).collect();
        if value.is_empty() {
            continue;
        }
        let slot = match key.as_ref() {
            "utm_medium" => &mut page.utm.medium,
            "utm_source" => &mut page.utm.source,
            "utm_campaign" => &mut page.utm.campaign,
            "utm_content" => &mut page.utm.content,
            "utm_term" => &mut page.utm.term,
            "ref" | "source" => {
                page.source_hint.get_or_insert(value);
                continue;
            }
            _ => continue,
        };
        if slot.is_empty() {
            *slot = value;
        }
    }
    Ok(page)
}

/// The route part of a fragment in hash mode: up to its own query string (`#/inbox?token=…`
/// keeps `#/inbox`), and nothing when it holds parameters rather than a route
/// (`#access_token=…&state=…`), as query strings are handled.
fn fragment_route(fragment: &str) -> Option<&str> {
    let route = fragment.split(['?', '&']).next().unwrap_or("");
    (!route.is_empty() && !route.contains('=')).then_some(route)
}

/// `www.example.com` → `example.com`; other hosts unchanged.
pub fn strip_www(host: &str) -> &str {
    host.strip_prefix("www.")
        .filter(|h| !h.is_empty())
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_host_and_path_drops_query() {
        let p = normalise("https://WWW.Example.com/Blog/Post-1?session=abc&utm_source=news&utm_medium=email&ref=hn#top", false).unwrap();
        assert_eq!(p.hostname, "example.com");
        assert_eq!(p.pathname, "/Blog/Post-1");
        assert_eq!(p.utm.source, "news");
        assert_eq!(p.utm.medium, "email");
        assert_eq!(p.source_hint.as_deref(), Some("hn"));
    }

    #[test]
    fn hash_mode_keeps_the_route_and_drops_tokens() {
        let path = |u: &str| normalise(u, true).unwrap().pathname;
        assert_eq!(path("https://a.org/app#/inbox?token=s3cret"), "/app#/inbox");
        assert_eq!(
            path("https://a.org/cb#access_token=abc&token_type=bearer"),
            "/cb"
        );
        assert_eq!(path("https://a.org/cb#id_token=x"), "/cb");
        assert_eq!(path("https://a.org/app#/list&sort=name"), "/app#/list");
        assert_eq!(path("https://a.org/app#!/settings"), "/app#!/settings");
        assert_eq!(path("https://a.org/app#"), "/app");
        assert_eq!(path("https://a.org/app#?x=1"), "/app");
    }

    #[test]
    fn hash_mode_keeps_fragment() {
        assert_eq!(
            normalise("https://a.org/app#/settings", true)
                .unwrap()
                .pathname,
            "/app#/settings"
        );
        assert_eq!(
            normalise("https://a.org/app#/settings", false)
                .unwrap()
                .pathname,
            "/app"
        );
    }

    #[test]
    fn decodes_path_and_defaults_to_root() {
        assert_eq!(normalise("https://a.org", false).unwrap().pathname, "/");
        assert_eq!(
            normalise("https://a.org/caf%C3%A9", false)
                .unwrap()
                .pathname,
            "/café"
        );
    }

    #[test]
    fn refuses_other_schemes() {
        assert_eq!(
            normalise("data:text/html,hi", false),
            Err(PageError::Scheme)
        );
        assert_eq!(
            normalise("javascript:alert(1)", false),
            Err(PageError::Scheme)
        );
        assert_eq!(
            normalise("file:///etc/passwd", false),
            Err(PageError::Scheme)
        );
        assert_eq!(normalise("not a url", false), Err(PageError::Unparseable));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for raw in [
            "http://",
            "https://[::1]/",
            "https://a.org/%ff%fe",
            "https://a.org/?utm_source=%00",
            "http://xn--/",
        ] {
            let _ = normalise(raw, true);
        }
    }
}
