//! `GET`/`HEAD /v2/media/{token}`: the bytes behind a signed variant URL.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::PathParams;
use crate::service::VaultService;

/// Fetch the bytes of a stored variant. The signed token is the credential;
/// no API key is needed.
#[utoipa::path(get, path = "/v2/media/{token}", tag = "Media delivery",
    params(("token" = String, Path, description = "Signed token from a variant's url")),
    responses(
        (status = 200, description = "The bytes.", content_type = "application/octet-stream"),
        (status = 403, description = "The token is malformed, forged or expired.", body = ErrorBody),
        (status = 404, description = "The variant was deleted or purged.", body = ErrorBody),
    ))]
pub async fn get_media_bytes(
    State(svc): State<VaultService>,
    method: Method,
    PathParams(token): PathParams<String>,
) -> ApiResult<Response> {
    let d = svc.resolve_media_url(&token).await?;
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_LENGTH, d.size)
        .header(header::ACCEPT_RANGES, "none");
    if let Ok(ct) = HeaderValue::from_str(&d.variant.content_type) {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    if let Some(sum) = &d.variant.checksum {
        builder = builder.header(header::ETAG, format!("\"{sum}\""));
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let opened = svc.open_media(&d, None).await?;
        svc.count_access(&d);
        Body::from_stream(opened.body)
    };
    builder.body(body).map_err(|e| {
        tracing::error!(error = %e, "cannot build media response");
        ApiError::internal()
    })
}
