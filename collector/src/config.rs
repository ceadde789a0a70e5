//! Configuration: a pure function of an optional TOML file and the `FOOTFALL_*` environment.
//!
//! Every setting has one name. In the file it is a key (`batch_size`, or `url` inside a
//! `[clickhouse]` table); in the environment it is `FOOTFALL_` plus the upper-cased flat name
//! (`FOOTFALL_BATCH_SIZE`, `FOOTFALL_CLICKHOUSE_URL`). The environment wins over the file.
//! Every value is validated here, at load time, and an error names the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

/// Settings that name a store, a directory, a listener or a limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Which embedded store keeps the events when no ClickHouse is set.
    pub embedded_store: EmbeddedStore,
    pub clickhouse: Option<ClickHouseConfig>,
    /// GeoIP files, asked in order (see [`crate::ingest::geoip`]); empty: no locations.
    pub geoip_db: Vec<PathBuf>,
    pub trusted_proxies: Vec<IpNet>,
    /// The header the trusted proxies name the client in (`X-Forwarded-For`, `X-Real-IP`,
    /// `CF-Connecting-IP`…); no other is believed.
    pub client_ip_header: axum::http::HeaderName,
    pub raw_retention_days: u32,
    pub aggregate_retention_days: u32,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub queue_capacity: usize,
    pub drain_timeout: Duration,
    /// Largest size of the on-disk spool (`<data_dir>/spool`), in bytes.
    pub spool_max_bytes: u64,
    /// Ingest requests per second one client IP may send on average (0: no limit).
    pub rate_limit_per_ip: u32,
    /// Ingest requests one client IP may send at once above the average.
    pub rate_limit_burst: u32,
    /// Ingest requests in flight at once, at most; more are answered 503.
    pub max_concurrent_requests: usize,
    /// Visits held open in memory, at most (the stalest are evicted past it).
    pub max_sessions: usize,
    /// The bearer token `/metrics` asks for; open to anyone who reaches it without one.
    pub metrics_token: Option<Secret>,
    /// How long a Stats API question may run before it is stopped (503).
    pub query_timeout: Duration,
    /// Rows a question may read from raw events and visit rows before it counts a sample of
    /// the visitors instead; 0: never sample.
    pub sampling_threshold: u64,
    /// Where e-mail is sent from, when it is set (see [`crate::mail`]).
    pub smtp: Option<SmtpConfig>,
    /// The dashboard's address as its users reach it (`https://stats.example.com`): links in
    /// e-mails point there, never to the `Host` a request claimed.
    pub public_url: Option<String>,
}

/// An SMTP server to send through: `smtp://user:pass@host:587?tls=required` (STARTTLS),
/// `smtps://user:pass@host:465` (TLS from the start), or `smtp://host:25` (no TLS: only for a
/// relay on the same machine).
#[derive(Clone, PartialEq)]
pub struct SmtpConfig {
    pub url: Secret,
    /// The sender, `Footfall <stats@example.com>` or `stats@example.com`.
    pub from: String,
    /// A PEM file of certificates to trust besides the system's (a private CA).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &"<redacted>")
            .field("from", &self.from)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The embedded stores: both keep sites, keys, accounts and salts in `footfall.db`
/// (SQLite); events and rollups go to `events.duckdb` or stay in `footfall.db`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddedStore {
    DuckDb,
    Sqlite,
}

impl EmbeddedStore {
    /// The default of this build: DuckDB when it was built in.
    pub const DEFAULT: EmbeddedStore = if cfg!(feature = "duckdb") {
        EmbeddedStore::DuckDb
    } else {
        EmbeddedStore::Sqlite
    };

    fn parse(value: &str) -> Result<EmbeddedStore, ConfigError> {
        match value.trim() {
            "duckdb" if cfg!(feature = "duckdb") => Ok(EmbeddedStore::DuckDb),
            "duckdb" => Err(invalid(
                "embedded_store",
                "this footfall was built without DuckDB (the `duckdb` feature); use `sqlite`",
            )),
            "sqlite" => Ok(EmbeddedStore::Sqlite),
            "" => Ok(EmbeddedStore::DEFAULT),
            other => Err(invalid(
                "embedded_store",
                format!("`{other}` is not a store; expected `duckdb` or `sqlite`"),
            )),
        }
    }
}

/// A setting that must not show in logs: its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the ClickHouse store lives.
#[derive(Clone, PartialEq)]
pub struct ClickHouseConfig {
    pub url: String,
    pub user: String,
    pub password: String,
    pub database: String,
    /// A cluster in the servers' `remote_servers`: the schema is created `ON CLUSTER`, with
    /// replicated local tables and `Distributed` tables in front (see ARCHITECTURE.md).
    pub cluster: Option<String>,
}

impl ClickHouseConfig {
    /// The node URLs in order of preference (`url` may list several, comma-separated).
    pub fn urls(&self) -> Vec<&str> {
        self.url.split(',').filter(|u| !u.is_empty()).collect()
    }
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// A configuration problem, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("config file {path}: unknown setting `{key}`")]
    UnknownKey { path: PathBuf, key: String },
    #[error("invalid value for `{field}` ({env}): {message}")]
    Invalid {
        field: &'static str,
        env: String,
        message: String,
    },
}

/// The settings, with their flat names and defaults (`None`: no default).
const SETTINGS: &[(&str, Option<&str>)] = &[
    ("listen", Some("127.0.0.1:8000")),
    ("data_dir", Some("./data")),
    ("embedded_store", Some("")),
    ("clickhouse_url", None),
    ("clickhouse_user", Some("default")),
    ("clickhouse_password", Some("")),
    ("clickhouse_database", Some("footfall")),
    ("clickhouse_cluster", None),
    ("geoip_db", None),
    ("trusted_proxies", Some("")),
    ("client_ip_header", Some("X-Forwarded-For")),
    ("raw_retention_days", Some("30")),
    ("aggregate_retention_days", Some("1825")),
    ("batch_size", Some("10000")),
    ("flush_interval_ms", Some("1000")),
    ("queue_capacity", Some("20000")),
    ("drain_timeout_secs", Some("30")),
    ("spool_max_mb", Some("1024")),
    ("rate_limit_per_ip", Some("100")),
    ("rate_limit_burst", Some("1000")),
    ("max_concurrent_requests", Some("4096")),
    ("max_sessions", Some("500000")),
    ("metrics_token", None),
    ("query_timeout_secs", Some("30")),
    ("sampling_threshold", Some("10000000")),
    ("public_url", None),
    ("smtp_url", None),
    ("smtp_from", None),
    ("smtp_ca_file", None),
];

/// Most GeoIP files `geoip_db` may list.
const MAX_GEOIP_FILES: usize = 8;

/// Longest accepted value of any setting, in bytes.
const MAX_VALUE_LEN: usize = 4096;

impl Config {
    /// Loads the configuration from an optional file and an environment (pass
    /// `std::env::vars()` in production, a list in tests). `FOOTFALL_CONFIG` in `env` names
    /// the file when `file` is `None`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("FOOTFALL_"))
            .collect();
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| env.get("FOOTFALL_CONFIG").map(PathBuf::from));
        let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
        for (name, default) in SETTINGS {
            if let Some(d) = default {
                values.insert(name, (*d).to_string());
            }
        }
        if let Some(path) = &file {
            for (key, value) in read_file(path)? {
                values.insert(key, value);
            }
        }
        for (name, _) in SETTINGS {
            if let Some(v) = env.get(&env_name(name)) {
                values.insert(name, v.clone());
            }
        }
        let v = Values(values);
        let clickhouse = match v.opt("clickhouse_url")? {
            None => None,
            Some(url) => Some(ClickHouseConfig {
                url: parse_clickhouse_url(&url)?,
                user: v.string("clickhouse_user")?,
                password: v.string("clickhouse_password")?,
                database: parse_identifier(
                    "clickhouse_database",
                    &v.string("clickhouse_database")?,
                )?,
                cluster: v
                    .opt("clickhouse_cluster")?
                    .filter(|c| !c.trim().is_empty())
                    .map(|c| parse_identifier("clickhouse_cluster", c.trim()))
                    .transpose()?,
            }),
        };
        let data_dir = PathBuf::from(v.string("data_dir")?);
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        let geoip_db: Vec<PathBuf> = v
            .opt("geoip_db")?
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if geoip_db.len() > MAX_GEOIP_FILES {
            return Err(invalid(
                "geoip_db",
                format!("at most {MAX_GEOIP_FILES} files"),
            ));
        }
        if let Some(p) = geoip_db.iter().find(|p| !p.is_file()) {
            return Err(invalid("geoip_db", format!("no file at {}", p.display())));
        }
        Ok(Config {
            listen: v
                .string("listen")?
                .parse()
                .map_err(|_| invalid("listen", "expected an address like 127.0.0.1:8000"))?,
            data_dir,
            embedded_store: EmbeddedStore::parse(&v.string("embedded_store")?)?,
            clickhouse,
            geoip_db,
            trusted_proxies: parse_cidrs(&v.string("trusted_proxies")?)?,
            client_ip_header: {
                let name = v.string("client_ip_header")?;
                axum::http::HeaderName::from_bytes(name.trim().as_bytes())
                    .ok()
                    .filter(|_| !name.trim().is_empty() && name.len() <= 64)
                    .ok_or_else(|| {
                        invalid("client_ip_header", format!("`{name}` is not a header name"))
                    })?
            },
            raw_retention_days: v.number("raw_retention_days", 1, 3650)? as u32,
            aggregate_retention_days: v.number("aggregate_retention_days", 1, 36_500)? as u32,
            batch_size: v.number("batch_size", 1, 1_000_000)? as usize,
            flush_interval: Duration::from_millis(v.number("flush_interval_ms", 10, 600_000)?),
            queue_capacity: v.number("queue_capacity", 1, 10_000_000)? as usize,
            drain_timeout: Duration::from_secs(v.number("drain_timeout_secs", 0, 3600)?),
            spool_max_bytes: v.number("spool_max_mb", 1, 1_048_576)? * 1024 * 1024,
            rate_limit_per_ip: v.number("rate_limit_per_ip", 0, 1_000_000)? as u32,
            rate_limit_burst: v.number("rate_limit_burst", 1, 10_000_000)? as u32,
            max_concurrent_requests: v.number("max_concurrent_requests", 1, 1_000_000)? as usize,
            max_sessions: v.number("max_sessions", 100, 100_000_000)? as usize,
            metrics_token: match v.opt("metrics_token")?.filter(|t| !t.is_empty()) {
                Some(t) if t.len() < 16 || !t.chars().all(|c| c.is_ascii_graphic()) => {
                    return Err(invalid(
                        "metrics_token",
                        "at least 16 visible ASCII characters, without spaces",
                    ));
                }
                other => other.map(Secret),
            },
            query_timeout: Duration::from_secs(v.number("query_timeout_secs", 1, 3600)?),
            sampling_threshold: v.number("sampling_threshold", 0, 1_000_000_000_000)?,
            public_url: match v.opt("public_url")?.filter(|u| !u.trim().is_empty()) {
                None => None,
                Some(u) => Some(parse_public_url(&u).map_err(|m| invalid("public_url", m))?),
            },
            smtp: match v.opt("smtp_url")?.filter(|u| !u.trim().is_empty()) {
                None => None,
                Some(url) => {
                    crate::mail::check_url(&url).map_err(|m| invalid("smtp_url", m))?;
                    let from = v
                        .opt("smtp_from")?
                        .filter(|f| !f.trim().is_empty())
                        .ok_or_else(|| {
                            invalid("smtp_from", "set the sender's address when smtp_url is set")
                        })?;
                    crate::mail::check_mailbox(&from).map_err(|m| invalid("smtp_from", m))?;
                    let ca_file = v
                        .opt("smtp_ca_file")?
                        .filter(|f| !f.trim().is_empty())
                        .map(PathBuf::from);
                    Some(SmtpConfig {
                        url: Secret(url),
                        from,
                        ca_file,
                    })
                }
            },
        })
    }
}

/// `https://stats.example.com` or `https://example.com/stats`, without a trailing slash.
fn parse_public_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(
            "an http:// or https:// address of the dashboard, without query or user".into(),
        );
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn env_name(name: &str) -> String {
    format!("FOOTFALL_{}", name.to_ascii_uppercase())
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        env: env_name(field),
        message: message.into(),
    }
}

fn setting_name(key: &str) -> Option<&'static str> {
    SETTINGS.iter().map(|(n, _)| *n).find(|n| *n == key)
}

/// Reads the TOML file into flat `name -> value` pairs.
fn read_file(path: &Path) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Toml {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
    let mut out = Vec::new();
    let unknown = |key: String| ConfigError::UnknownKey {
        path: path.to_path_buf(),
        key,
    };
    for (key, value) in table {
        if let toml::Value::Table(inner) = value {
            for (k, v) in inner {
                let flat = format!("{key}_{k}");
                let name = setting_name(&flat).ok_or_else(|| unknown(format!("{key}.{k}")))?;
                out.push((name, toml_scalar(name, v)?));
            }
        } else {
            let name = setting_name(&key).ok_or_else(|| unknown(key.clone()))?;
            out.push((name, toml_scalar(name, value)?));
        }
    }
    Ok(out)
}

fn toml_scalar(name: &'static str, value: toml::Value) -> Result<String, ConfigError> {
    match value {
        toml::Value::String(s) => Ok(s),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                toml::Value::String(s) => Ok(s),
                _ => Err(invalid(name, "list items must be strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(",")),
        _ => Err(invalid(
            name,
            "expected a string, a number or a list of strings",
        )),
    }
}

struct Values(BTreeMap<&'static str, String>);

impl Values {
    fn opt(&self, field: &'static str) -> Result<Option<String>, ConfigError> {
        match self.0.get(field) {
            Some(v) if v.len() > MAX_VALUE_LEN => Err(invalid(field, "value is too long")),
            Some(v) if v.chars().any(char::is_control) => {
                Err(invalid(field, "value contains control characters"))
            }
            other => Ok(other.cloned()),
        }
    }

    fn string(&self, field: &'static str) -> Result<String, ConfigError> {
        Ok(self.opt(field)?.unwrap_or_default())
    }

    fn number(&self, field: &'static str, min: u64, max: u64) -> Result<u64, ConfigError> {
        let raw = self.string(field)?;
        let n: u64 = raw
            .trim()
            .parse()
            .map_err(|_| invalid(field, format!("`{raw}` is not a whole number")))?;
        if n < min || n > max {
            return Err(invalid(field, format!("{n} is outside {min}..={max}")));
        }
        Ok(n)
    }
}

fn parse_cidrs(raw: &str) -> Result<Vec<IpNet>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| invalid("trusted_proxies", format!("`{s}` is not an IP or CIDR")))
        })
        .collect()
}

/// One URL or several, comma-separated (at most 16); returned comma-joined, each normalised.
fn parse_clickhouse_url(raw: &str) -> Result<String, ConfigError> {
    let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
    if parts.len() > 16 {
        return Err(invalid("clickhouse_url", "lists more than 16 URLs"));
    }
    if parts.iter().any(|p| p.is_empty()) {
        return Err(invalid(
            "clickhouse_url",
            "has an empty entry (URLs are separated by single commas)",
        ));
    }
    let urls = parts
        .into_iter()
        .map(parse_one_clickhouse_url)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(urls.join(","))
}

fn parse_one_clickhouse_url(raw: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| invalid("clickhouse_url", format!("`{raw}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            "clickhouse_url",
            "must start with http:// or https://",
        ));
    }
    if url.host_str().is_none() {
        return Err(invalid("clickhouse_url", "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "clickhouse_url",
            "put credentials in clickhouse_user / clickhouse_password, not in the URL",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn parse_identifier(field: &'static str, raw: &str) -> Result<String, ConfigError> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !raw.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(raw.to_string())
    } else {
        Err(invalid(
            field,
            format!("`{raw}` must be 1-64 letters, digits or _, not starting with a digit"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_file_or_env() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.raw_retention_days, 30);
        assert!(c.clickhouse.is_none());
        assert!(c.trusted_proxies.is_empty());
    }

    #[test]
    fn environment_overrides_file() {
        let dir = std::env::temp_dir().join(format!("ff-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("footfall.toml");
        std::fs::write(
            &path,
            "batch_size = 500\ntrusted_proxies = [\"10.0.0.0/8\"]\n[clickhouse]\nurl = \"http://ch:8123/\"\ndatabase = \"stats\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), env(&[("FOOTFALL_BATCH_SIZE", "700")])).unwrap();
        assert_eq!(c.batch_size, 700);
        assert_eq!(
            c.trusted_proxies,
            vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
        let ch = c.clickhouse.unwrap();
        assert_eq!(ch.url, "http://ch:8123");
        assert_eq!(ch.database, "stats");
    }

    #[test]
    fn every_bad_value_names_its_field() {
        let cases = [
            ("FOOTFALL_LISTEN", "nowhere", "listen"),
            ("FOOTFALL_RAW_RETENTION_DAYS", "0", "raw_retention_days"),
            ("FOOTFALL_QUERY_TIMEOUT_SECS", "0", "query_timeout_secs"),
            ("FOOTFALL_QUERY_TIMEOUT_SECS", "3601", "query_timeout_secs"),
            ("FOOTFALL_SAMPLING_THRESHOLD", "-1", "sampling_threshold"),
            (
                "FOOTFALL_SAMPLING_THRESHOLD",
                "1000000000001",
                "sampling_threshold",
            ),
            ("FOOTFALL_SAMPLING_THRESHOLD", "many", "sampling_threshold"),
            (
                "FOOTFALL_AGGREGATE_RETENTION_DAYS",
                "-1",
                "aggregate_retention_days",
            ),
            ("FOOTFALL_BATCH_SIZE", "ten", "batch_size"),
            ("FOOTFALL_FLUSH_INTERVAL_MS", "1", "flush_interval_ms"),
            (
                "FOOTFALL_TRUSTED_PROXIES",
                "10.0.0.0/8,banana",
                "trusted_proxies",
            ),
            ("FOOTFALL_CLICKHOUSE_URL", "ftp://x", "clickhouse_url"),
            ("FOOTFALL_GEOIP_DB", "/nonexistent/file.mmdb", "geoip_db"),
            ("FOOTFALL_CLIENT_IP_HEADER", "X Real IP", "client_ip_header"),
            ("FOOTFALL_METRICS_TOKEN", "short", "metrics_token"),
            ("FOOTFALL_QUEUE_CAPACITY", "99999999999", "queue_capacity"),
            ("FOOTFALL_SPOOL_MAX_MB", "0", "spool_max_mb"),
            ("FOOTFALL_RATE_LIMIT_PER_IP", "-1", "rate_limit_per_ip"),
            ("FOOTFALL_RATE_LIMIT_BURST", "0", "rate_limit_burst"),
            (
                "FOOTFALL_MAX_CONCURRENT_REQUESTS",
                "lots",
                "max_concurrent_requests",
            ),
        ];
        for (key, value, field) in cases {
            let err = Config::load(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{key}={value}: {err}");
        }
        let err = Config::load(
            None,
            env(&[
                ("FOOTFALL_CLICKHOUSE_URL", "http://x"),
                ("FOOTFALL_CLICKHOUSE_DATABASE", "a;drop"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("clickhouse_database"), "{err}");
    }

    #[test]
    fn several_clickhouse_urls_and_a_cluster() {
        let c = Config::load(
            None,
            env(&[
                (
                    "FOOTFALL_CLICKHOUSE_URL",
                    "http://ch1:8123/, http://ch2:8123",
                ),
                ("FOOTFALL_CLICKHOUSE_CLUSTER", "analytics_2x2"),
            ]),
        )
        .unwrap();
        let ch = c.clickhouse.unwrap();
        assert_eq!(ch.urls(), ["http://ch1:8123", "http://ch2:8123"]);
        assert_eq!(ch.cluster.as_deref(), Some("analytics_2x2"));
        let single = Config::load(None, env(&[("FOOTFALL_CLICKHOUSE_URL", "http://ch1:8123")]))
            .unwrap()
            .clickhouse
            .unwrap();
        assert_eq!(single.cluster, None);
        for (url, cluster, field, says) in [
            ("http://a,,http://b", "", "clickhouse_url", "empty entry"),
            ("http://a,ftp://b", "", "clickhouse_url", "http://"),
            ("http://a", "x y", "clickhouse_cluster", "letters, digits"),
            (
                "http://a",
                "c'; DROP",
                "clickhouse_cluster",
                "letters, digits",
            ),
        ] {
            let err = Config::load(
                None,
                env(&[
                    ("FOOTFALL_CLICKHOUSE_URL", url),
                    ("FOOTFALL_CLICKHOUSE_CLUSTER", cluster),
                ]),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(field) && err.contains(says),
                "{url} {cluster}: {err}"
            );
        }
        let many = vec!["http://a"; 17].join(",");
        let err = Config::load(None, env(&[("FOOTFALL_CLICKHOUSE_URL", &many)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 16"), "{err}");
    }

    #[test]
    fn geoip_db_takes_a_list_in_the_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.mmdb"), dir.path().join("b.mmdb"));
        std::fs::write(&a, b"x").unwrap();
        std::fs::write(&b, b"x").unwrap();
        let file = dir.path().join("footfall.toml");
        std::fs::write(
            &file,
            format!(
                "geoip_db = [{:?}, {:?}]\n",
                a.display().to_string(),
                b.display().to_string()
            ),
        )
        .unwrap();
        let c = Config::load(Some(&file), Vec::new()).unwrap();
        assert_eq!(c.geoip_db, vec![a.clone(), b.clone()]);
        let env = vec![(
            "FOOTFALL_GEOIP_DB".to_string(),
            format!("{}, {}", b.display(), a.display()),
        )];
        assert_eq!(
            Config::load(None, env).unwrap().geoip_db,
            vec![b.clone(), a.clone()]
        );
        let nine = vec![(
            "FOOTFALL_GEOIP_DB".to_string(),
            vec![a.display().to_string(); 9].join(","),
        )];
        assert!(
            Config::load(None, nine)
                .unwrap_err()
                .to_string()
                .contains("at most 8")
        );
        let missing = vec![(
            "FOOTFALL_GEOIP_DB".to_string(),
            format!("{},/nonexistent.mmdb", a.display()),
        )];
        assert!(
            Config::load(None, missing)
                .unwrap_err()
                .to_string()
                .contains("/nonexistent.mmdb")
        );
        assert!(Config::load(None, Vec::new()).unwrap().geoip_db.is_empty());
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("ff-config-unknown-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("footfall.toml");
        std::fs::write(&path, "batch_sise = 5\n").unwrap();
        let err = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(err.contains("batch_sise"), "{err}");
        std::fs::write(&path, "[clickhouse]\nhost = \"x\"\n").unwrap();
        let err = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(err.contains("clickhouse.host"), "{err}");
    }

    #[test]
    fn password_is_not_printed_in_debug() {
        let c = Config::load(
            None,
            env(&[
                ("FOOTFALL_CLICKHOUSE_URL", "http://x"),
                ("FOOTFALL_CLICKHOUSE_PASSWORD", "hunter2"),
            ]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
