//! Who is rate limited by what: API keys by their org's quota (its override,
//! else the server's), media URLs by client address. The bucket arithmetic
//! is in [`super::rate_limit`].

use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;

use crate::catalog::OrgRateLimit;

use super::rate_limit::{Decision, KeyedLimiter, MAX_RATE, Quota};
use super::{Principal, VaultService};

/// Buckets kept at most, per kind. API keys only get a bucket once they
/// authenticated, so their number is bounded by the keys that exist;
/// client addresses are not, hence the cap (see [`KeyedLimiter`]).
const MAX_BUCKETS: usize = 100_000;

/// The server's limits (0 turns one off).
#[derive(Clone, Debug, Default)]
pub struct RateLimitConfig {
    /// Requests a minute per API key.
    pub per_minute: u32,
    /// Requests an API key may make at once (the bucket's size).
    pub burst: u32,
    /// Requests a minute per client address on media URLs; the burst is the
    /// same number, so a page of thumbnails loads at once.
    pub media_per_minute: u32,
    /// Peers whose `X-Forwarded-For` names the client (reverse proxies).
    pub trusted_proxies: Vec<IpNet>,
}

pub struct Limiters {
    keys: KeyedLimiter<String>,
    clients: KeyedLimiter<IpAddr>,
}

impl Default for Limiters {
    fn default() -> Self {
        Self {
            keys: KeyedLimiter::new(MAX_BUCKETS),
            clients: KeyedLimiter::new(MAX_BUCKETS),
        }
    }
}

/// The quota of an org's keys: each field of its override, else the
/// server's value; none when either ends up 0.
pub fn org_quota(server: &RateLimitConfig, org: &OrgRateLimit) -> Option<Quota> {
    // An override tightens the server's limit, never lifts it, even one
    // stored while the server allowed more.
    let tighter = |own: Option<u32>, server: u32| match own {
        Some(v) if server > 0 => v.min(server),
        Some(v) => v,
        None => server,
    };
    Quota::new(
        tighter(org.per_minute, server.per_minute),
        tighter(org.burst, server.burst),
    )
}

/// An org may tighten its limit, not lift it: its keys are its own, and the
/// server's limit protects the other tenants. Each value is 1 or more and at
/// most the server's (or [`MAX_RATE`] when the server sets none).
pub fn check_org_override(server: &RateLimitConfig, org: &OrgRateLimit) -> Result<(), String> {
    for (field, value, ceiling, option) in [
        (
            "rateLimitPerMinute",
            org.per_minute,
            server.per_minute,
            "--rate-limit-per-minute",
        ),
        (
            "rateLimitBurst",
            org.burst,
            server.burst,
            "--rate-limit-burst",
        ),
    ] {
        let Some(v) = value else { continue };
        if v == 0 {
            return Err(format!(
                "{field} must be at least 1 (null takes the server's limit)"
            ));
        }
        if v > org_override_max(ceiling) {
            return Err(if ceiling > 0 && v > ceiling {
                format!("{field} must be at most the server's limit, {ceiling} ({option}), got {v}")
            } else {
                format!("{field} must be at most {MAX_RATE}, got {v}")
            });
        }
    }
    Ok(())
}

/// The largest value an org may set under the server's `ceiling` (0: the
/// server sets none). The OpenAPI document a server serves declares it.
pub fn org_override_max(ceiling: u32) -> u32 {
    if ceiling > 0 {
        ceiling.min(MAX_RATE)
    } else {
        MAX_RATE
    }
}

/// Addresses as buckets: an IPv6 client usually holds a whole /64, so it
/// counts as one; an IPv4-mapped address is its IPv4 address.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

impl VaultService {
    /// The largest `rateLimitPerMinute` and `rateLimitBurst` an org may
    /// set on this server.
    pub fn org_rate_limit_max(&self) -> (u32, u32) {
        let server = &self.config.rate_limits;
        (
            org_override_max(server.per_minute),
            org_override_max(server.burst),
        )
    }

    /// Takes a token for an authenticated key under its org's limit (read
    /// with the key: [`VaultService::authenticate_key`]); `None` when the
    /// org has no limit.
    pub fn admit_api_key(&self, who: &Principal, limit: &OrgRateLimit) -> Option<Decision> {
        org_quota(&self.config.rate_limits, limit)
            .map(|q| self.limiters.keys.check(&who.key_id, q, Instant::now()))
    }

    /// Takes a token for a media URL client; `None` when media URLs are not
    /// limited.
    pub fn admit_media_client(&self, client: IpAddr) -> Option<Decision> {
        let n = self.config.rate_limits.media_per_minute;
        Quota::new(n, n).map(|q| {
            self.limiters
                .clients
                .check(&client_key(client), q, Instant::now())
        })
    }

    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.config.rate_limits.trusted_proxies
    }

    /// Forgets full buckets (run periodically).
    pub fn prune_rate_limits(&self) {
        let now = Instant::now();
        self.limiters.keys.prune(now);
        self.limiters.clients.prune(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: RateLimitConfig = RateLimitConfig {
        per_minute: 600,
        burst: 300,
        media_per_minute: 0,
        trusted_proxies: Vec::new(),
    };

    #[test]
    fn override_fields_replace_the_servers_one_by_one() {
        let none = OrgRateLimit::default();
        assert_eq!(org_quota(&SERVER, &none), Quota::new(600, 300));
        let half = OrgRateLimit {
            per_minute: Some(60),
            burst: None,
        };
        assert_eq!(org_quota(&SERVER, &half), Quota::new(60, 300));
        let off = RateLimitConfig::default();
        assert_eq!(org_quota(&off, &half), None, "burst 0: no limit");
        let both = OrgRateLimit {
            per_minute: Some(60),
            burst: Some(5),
        };
        assert_eq!(org_quota(&off, &both), Quota::new(60, 5));
    }

    #[test]
    fn overrides_may_only_tighten() {
        let ok = OrgRateLimit {
            per_minute: Some(600),
            burst: Some(1),
        };
        assert!(check_org_override(&SERVER, &ok).is_ok());
        for bad in [
            OrgRateLimit {
                per_minute: Some(0),
                burst: None,
            },
            OrgRateLimit {
                per_minute: Some(601),
                burst: None,
            },
            OrgRateLimit {
                per_minute: None,
                burst: Some(301),
            },
        ] {
            assert!(check_org_override(&SERVER, &bad).is_err(), "{bad:?}");
        }
        let off = RateLimitConfig::default();
        let big = OrgRateLimit {
            per_minute: Some(MAX_RATE + 1),
            burst: None,
        };
        assert!(check_org_override(&off, &big).is_err());
        assert!(check_org_override(&off, &ok).is_ok());
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
