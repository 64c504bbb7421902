//! Webhook endpoints of an organization: what may be registered, and the
//! secrets that sign their deliveries (`webhook_delivery` sends them).

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{Principal, ServiceError, ServiceResult, VaultService};
use crate::catalog::WebhookEndpoint;
use crate::model::schema;
use crate::model::time::now_ms;
use crate::model::webhook::{ENDPOINT_PREFIX, EVENT_TYPES, SECRET_PREFIX, new_id};
use crate::model::webhook_views::{
    CreatedWebhookEndpoint, RotatedWebhookSecret, WebhookEndpointList, WebhookEndpointView,
};

/// Bytes of a new endpoint secret (plaintext secrets in the catalog are
/// this long, so they never look sealed: `secret_box`).
const SECRET_BYTES: usize = super::secret_box::SECRET_LEN;
/// How long the secret a rotation replaces keeps signing beside the new one.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// Endpoints one org may have: every event is written once per subscriber.
pub const MAX_ENDPOINTS: usize = 50;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_DESCRIPTION_LEN: usize = 256;

/// `POST /v2/vault-plus/webhooks`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWebhookEndpoint {
    #[schema(schema_with = url_schema)]
    pub url: String,
    /// The event types it receives (at least one, each once).
    #[schema(schema_with = events_schema)]
    pub events: Vec<String>,
    #[schema(schema_with = description_schema)]
    pub description: Option<String>,
}

/// The URL, as the document declares it (the rest of its rule needs the
/// server: the host's addresses).
pub fn url_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    schema::schema(serde_json::json!({
        "type": "string",
        "maxLength": MAX_URL_LEN,
        "description": "Where deliveries are POSTed: http or https, without credentials, and \
            (unless the server runs with --allow-private-webhooks) a host whose every \
            address is public: no loopback, private, shared, link-local or unspecified \
            address.",
    }))
}

/// Free text for the app's own use.
pub fn description_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    schema::schema(serde_json::json!({
        "type": ["string", "null"],
        "maxLength": MAX_DESCRIPTION_LEN,
        "description": "Free text for the app's own use.",
    }))
}

/// The event types, as the document declares them: the list the parser
/// checks against.
pub fn events_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    schema::schema(serde_json::json!({
        "type": "array",
        "items": schema::one_of(&EVENT_TYPES),
        "minItems": 1,
        "uniqueItems": true,
    }))
}

/// The options that shape registration and delivery.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Accept endpoint URLs whose host is loopback, private or link-local
    /// (tests; a closed network).
    pub allow_private: bool,
    /// First retry delay; doubles per attempt up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How long an event is retried; then it is dropped, and its endpoint
    /// disabled if no delivery succeeded meanwhile.
    pub retry_window: Duration,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
    /// Deliveries in flight at once on this node.
    pub concurrency: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry_base: Duration::from_secs(5),
            retry_cap: Duration::from_secs(3600),
            retry_window: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(15),
            concurrency: 16,
        }
    }
}

impl VaultService {
    pub async fn create_webhook(
        &self,
        who: &Principal,
        req: NewWebhookEndpoint,
    ) -> ServiceResult<CreatedWebhookEndpoint> {
        let url = checked_url(&req.url, self.config.webhooks.allow_private).await?;
        let events = checked_events(&req.events)?;
        if let Some(d) = &req.description
            && d.chars().count() > MAX_DESCRIPTION_LEN
        {
            return Err(ServiceError::bad_request(format!(
                "description is longer than {MAX_DESCRIPTION_LEN} characters"
            )));
        }
        if self.catalog.webhook_endpoints(who.org_id).await?.len() >= MAX_ENDPOINTS {
            return Err(ServiceError::Conflict(format!(
                "the organization has {MAX_ENDPOINTS} webhook endpoints already: delete one first"
            )));
        }
        let id = new_id(ENDPOINT_PREFIX);
        let secret = new_secret();
        let endpoint = WebhookEndpoint {
            secret: self.config.secrets.seal_webhook_secret(&id, &secret)?,
            id,
            org_id: who.org_id,
            url,
            description: req.description,
            events,
            previous_secret: None,
            previous_until: None,
            created_at: now_ms(),
            disabled_at: None,
            disabled_reason: None,
        };
        self.catalog.insert_webhook_endpoint(&endpoint).await?;
        // The host only: a URL's path and query often carry a token.
        let host = url::Url::parse(&endpoint.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        tracing::info!(endpoint = %endpoint.id, %host, "webhook endpoint created");
        Ok(CreatedWebhookEndpoint {
            id: endpoint.id,
            url: endpoint.url,
            events: endpoint.events,
            description: endpoint.description,
            secret: secret_text(&secret),
        })
    }

    pub async fn list_webhooks(&self, who: &Principal) -> ServiceResult<WebhookEndpointList> {
        let items = self
            .catalog
            .webhook_endpoints(who.org_id)
            .await?
            .into_iter()
            .map(view)
            .collect();
        Ok(WebhookEndpointList { items })
    }

    pub async fn delete_webhook(&self, who: &Principal, id: &str) -> ServiceResult<()> {
        if self.catalog.delete_webhook_endpoint(who.org_id, id).await? {
            Ok(())
        } else {
            Err(not_found())
        }
    }

    pub async fn rotate_webhook_secret(
        &self,
        who: &Principal,
        id: &str,
    ) -> ServiceResult<RotatedWebhookSecret> {
        let secret = new_secret();
        let sealed = self.config.secrets.seal_webhook_secret(id, &secret)?;
        let now = now_ms();
        let until = now + ROTATION_OVERLAP.as_millis() as i64;
        let stored = self
            .catalog
            .rotate_webhook_secret(who.org_id, id, &sealed, now, until)
            .await?
            .ok_or_else(not_found)?;
        if stored.secret != sealed {
            let since = stored.previous_until.unwrap_or(now);
            return Err(ServiceError::Conflict(format!(
                "the secret replaced by the last rotation still signs until {} \
                 (Unix milliseconds): rotate again after that",
                since
            )));
        }
        Ok(RotatedWebhookSecret {
            id: id.to_owned(),
            secret: secret_text(&secret),
            previous_secret_expires_at: until,
        })
    }
}

fn not_found() -> ServiceError {
    ServiceError::NotFound("webhook endpoint not found".into())
}

fn view(e: WebhookEndpoint) -> WebhookEndpointView {
    WebhookEndpointView {
        enabled: e.disabled_at.is_none(),
        id: e.id,
        url: e.url,
        events: e.events,
        description: e.description,
        created_at: e.created_at,
        disabled_at: e.disabled_at,
        disabled_reason: e.disabled_reason,
    }
}

fn new_secret() -> [u8; SECRET_BYTES] {
    let mut s = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut s);
    s
}

/// A secret as the app is shown it and the Svix verifiers take it.
pub fn secret_text(secret: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(secret))
}

fn checked_events(events: &[String]) -> ServiceResult<Vec<String>> {
    if events.is_empty() {
        return Err(ServiceError::bad_request(
            "events must name at least one event type",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for e in events {
        if !EVENT_TYPES.contains(&e.as_str()) {
            return Err(ServiceError::bad_request(format!(
                "events: unknown event type {e:?}; expected one of {}",
                EVENT_TYPES.join(", ")
            )));
        }
        if out.contains(e) {
            return Err(ServiceError::bad_request(format!(
                "events: {e:?} is listed more than once"
            )));
        }
        out.push(e.clone());
    }
    Ok(out)
}

/// The URL as it will be called, or a 400 naming what is wrong with it.
async fn checked_url(raw: &str, allow_private: bool) -> ServiceResult<String> {
    let bad = |why: &str| ServiceError::bad_request(format!("url: {why}"));
    if raw.len() > MAX_URL_LEN {
        return Err(bad(&format!("longer than {MAX_URL_LEN} bytes")));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(&format!(
            "scheme {:?} is not allowed; use http or https",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    let Some(host) = url.host() else {
        return Err(bad("has no host"));
    };
    if !allow_private {
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<IpAddr> = match host {
            url::Host::Ipv4(a) => vec![IpAddr::V4(a)],
            url::Host::Ipv6(a) => vec![IpAddr::V6(a)],
            // Bounded: a name whose nameserver never answers must not
            // hold the request (and a blocking thread) for long.
            url::Host::Domain(d) => {
                match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((d, port)))
                    .await
                {
                    Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                    Ok(Err(_)) => return Err(bad(&format!("host {d:?} does not resolve"))),
                    Err(_) => return Err(bad(&format!("host {d:?} did not resolve in time"))),
                }
            }
        };
        // The address itself is not named: registration must not tell what
        // an internal name resolves to.
        if addrs.iter().any(|a| !is_public(a)) {
            return Err(bad(
                "host resolves to a loopback, private, link-local or other non-public address \
                 (the server refuses those unless started with --allow-private-webhooks)",
            ));
        }
        if addrs.is_empty() {
            return Err(bad("host has no address"));
        }
    }
    // Normalised (percent-encoding, punycode), the URL may have grown.
    let url = url.to_string();
    if url.len() > MAX_URL_LEN {
        return Err(bad(&format!(
            "longer than {MAX_URL_LEN} bytes once normalised"
        )));
    }
    Ok(url)
}

/// How long registering an endpoint waits for its host to resolve.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether an address is reachable on the public internet: in none of the
/// blocks of IANA's special-purpose registries that are not (loopback,
/// private, shared, link-local, documentation, benchmarking, multicast,
/// reserved), and, for the IPv6 forms that carry an IPv4 address (mapped,
/// NAT64, 6to4), judged by that address: it is where they lead.
pub fn is_public(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => is_public_v4(*v4),
        IpAddr::V6(v6) => is_public_v6(*v6),
    }
}

/// IPv4 blocks that are not the public internet: (network, prefix length).
const V4_SPECIAL: [(u32, u32); 14] = [
    (0x0000_0000, 8),  // "this network"
    (0x0a00_0000, 8),  // private
    (0x6440_0000, 10), // shared (carrier-grade NAT)
    (0x7f00_0000, 8),  // loopback
    (0xa9fe_0000, 16), // link-local (cloud metadata services)
    (0xac10_0000, 12), // private
    (0xc000_0000, 24), // IETF protocol assignments
    (0xc000_0200, 24), // documentation
    (0xc0a8_0000, 16), // private
    (0xc612_0000, 15), // benchmarking
    (0xc633_6400, 24), // documentation
    (0xcb00_7100, 24), // documentation
    (0xe000_0000, 4),  // multicast
    (0xf000_0000, 4),  // reserved, and broadcast
];

/// IPv6 blocks that are not the public internet (besides `::/96` and the
/// forms carrying an IPv4 address, handled apart).
const V6_SPECIAL: [(u128, u32); 8] = [
    (0x0064_ff9b_0001 << 80, 48), // local-use NAT64
    (0x0100 << 112, 64),          // discard
    (0x2001 << 112, 32),          // Teredo (an IPv4 address inside)
    (0x2001_0db8 << 96, 32),      // documentation
    (0xfc00 << 112, 7),           // unique local
    (0xfe80 << 112, 10),          // link-local
    (0xfec0 << 112, 10),          // site-local (deprecated)
    (0xff00 << 112, 8),           // multicast
];

fn is_public_v4(v4: std::net::Ipv4Addr) -> bool {
    let bits = u32::from(v4);
    !V4_SPECIAL
        .iter()
        .any(|&(net, len)| (bits ^ net) >> (32 - len) == 0)
}

fn is_public_v6(v6: std::net::Ipv6Addr) -> bool {
    let bits = u128::from(v6);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // Unspecified, loopback and the deprecated IPv4-compatible form.
    if bits >> 32 == 0 {
        return false;
    }
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return is_public_v4(std::net::Ipv4Addr::from(bits as u32));
    }
    // 6to4 (2002::/16) reaches the IPv4 address in bits 16 to 48.
    if bits >> 112 == 0x2002 {
        return is_public_v4(std::net::Ipv4Addr::from((bits >> 80) as u32));
    }
    !V6_SPECIAL
        .iter()
        .any(|&(net, len)| (bits ^ net) >> (128 - len) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "::7f00:1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(&a.parse().unwrap()), "{a}");
        }
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert!(is_public(&a.parse().unwrap()), "{a}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_and_named_in_the_error() {
        for (raw, want) in [
            ("ftp://example.com/x", "scheme"),
            ("not a url", "not a valid URL"),
            ("http://user:pw@93.184.216.34/", "credentials"),
            ("http://127.0.0.1:9/hook", "--allow-private-webhooks"),
            ("http://[::1]/hook", "--allow-private-webhooks"),
            ("http://10.0.0.1/hook", "--allow-private-webhooks"),
            ("http://localhost/hook", "--allow-private-webhooks"),
        ] {
            let err = checked_url(raw, false).await.unwrap_err().to_string();
            assert!(
                err.starts_with("url: ") && err.contains(want),
                "{raw}: {err}"
            );
        }
        assert_eq!(
            checked_url("http://127.0.0.1:9/hook", true).await.unwrap(),
            "http://127.0.0.1:9/hook"
        );
        assert!(checked_url("https://93.184.216.34/h", false).await.is_ok());
    }

    #[test]
    fn events_must_be_known_distinct_and_not_empty() {
        assert!(
            checked_events(&[])
                .unwrap_err()
                .to_string()
                .contains("at least one")
        );
        let err = checked_events(&["vault_plus.nope".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown event type") && err.contains(EVENT_TYPES[0]),
            "{err}"
        );
        let twice = vec![EVENT_TYPES[0].to_owned(), EVENT_TYPES[0].to_owned()];
        assert!(
            checked_events(&twice)
                .unwrap_err()
                .to_string()
                .contains("more than once")
        );
        assert_eq!(checked_events(&twice[..1]).unwrap(), twice[..1]);
    }
}
