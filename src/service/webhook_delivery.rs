//! Delivers the webhook outbox the Svix way: a background task claims due
//! deliveries (one node each: the claim is a lease, taken with `SKIP
//! LOCKED` on PostgreSQL), POSTs each signed body, and records the outcome:
//! delivered on 2xx, else retried with exponential backoff until the retry
//! window (24 h) is over, and then the endpoint is disabled. Requests that
//! cause events only write them to the outbox, so a slow or dead endpoint
//! never slows them down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::VaultService;
use super::background::pause;
use super::webhooks::{WebhookConfig, is_public};
use crate::catalog::{DeliveryEnd, WebhookDelivery};
use crate::model::time::now_ms;

/// Longest pause between two looks at the outbox: events written by this
/// or another node are picked up within it. A look is one read; a claim
/// (a write) is made only when something is due.
const POLL: Duration = Duration::from_millis(100);
/// Pause after the catalog failed to answer.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Longest error text kept with a delivery.
const MAX_ERROR: usize = 300;

/// The `svix-signature` value of one body: `v1,<base64 HMAC-SHA256>` of
/// `{id}.{timestamp}.{body}` for each key, space-separated (two during a
/// rotation, so a receiver holding either secret accepts it).
pub fn signature_header(keys: &[&[u8]], msg_id: &str, timestamp: i64, body: &str) -> String {
    keys.iter()
        .map(|key| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .expect("HMAC takes a key of any length");
            mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
            mac.update(body.as_bytes());
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Delay before retry number `attempts` (1 for the first retry).
pub fn backoff(config: &WebhookConfig, attempts: u32) -> Duration {
    config
        .retry_base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(config.retry_cap)
}

/// What to record after a failed attempt made at `now`: another try, no
/// later than the window's end (so the last try is made at its end), or
/// the end of the endpoint once the window is over.
pub fn after_failure(
    config: &WebhookConfig,
    created_at: i64,
    failed_before: i64,
    now: i64,
    error: String,
) -> DeliveryEnd {
    let window_end = created_at.saturating_add(config.retry_window.as_millis() as i64);
    if now >= window_end {
        return DeliveryEnd::GiveUp { error };
    }
    let delay = backoff(config, failed_before as u32 + 1).as_millis() as i64;
    DeliveryEnd::Retry {
        next_attempt_at: now.saturating_add(delay).min(window_end),
        error,
    }
}

/// The delivering task of one node, until `stop`.
pub async fn run(service: VaultService, stop: CancellationToken) {
    let config = service.config.webhooks.clone();
    let mut builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(10)))
        // A proxy from the environment would resolve and connect for us,
        // past the public-address check below.
        .no_proxy()
        // A redirect could lead to an address the URL check refused.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vaultplus-webhooks/", env!("CARGO_PKG_VERSION")));
    if !config.allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    let http = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client: no deliveries");
            return;
        }
    };
    let owner = format!("webhooks-{}", uuid::Uuid::new_v4().simple());
    // Long enough for an attempt to end (its timeout) and be recorded: a
    // delivery is claimed only when a slot is free to start it at once.
    let lease = config.timeout.saturating_mul(2) + Duration::from_secs(10);
    // Slots are refilled as they free, rather than batch by batch: a
    // receiver that hangs holds one slot until its timeout, not the node.
    let slots = Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
    let running = tokio_util::task::TaskTracker::new();
    let mut idle = true;
    while !stop.is_cancelled() {
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.cancelled() => break,
        };
        let mut permits = vec![first];
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        if idle {
            // The last claim found nothing: read when something is due
            // before claiming again, so an idle node only reads.
            let due = service.catalog.next_webhook_due().await;
            let wait = match due {
                Ok(Some(due)) => (due - now_ms()).max(0) as u64,
                Ok(None) => POLL.as_millis() as u64,
                Err(_) => ERROR_PAUSE.as_millis() as u64,
            };
            if wait > 0 {
                drop(permits);
                if !pause(&stop, Duration::from_millis(wait).min(POLL)).await {
                    break;
                }
                continue;
            }
        }
        let now = now_ms();
        let claimed = service
            .catalog
            .claim_webhook_deliveries(
                &owner,
                permits.len() as u64,
                now + lease.as_millis() as i64,
                now,
            )
            .await;
        let deliveries = match claimed {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot claim webhook deliveries");
                drop(permits);
                if !pause(&stop, ERROR_PAUSE).await {
                    break;
                }
                continue;
            }
        };
        idle = deliveries.is_empty();
        if idle {
            // Due by the read yet nothing to claim (another node is
            // claiming it): look again after a pause, not at once.
            drop(permits);
            if !pause(&stop, POLL).await {
                break;
            }
            continue;
        }
        for (d, permit) in deliveries.into_iter().zip(permits) {
            let (service, http, owner, config) =
                (service.clone(), http.clone(), owner.clone(), config.clone());
            running.spawn(async move {
                let end = attempt(&service, &http, &config, &d).await;
                if let Err(e) = service
                    .catalog
                    .end_webhook_delivery(d.id, &owner, &end, now_ms())
                    .await
                {
                    // The lease runs out and the delivery is tried again.
                    tracing::warn!(error = %format!("{e:#}"), msg = %d.msg_id,
                        "cannot record a webhook delivery's outcome");
                }
                drop(permit);
            });
        }
    }
    // Every attempt under way ends (each has a timeout) before a stop
    // returns: none is left leased.
    running.close();
    running.wait().await;
}

/// Resolves an endpoint's host at each connection and keeps its public
/// addresses only: a name checked at registration that resolves to a
/// private address later (DNS rebinding) is never called. (An address in
/// the URL itself was checked at registration, and a URL does not change.)
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(&a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (see --allow-private-webhooks)"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// False when the URL's host is an IP address that is not public.
fn literal_is_public(raw: &str) -> bool {
    match url::Url::parse(raw)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Ipv4(a)) => is_public(&std::net::IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => is_public(&std::net::IpAddr::V6(a)),
        _ => true,
    }
}

/// One attempt of one delivery.
async fn attempt(
    service: &VaultService,
    http: &reqwest::Client,
    config: &WebhookConfig,
    d: &WebhookDelivery,
) -> DeliveryEnd {
    let secrets = &service.config.secrets;
    let now = now_ms();
    // The resolver checks names at each connection; an address written in
    // the URL is checked here (it was registered, perhaps, while
    // --allow-private-webhooks was on).
    if !config.allow_private && !literal_is_public(&d.url) {
        let error = "the URL's address is not public (see --allow-private-webhooks)".to_owned();
        return after_failure(config, d.created_at, d.attempts, now, error);
    }
    let mut keys = Vec::with_capacity(2);
    match secrets.open_webhook_secret(&d.endpoint_id, &d.secret) {
        Ok(k) => keys.push(k),
        Err(e) => {
            // No master key, or the wrong one: the operator must act, and
            // the delivery waits in the outbox meanwhile. Not the
            // endpoint's failure: it does not run down the retry window
            // (which would disable every endpoint after a day).
            let error = format!("{e:#}");
            tracing::error!(endpoint = %d.endpoint_id, %error, "cannot sign a webhook delivery");
            return DeliveryEnd::Retry {
                next_attempt_at: now
                    .saturating_add(backoff(config, d.attempts as u32 + 1).as_millis() as i64),
                error,
            };
        }
    }
    if let (Some(prev), Some(until)) = (&d.previous_secret, d.previous_until)
        && until > now
        && let Ok(k) = secrets.open_webhook_secret(&d.endpoint_id, prev)
    {
        keys.push(k);
    }
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let timestamp = now / 1000;
    let signature = signature_header(&keys, &d.msg_id, timestamp, &d.payload);
    let sent = http
        .post(&d.url)
        .header("content-type", "application/json")
        .header("svix-id", &d.msg_id)
        .header("svix-timestamp", timestamp.to_string())
        .header("svix-signature", signature)
        .body(d.payload.clone())
        .send()
        .await;
    let error = match sent {
        Ok(r) if r.status().is_success() => {
            tracing::debug!(msg = %d.msg_id, endpoint = %d.endpoint_id, "webhook delivered");
            return DeliveryEnd::Delivered;
        }
        Ok(r) => format!("the endpoint answered {}", r.status()),
        Err(e) if e.is_timeout() => format!("no answer within {:?}", config.timeout),
        Err(e) => format!("cannot reach the endpoint: {e}"),
    };
    let error: String = error.chars().take(MAX_ERROR).collect();
    tracing::info!(msg = %d.msg_id, endpoint = %d.endpoint_id, attempts = d.attempts + 1,
        %error, "webhook delivery failed");
    after_failure(config, d.created_at, d.attempts, now_ms(), error)
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_address_in_the_url_is_checked_at_delivery() {
        assert!(!literal_is_public("http://127.0.0.1:9/hook"));
        assert!(!literal_is_public("http://[::ffff:10.0.0.1]/hook"));
        assert!(literal_is_public("https://93.184.216.34/hook"));
        // Names are the resolver's to check, at each connection.
        assert!(literal_is_public("https://example.com/hook"));
    }
    use super::*;

    #[tokio::test]
    async fn deliveries_resolve_names_to_public_addresses_only() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = PublicOnly.resolve(name).await.err().unwrap().to_string();
        assert!(err.contains("no public address"), "{err}");
    }

    #[test]
    fn signs_like_svix() {
        // The test vector of Svix's own libraries.
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature_header(
            &[&key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let two = signature_header(&[&key, b"other"], "m", 1, "{}");
        let parts: Vec<&str> = two.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }

    fn config() -> WebhookConfig {
        WebhookConfig {
            retry_base: Duration::from_secs(5),
            retry_cap: Duration::from_secs(60),
            retry_window: Duration::from_secs(3600),
            ..WebhookConfig::default()
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let c = config();
        let delays: Vec<u64> = (1..=6).map(|a| backoff(&c, a).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(&c, 200).as_secs(), 60);
    }

    #[test]
    fn retries_end_at_the_window_and_then_give_up() {
        let c = config();
        let hour = 3_600_000;
        assert_eq!(
            after_failure(&c, 0, 0, 1000, "e".into()),
            DeliveryEnd::Retry {
                next_attempt_at: 6000,
                error: "e".into()
            }
        );
        // The last retry is made at the window's end, not after it.
        assert_eq!(
            after_failure(&c, 0, 9, hour - 1, "e".into()),
            DeliveryEnd::Retry {
                next_attempt_at: hour,
                error: "e".into()
            }
        );
        assert_eq!(
            after_failure(&c, 0, 10, hour, "e".into()),
            DeliveryEnd::GiveUp { error: "e".into() }
        );
    }
}
