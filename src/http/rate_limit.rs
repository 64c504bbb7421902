//! Rate-limit middleware: per API key once the key authenticated (a wrong
//! key never gets a bucket, so it cannot fill memory), and per client
//! address on media URLs. The rule is in `service::rate_limit`; this only
//! copies its decision into headers.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client_ip::client_ip;
use super::error::ApiError;
use super::extract::{AuthChecked, api_key};
use crate::service::VaultService;
use crate::service::rate_limit::Decision;

/// Media URLs: the path the per-address limit applies to.
const MEDIA_PREFIX: &str = "/v2/media/";

pub async fn api_keys(State(svc): State<VaultService>, req: Request, next: Next) -> Response {
    if !req.headers().contains_key("apikey") {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    // The key and its org's limit in one catalog read.
    let checked = match api_key(&parts.headers) {
        Ok(presented) => svc
            .authenticate_key(presented)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let decision = checked
        .as_ref()
        .ok()
        .and_then(|(who, limit)| svc.admit_api_key(who, limit));
    parts
        .extensions
        .insert(AuthChecked(checked.map(|(who, _)| who)));
    let req = Request::from_parts(parts, body);
    let Some(d) = decision else {
        return next.run(req).await;
    };
    let mut res = if d.allowed {
        next.run(req).await
    } else {
        refused(&d, "api_key")
    };
    let h = res.headers_mut();
    put(h, "x-ratelimit-limit", u64::from(d.limit));
    put(h, "x-ratelimit-remaining", u64::from(d.remaining));
    put(h, "x-ratelimit-reset", d.reset_secs);
    res
}

/// Media URLs carry no key, so they are limited by client address, when
/// `--media-rate-limit-per-minute` is set. Without the peer address (a
/// server not wired with connect info) nothing is limited.
pub async fn media_clients(State(svc): State<VaultService>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with(MEDIA_PREFIX) {
        return next.run(req).await;
    }
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    let client = client_ip(peer.ip(), req.headers(), svc.trusted_proxies());
    match svc.admit_media_client(client) {
        // No X-RateLimit-* headers on media: a CDN could cache one
        // client's numbers and show them to others.
        Some(d) if !d.allowed => refused(&d, "media"),
        _ => next.run(req).await,
    }
}

fn refused(d: &Decision, limit: &'static str) -> Response {
    metrics::counter!(crate::metrics::names::RATE_LIMITED, "limit" => limit).increment(1);
    ApiError::rate_limited(d.retry_after_secs).into_response()
}

fn put(h: &mut HeaderMap, name: &'static str, value: u64) {
    h.insert(name, HeaderValue::from(value));
}
