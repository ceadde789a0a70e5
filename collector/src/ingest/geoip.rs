//! GeoIP: country, region and city of a truncated IP address.
//!
//! Reads MaxMind DB files with the `maxminddb` crate: the GeoIP2/GeoLite2 City and Country
//! layouts (`country.iso_code`, `subdivisions[0].iso_code`, `city.names.en`) and the flat
//! layout of the free DB-IP / ip-location-db files (`country_code`). Only truncated
//! addresses are ever looked up, so the answer is at most as precise as the /24 or /48.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

/// Where an address is; empty strings for what the database does not know.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Geo {
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// ISO 3166-2 subdivision code, e.g. `GB-ENG`.
    pub region: String,
    /// City name in English.
    pub city: String,
    /// Country and region names in English (empty where the database has none).
    pub country_name: String,
    pub region_name: String,
}

/// An open GeoIP database.
pub struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
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
    #[serde(borrow, default)]
    city: Option<Named<'a>>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Named<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    names: Option<BTreeMap<&'a str, &'a str>>,
}

impl GeoIp {
    pub fn open(path: &Path) -> Result<Self, GeoIpError> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| GeoIpError {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self { reader })
    }

    /// The database's type, e.g. `GeoIP2-City`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Looks up an address (callers pass truncated addresses). Errors inside the database
    /// answer "unknown" rather than failing the event.
    pub fn lookup(&self, ip: IpAddr) -> Geo {
        let Ok(result) = self.reader.lookup(ip) else {
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
        let region = match record
            .subdivisions
            .as_ref()
            .and_then(|s| s.first())
            .and_then(|s| s.iso_code)
        {
            Some(code) if !country.is_empty() => format!("{country}-{code}"),
            _ => String::new(),
        };
        let english = |n: Option<&Named>| {
            n.and_then(|c| c.names.as_ref())
                .and_then(|n| n.get("en").copied())
                .unwrap_or_default()
                .to_string()
        };
        let subdivision = record.subdivisions.as_ref().and_then(|s| s.first());
        Geo {
            city: english(record.city.as_ref()),
            country_name: if country.is_empty() {
                String::new()
            } else {
                english(record.country.as_ref())
            },
            region_name: if region.is_empty() {
                String::new()
            } else {
                english(subdivision)
            },
            country,
            region,
        }
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
    fn country_layout() {
        let db = fixture("GeoIP2-Country-Test.mmdb");
        let g = db.lookup("175.16.199.0".parse().unwrap());
        assert_eq!((g.country.as_str(), g.city.as_str()), ("CN", ""));
    }
}
