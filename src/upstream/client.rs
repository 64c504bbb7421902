//! HTTP calls to the upstream, with the retry rules of
//! docs/reference/upstream.md: 429
//! honours Retry-After, other 5xx and network errors back off and retry a
//! few times, and session errors surface as they are.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;

use super::wire;
use crate::metrics::names;
use crate::model::admission::UpstreamMedia;

const PAGE_SIZE: u64 = 100;
const LIST_ATTEMPTS: u32 = 4;
/// Longest Retry-After honoured inline before giving up on a listing.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the connection's upstream session has expired")]
    SessionExpired,
    #[error("the connection has no upstream session")]
    SessionNotProvided,
    #[error("list not found upstream")]
    ListNotFound,
    #[error("the upstream is rate limiting requests")]
    RateLimited,
    #[error("the upstream failed: {0}")]
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// 403: the signed rendition URL expired; list again for a fresh one.
    #[error("the rendition URL has expired (403)")]
    Expired,
    /// 404: deleted upstream; retrying cannot help.
    #[error("the media is gone upstream (404)")]
    Gone,
    #[error("rate limited by the upstream (429)")]
    RateLimited(Option<Duration>),
    #[error("{0}")]
    Transient(String),
}

/// One page of a vault list: how many items it held (`seen`), those a
/// cache can store, and where the next page starts (None after the last).
pub struct ListedPage {
    pub seen: u64,
    pub items: Vec<UpstreamMedia>,
    pub next: Option<u64>,
}

#[derive(Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    base: String,
    key: String,
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64 << attempt.min(6))
}

impl UpstreamClient {
    pub fn new(base: &str, key: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A stalled body is an error; a slow but moving one is not.
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("vaultplus/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        })
    }

    /// The page of a vault list from `offset` (0 for the first). A caller
    /// reads page by page, so no listing is ever held whole.
    pub async fn list_page(
        &self,
        connection: &str,
        list_id: &str,
        offset: u64,
    ) -> Result<ListedPage, UpstreamError> {
        let page = self.page(connection, list_id, offset).await?;
        let n = page.list.len() as u64;
        let next = (page.has_more && n > 0).then(|| {
            page.next_offset
                .filter(|o| *o > offset)
                .unwrap_or(offset + n)
        });
        Ok(ListedPage {
            seen: n,
            items: page.list.iter().filter_map(wire::item).collect(),
            next,
        })
    }

    async fn page(
        &self,
        connection: &str,
        list_id: &str,
        offset: u64,
    ) -> Result<wire::ListPage, UpstreamError> {
        let url = format!("{}/v2/access/vault/lists/{list_id}/media", self.base);
        let mut last = String::new();
        for attempt in 0..LIST_ATTEMPTS {
            let started = Instant::now();
            let sent = self
                .http
                .get(&url)
                .query(&[("limit", PAGE_SIZE), ("offset", offset)])
                .header("apiKey", &self.key)
                .header("x-connection-id", connection)
                .send()
                .await;
            record("list", &sent, started);
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    last = format!("cannot reach the upstream: {e}");
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
            };
            match resp.status() {
                s if s.is_success() => {
                    return resp.json::<wire::ListPage>().await.map_err(|e| {
                        UpstreamError::Unavailable(format!("unreadable list page: {e}"))
                    });
                }
                StatusCode::UNAUTHORIZED => {
                    let body: serde_json::Value = resp.json().await.unwrap_or_default();
                    return Err(match body["type"].as_str() {
                        Some("SESSION_EXPIRED") => UpstreamError::SessionExpired,
                        _ => UpstreamError::SessionNotProvided,
                    });
                }
                StatusCode::NOT_FOUND => return Err(UpstreamError::ListNotFound),
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(&resp).unwrap_or(Duration::from_secs(1));
                    if wait > MAX_INLINE_WAIT || attempt + 1 == LIST_ATTEMPTS {
                        return Err(UpstreamError::RateLimited);
                    }
                    tokio::time::sleep(wait).await;
                }
                s if s.is_server_error() => {
                    last = format!("the upstream answered {s}");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                s => {
                    return Err(UpstreamError::Unavailable(format!(
                        "the upstream answered {s}"
                    )));
                }
            }
        }
        Err(UpstreamError::Unavailable(last))
    }

    /// Starts fetching a rendition; the caller streams the body.
    pub async fn fetch(&self, url: &str) -> Result<reqwest::Response, FetchError> {
        let started = Instant::now();
        let sent = self.http.get(url).send().await;
        record("fetch", &sent, started);
        let resp =
            sent.map_err(|e| FetchError::Transient(format!("cannot reach the upstream CDN: {e}")))?;
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::FORBIDDEN => Err(FetchError::Expired),
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(FetchError::Gone),
            StatusCode::TOO_MANY_REQUESTS => Err(FetchError::RateLimited(retry_after(&resp))),
            s => Err(FetchError::Transient(format!(
                "the upstream CDN answered {s}"
            ))),
        }
    }
}

/// Counts and times one request to the upstream, by how it ended.
fn record(kind: &'static str, sent: &reqwest::Result<reqwest::Response>, started: Instant) {
    if !crate::metrics::enabled() {
        return;
    }
    let outcome = match sent {
        Err(_) => "unreachable",
        Ok(r) => match r.status() {
            s if s.is_success() => "ok",
            StatusCode::FORBIDDEN => "expired",
            StatusCode::NOT_FOUND | StatusCode::GONE => "gone",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            _ => "error",
        },
    };
    // Not a hot path (each is a network round trip): the macros' own
    // look-up is fine here.
    metrics::counter!(names::UPSTREAM_REQUESTS, "kind" => kind, "outcome" => outcome).increment(1);
    metrics::histogram!(names::UPSTREAM_DURATION, "kind" => kind)
        .record(started.elapsed().as_secs_f64());
}
