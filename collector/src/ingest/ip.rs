//! The client's IP address: where it comes from and how it is truncated.
//!
//! The socket peer is the client unless the peer is a trusted proxy; then the header that
//! proxy sets names the client ([`Proxies::header`], the `client_ip_header` setting; only that
//! one header is believed, so a client cannot add another to spoof its address). With
//! `X-Forwarded-For` the right-most address that is not itself a trusted proxy is the client;
//! with a single-address header (`X-Real-IP`, `CF-Connecting-IP`…) its address is. The full
//! address is used only in memory for the visitor hash; everything else sees [`truncate`]d
//! addresses (IPv4 /24, IPv6 /48).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// Most `X-Forwarded-For` entries looked at.
const MAX_FORWARDED_HOPS: usize = 20;

/// The proxies whose word about the client is believed, and the header they set.
#[derive(Debug, Clone)]
pub struct Proxies {
    pub trusted: Vec<IpNet>,
    pub header: HeaderName,
}

impl Default for Proxies {
    fn default() -> Self {
        Proxies {
            trusted: Vec::new(),
            header: HeaderName::from_static("x-forwarded-for"),
        }
    }
}

/// The client address of a request that arrived from `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &Proxies) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| proxies.trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    if proxies.header != "x-forwarded-for" {
        // One address, set by the proxy; a client's own copy is replaced by it.
        return headers
            .get(&proxies.header)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_forwarded)
            .unwrap_or(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(parse_forwarded)
        .collect();
    let hops = forwarded.iter().rev().take(MAX_FORWARDED_HOPS);
    let mut last = peer;
    for ip in hops {
        last = *ip;
        if !is_trusted(ip) {
            return *ip;
        }
    }
    last
}

fn parse_forwarded(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .map(canonical)
}

/// IPv4-mapped IPv6 addresses become plain IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// IPv4 to its /24, IPv6 to its /48. An IPv6 address that carries a client's IPv4 address
/// becomes that IPv4 address's /24: 6to4 (`2002:AABB:CCDD::/48` is the whole IPv4 address
/// `AA.BB.CC.DD`, so its /48 would keep it all) and Teredo (`2001:0::/32`, the client's
/// address inverted in the last 32 bits).
pub fn truncate(ip: IpAddr) -> IpAddr {
    let v4_24 = |v4: Ipv4Addr| {
        let [a, b, c, _] = v4.octets();
        IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
    };
    match canonical(ip) {
        IpAddr::V4(v4) => v4_24(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let word = |hi: u16, lo: u16| (u32::from(hi) << 16) | u32::from(lo);
            match (s[0], s[1]) {
                (0x2002, _) => v4_24(Ipv4Addr::from(word(s[1], s[2]))),
                (0x2001, 0x0000) => v4_24(Ipv4Addr::from(!word(s[6], s[7]))),
                _ => IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(header: &'static str) -> Proxies {
        Proxies {
            trusted: vec!["10.0.0.0/8".parse().unwrap()],
            header: HeaderName::from_static(header),
        }
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]);
        assert_eq!(
            client_ip(ip("9.9.9.9"), &h, &Proxies::default()),
            ip("9.9.9.9")
        );
        assert_eq!(
            client_ip(ip("9.9.9.9"), &h, &proxies("x-forwarded-for")),
            ip("9.9.9.9")
        );
    }

    #[test]
    fn trusted_proxy_forwards_the_client() {
        let xff = proxies("x-forwarded-for");
        let h = headers(&[("x-forwarded-for", "spoofed, 1.2.3.4, 10.0.0.7")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff), ip("1.2.3.4"));
        let h = headers(&[("x-forwarded-for", "garbage")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff), ip("10.0.0.1"));
        let h = headers(&[("x-forwarded-for", "1.2.3.4:5678")]);
        assert_eq!(client_ip(ip("::ffff:10.0.0.1"), &h, &xff), ip("1.2.3.4"));
        // Another header is not believed when the proxy sets X-Forwarded-For.
        let h = headers(&[("x-real-ip", "2001:db8::1")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &xff), ip("10.0.0.1"));
    }

    #[test]
    fn a_proxy_that_sets_one_header_is_not_overruled_by_another() {
        // Behind a proxy that sets X-Real-IP (and passes the client's own X-Forwarded-For
        // through), the client cannot choose its address.
        let real = proxies("x-real-ip");
        let h = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-real-ip", "2001:db8::1")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &real), ip("2001:db8::1"));
        let cf = proxies("cf-connecting-ip");
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("cf-connecting-ip", "1.2.3.4"),
        ]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &cf), ip("1.2.3.4"));
        let h = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &cf), ip("10.0.0.1"));
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate(ip("81.2.69.142")), ip("81.2.69.0"));
        assert_eq!(truncate(ip("::ffff:81.2.69.142")), ip("81.2.69.0"));
        assert_eq!(truncate(ip("2001:db8:abcd:1234::1")), ip("2001:db8:abcd::"));
        // 6to4 carries 81.2.69.142 in its /48; Teredo carries 81.2.69.142 inverted.
        assert_eq!(truncate(ip("2002:5102:458e::1")), ip("81.2.69.0"));
        assert_eq!(
            truncate(ip("2001:0:4136:e378:8000:63bf:aefd:ba71")),
            ip("81.2.69.0")
        );
    }
}
