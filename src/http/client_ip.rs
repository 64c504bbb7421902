//! Which address a request comes from, for per-client limits: the TCP peer,
//! unless the peer is a trusted proxy, in which case `X-Forwarded-For` says.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Parses `--trusted-proxy` values: IP addresses or CIDR blocks.
pub fn parse_trusted(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("expected an IP address or a CIDR block, got {raw:?}"))
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// One `X-Forwarded-For` element: an address, maybe with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`). Anything else (`unknown`,
/// garbage) is `None`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client address. Each proxy appends the address it received the
/// request from, so only the right end of `X-Forwarded-For` is written by
/// proxies we trust; everything left of the first untrusted address may be
/// the client's own invention. Hence: walk from the right past trusted
/// proxies, and take the first address that is not one. Several
/// `X-Forwarded-For` headers count as one list, in order. A malformed
/// element stops the walk at the trusted hop that passed it on (no element
/// left of it can be believed); a list of nothing but trusted addresses
/// gives its left-most one.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut last_trusted = peer;
    // Lazy from the right: a huge header costs no allocation.
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return last_trusted;
        };
        for hop in value.rsplit(',') {
            match parse_hop(hop) {
                Some(ip) if is_trusted(ip, trusted) => last_trusted = ip,
                Some(ip) => return ip,
                None => return last_trusted,
            }
        }
    }
    last_trusted
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| parse_trusted(s).unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &t), ip("198.51.100.1"));
    }

    #[test]
    fn trusted_peer_gives_the_right_most_untrusted_hop() {
        let t = nets(&["10.0.0.0/8", "192.0.2.5"]);
        // The client forged the first element; the proxies appended the rest.
        let h = xff(&["1.1.1.1, 203.0.113.9, 10.1.2.3"]);
        assert_eq!(client_ip(ip("192.0.2.5"), &h, &t), ip("203.0.113.9"));
        // The same list over two headers.
        let h = xff(&["1.1.1.1", "203.0.113.9, 10.1.2.3"]);
        assert_eq!(client_ip(ip("192.0.2.5"), &h, &t), ip("203.0.113.9"));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        let t = nets(&["127.0.0.1"]);
        let h = xff(&["[2001:db8::7]:4711"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &t), ip("2001:db8::7"));
        let h = xff(&["203.0.113.9:80"]);
        assert_eq!(client_ip(ip("::ffff:127.0.0.1"), &h, &t), ip("203.0.113.9"));
    }

    #[test]
    fn malformed_or_missing_header_falls_back_to_the_trusted_hop() {
        let t = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        assert_eq!(client_ip(peer, &HeaderMap::new(), &t), peer);
        let h = xff(&["203.0.113.9, garbage"]);
        assert_eq!(client_ip(peer, &h, &t), peer, "garbage is not a client");
        let h = xff(&["203.0.113.9, unknown, 10.9.9.9"]);
        assert_eq!(client_ip(peer, &h, &t), ip("10.9.9.9"));
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap(),
        );
        assert_eq!(client_ip(peer, &h, &t), peer);
        let h = xff(&[""]);
        assert_eq!(client_ip(peer, &h, &t), peer);
    }

    #[test]
    fn all_trusted_gives_the_left_most() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["10.5.5.5, 10.6.6.6"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.5.5.5"));
    }

    #[test]
    fn trusted_list_parses_addresses_and_blocks() {
        assert!(parse_trusted("10.0.0.0/8").is_ok());
        assert!(parse_trusted("::1").is_ok());
        assert!(parse_trusted(" 192.0.2.1 ").is_ok());
        assert!(parse_trusted("10.0.0.0/33").is_err());
        assert!(parse_trusted("proxy.local").is_err());
    }
}
