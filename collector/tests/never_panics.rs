//! Property tests: no input a client controls makes the ingest code panic, and the privacy
//! helpers keep their promises for every address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::{HeaderMap, HeaderValue};
use footfall::ingest::body::{parse_body, parse_query};
use footfall::ingest::ip::{client_ip, truncate};
use footfall::ingest::page::normalise;
use footfall::ingest::referrer::classify;
use footfall::ingest::useragent::{ClientHints, UaParser};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_body_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_body(&bytes);
    }

    #[test]
    fn json_shaped_bodies(n in ".{0,40}", u in ".{0,80}", p in ".{0,60}", extra in "[a-z$]{1,3}") {
        let body = format!(r#"{{"n":{n:?},"u":{u:?},"p":{p},"{extra}":1}}"#);
        let _ = parse_body(body.as_bytes());
    }

    #[test]
    fn any_query_string(q in ".{0,300}") {
        let _ = parse_query(&q, Some(&q));
    }

    #[test]
    fn any_url_and_referrer(url in ".{0,120}", referrer in ".{0,120}", hash in any::<bool>()) {
        if let Ok(page) = normalise(&url, hash) {
            prop_assert!(page.pathname.starts_with('/'));
            let _ = classify(Some(&referrer), &page);
        }
        let _ = normalise(&format!("https://example.com/{url}"), hash);
    }

    #[test]
    fn any_user_agent_and_client_hints(ua in ".{0,300}", brands in ".{0,120}", mobile in ".{0,4}", platform in ".{0,20}") {
        let parser = UaParser::new(16);
        let none = ClientHints::default();
        let info = parser.parse(&ua, &none);
        // Every stored name is one of the known classes or empty (shown as "(not set)").
        prop_assert!(["", "Desktop", "Mobile", "Tablet"].contains(&info.device.as_str()));
        let hinted = parser.parse(&ua, &ClientHints { brands: &brands, mobile: &mobile, platform: &platform });
        prop_assert!(["", "Desktop", "Mobile", "Tablet"].contains(&hinted.device.as_str()));
    }

    #[test]
    fn truncation_keeps_only_the_network(a in any::<u32>(), b in any::<u128>()) {
        let v4 = truncate(IpAddr::V4(Ipv4Addr::from(a)));
        prop_assert_eq!(v4, IpAddr::V4(Ipv4Addr::from(a & 0xffff_ff00)));
        let v6 = truncate(IpAddr::V6(Ipv6Addr::from(b)));
        let expected = if Ipv6Addr::from(b).to_ipv4_mapped().is_some() {
            IpAddr::V4(Ipv4Addr::from((b as u32) & 0xffff_ff00))
        } else if b >> 112 == 0x2002 {
            // 6to4: the IPv4 address in bits 16..48.
            IpAddr::V4(Ipv4Addr::from(((b >> 80) as u32) & 0xffff_ff00))
        } else if b >> 96 == 0x2001_0000 {
            // Teredo: the client's IPv4 address, inverted, in the last 32 bits.
            IpAddr::V4(Ipv4Addr::from(!(b as u32) & 0xffff_ff00))
        } else {
            IpAddr::V6(Ipv6Addr::from(b & (!0u128 << 80)))
        };
        prop_assert_eq!(v6, expected);
    }

    #[test]
    fn forwarded_headers_never_panic(header in ".{0,200}", peer in any::<u32>()) {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&header) {
            headers.insert("x-forwarded-for", v.clone());
            headers.insert("x-real-ip", v);
        }
        for header in ["x-forwarded-for", "x-real-ip"] {
            let proxies = footfall::ingest::ip::Proxies {
                trusted: vec!["0.0.0.0/0".parse().unwrap()],
                header: axum::http::HeaderName::from_static(header),
            };
            let _ = client_ip(IpAddr::V4(Ipv4Addr::from(peer)), &headers, &proxies);
        }
    }
}
