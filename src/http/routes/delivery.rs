//! `GET`/`HEAD`/`POST /v2/media/{token}`: the bytes behind a signed variant
//! URL (from storage, or proxied from the upstream when not stored), and
//! "store this now".

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::PathParams;
use crate::model::views::QueueResponse;
use crate::service::VaultService;

/// Fetch the bytes of a variant. The signed token is the credential; no API
/// key is needed. A variant that is not stored is streamed from the
/// upstream.
#[utoipa::path(get, path = "/v2/media/{token}", tag = "Media delivery",
    params(("token" = String, Path, description = "Signed token from a variant's url")),
    responses(
        (status = 200, description = "The bytes.", content_type = "application/octet-stream"),
        (status = 403, description = "The token is malformed, forged or expired.", body = ErrorBody),
        (status = 404, description = "The variant was deleted or purged.", body = ErrorBody),
        (status = 502, description = "Not stored, and the upstream failed.", body = ErrorBody),
    ))]
pub async fn get_media_bytes(
    State(svc): State<VaultService>,
    method: Method,
    PathParams(token): PathParams<String>,
) -> ApiResult<Response> {
    let d = svc.resolve_media_url(&token).await?;
    let opened = if d.is_stored() {
        if method == Method::HEAD {
            None
        } else {
            Some(svc.open_media(&d, None).await?)
        }
    } else {
        Some(svc.proxy_media(&d).await?)
    };
    let (len, content_type) = match &opened {
        Some(o) => (o.len, o.content_type.clone()),
        None => (Some(d.variant.size_bytes), d.variant.content_type.clone()),
    };
    let mut builder = Response::builder().status(StatusCode::OK);
    if let Some(len) = len {
        builder = builder.header(header::CONTENT_LENGTH, len);
    }
    if let Ok(ct) = HeaderValue::from_str(&content_type) {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    if d.is_stored()
        && let Some(sum) = &d.variant.checksum
    {
        builder = builder.header(header::ETAG, format!("\"{sum}\""));
    }
    let body = match opened {
        Some(o) if method != Method::HEAD => {
            svc.count_access(&d).await;
            Body::from_stream(o.body)
        }
        _ => Body::empty(),
    };
    builder.body(body).map_err(|e| {
        tracing::error!(error = %e, "cannot build media response");
        ApiError::internal()
    })
}

/// Queue this variant for persistent storage now, whatever the auto-cache
/// rules say: 202 when queued, 200 when already stored.
#[utoipa::path(post, path = "/v2/media/{token}", tag = "Media delivery",
    params(("token" = String, Path, description = "Signed token from a variant's url")),
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
