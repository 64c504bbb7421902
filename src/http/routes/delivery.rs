//! `GET`/`HEAD`/`POST /v2/media/{token}`: the bytes behind a signed variant
//! URL (from storage, or proxied from the upstream when not stored), and
//! "store this now".

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::http::conditional::{self, Plan, Representation, http_date};
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::PathParams;
use crate::metrics::Series;
use crate::metrics::names::MEDIA_RESPONSES;
use crate::model::schema;
use crate::model::time::now_ms;
use crate::model::views::QueueResponse;
use crate::service::VaultService;
use crate::service::delivery::Delivery;
use crate::service::signing::{MAX_TOKEN_LEN, TOKEN_PATTERN};

/// Media bytes as served (OpenAPI only).
pub struct MediaBody;

impl PartialSchema for MediaBody {
    fn schema() -> RefOr<Schema> {
        schema::schema(serde_json::json!({"type": "string", "format": "binary"}))
    }
}

impl ToSchema for MediaBody {}

/// The signed token of a media URL (OpenAPI only). A token of another
/// shape is refused as any bad token is (403).
pub struct MediaToken;

impl PartialSchema for MediaToken {
    fn schema() -> RefOr<Schema> {
        schema::schema(serde_json::json!({
            "type": "string",
            "pattern": TOKEN_PATTERN,
            "maxLength": MAX_TOKEN_LEN,
        }))
    }
}

impl ToSchema for MediaToken {}

/// Fetch the bytes of a variant. The signed token is the credential; no API
/// key is needed. Stored bytes answer ranges (one range per request;
/// several get the whole body) and conditional requests; a variant that is
/// not stored is streamed from the upstream.
#[utoipa::path(get, path = "/v2/media/{token}", tag = "Media delivery",
    params(("token" = MediaToken, Path, description = "Signed token from a variant's url"),
           ("Range" = Option<String>, Header, description = "bytes=a-b, bytes=a- or bytes=-n"),
           ("If-None-Match" = Option<String>, Header, description = "ETag of a cached copy"),
           ("If-Modified-Since" = Option<String>, Header, description = "HTTP date"),
           ("If-Range" = Option<String>, Header, description = "ETag or HTTP date")),
    responses(
        (status = 200, description = "The bytes, with the variant's own media type.",
            content((MediaBody = "image/*"), (MediaBody = "video/*"), (MediaBody = "audio/*"))),
        (status = 206, description = "The requested range.",
            content((MediaBody = "image/*"), (MediaBody = "video/*"), (MediaBody = "audio/*")),
            headers(("Content-Range" = String, description = "bytes a-b/size"))),
        (status = 304, description = "The client's copy is current."),
        (status = 401, description = "Not stored, its upstream URL expired, and the connection's upstream session is gone (SESSION_EXPIRED or SESSION_NOT_PROVIDED).", body = ErrorBody),
        (status = 403, description = "The token is malformed, forged or expired.", body = ErrorBody),
        (status = 404, description = "The variant was deleted or purged.", body = ErrorBody),
        (status = 409, description = "The variant was replaced while it was being served; request it again.", body = ErrorBody),
        (status = 416, description = "No byte of the range exists.", body = ErrorBody,
            headers(("Content-Range" = String, description = "bytes */size"))),
        (status = 502, description = "Not stored, and the upstream failed or none is configured (--upstream-url).", body = ErrorBody),
    ))]
pub async fn get_media_bytes(
    state: State<VaultService>,
    method: Method,
    headers: HeaderMap,
    token: PathParams<String>,
) -> Response {
    let res = media_bytes(state, method, headers, token)
        .await
        .into_response();
    by_status(res.status()).increment(1);
    res
}

/// The media-response series of a status (a fixed set: any other status
/// counts as "other").
fn by_status(s: StatusCode) -> &'static Series {
    const fn series(status: &'static str) -> Series {
        Series::new(MEDIA_RESPONSES, "status", status)
    }
    static SERIES: [(u16, Series); 12] = [
        (200, series("200")),
        (206, series("206")),
        (304, series("304")),
        (400, series("400")),
        (401, series("401")),
        (403, series("403")),
        (404, series("404")),
        (409, series("409")),
        (416, series("416")),
        (429, series("429")),
        (502, series("502")),
        (503, series("503")),
    ];
    static OTHER: Series = series("other");
    SERIES
        .iter()
        .find(|(code, _)| *code == s.as_u16())
        .map_or(&OTHER, |(_, series)| series)
}

async fn media_bytes(
    State(svc): State<VaultService>,
    method: Method,
    headers: HeaderMap,
    PathParams(token): PathParams<String>,
) -> ApiResult<Response> {
    let d = svc.resolve_media_url(&token).await?;
    if !d.is_stored() {
        return proxied(&svc, &d, &method).await;
    }
    let etag = format!("\"{}\"", d.variant.checksum.as_deref().unwrap_or_default());
    let last_modified = d.variant.stored_at.unwrap_or(d.variant.created_at) / 1000;
    let size = d.variant.size_bytes;
    let rep = Representation {
        etag: &etag,
        last_modified,
        size,
    };
    let is_get = method == Method::GET;
    let plan = conditional::plan(&headers, &rep, is_get);
    let max_age = d.grant.max_age((now_ms() / 1000) as u64);
    let mut b = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, http_date(last_modified))
        .header(header::ACCEPT_RANGES, "bytes")
        // The URL is the credential and carries its own expiry: browsers
        // and CDNs may keep the bytes until then.
        .header(header::CACHE_CONTROL, format!("public, max-age={max_age}"));
    b = untrusted(b);
    if let Ok(ct) = HeaderValue::from_str(&d.variant.content_type) {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    let (status, range) = match plan {
        Plan::NotModified => (StatusCode::NOT_MODIFIED, None),
        Plan::Full => (StatusCode::OK, None),
        Plan::Partial { start, len } => {
            b = b.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{size}", start + len - 1),
            );
            (StatusCode::PARTIAL_CONTENT, Some((start, len)))
        }
        Plan::Unsatisfiable => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_NOT_SATISFIABLE",
                format!("the range asks for bytes beyond the {size} the media holds"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let body = if status == StatusCode::NOT_MODIFIED {
        Body::empty()
    } else {
        b = b.header(header::CONTENT_LENGTH, range.map_or(size, |(_, len)| len));
        if is_get {
            Body::from_stream(svc.open_media(&d, range).await?.body)
        } else {
            Body::empty()
        }
    };
    if is_get {
        svc.count_access(&d).await;
    }
    b.status(status).body(body).map_err(|e| {
        tracing::error!(error = %e, "cannot build media response");
        ApiError::internal()
    })
}

/// Media bytes come from clients and the upstream: never let a browser run
/// them as a page of this origin (an SVG or HTML body with a script).
fn untrusted(b: axum::http::response::Builder) -> axum::http::response::Builder {
    b.header("x-content-type-options", "nosniff")
        .header("content-security-policy", "sandbox; default-src 'none'")
}

/// A variant that is not stored, streamed from the upstream as it comes
/// (no ranges: the upstream URL is not ours to slice).
async fn proxied(svc: &VaultService, d: &Delivery, method: &Method) -> ApiResult<Response> {
    let opened = svc.proxy_media(d).await?;
    let mut b = untrusted(
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CACHE_CONTROL, "no-store"),
    );
    if let Some(len) = opened.len {
        b = b.header(header::CONTENT_LENGTH, len);
    }
    if let Ok(ct) = HeaderValue::from_str(&opened.content_type) {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        svc.count_access(d).await;
        Body::from_stream(opened.body)
    };
    b.body(body).map_err(|e| {
        tracing::error!(error = %e, "cannot build media response");
        ApiError::internal()
    })
}

/// Queue this variant for persistent storage now, whatever the auto-cache
/// rules say: 202 when queued, 200 when already stored.
#[utoipa::path(post, path = "/v2/media/{token}", tag = "Media delivery",
    params(("token" = MediaToken, Path, description = "Signed token from a variant's url")),
    responses(
        (status = 202, description = "Queued.", body = QueueResponse),
        (status = 200, description = "Already stored.", body = QueueResponse),
        (status = 403, description = "Bad token, or Vault+ disabled.", body = ErrorBody),
        (status = 404, description = "The variant was deleted or purged.", body = ErrorBody),
    ))]
pub async fn post_media_url(
    State(svc): State<VaultService>,
    PathParams(token): PathParams<String>,
) -> ApiResult<Response> {
    let (queued, answer) = svc.queue_media_url(&token).await?;
    let status = if queued {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}
