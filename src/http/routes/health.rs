//! `GET /healthz`: 200 once the server serves and both the catalog and the
//! blob store answer, 503 otherwise. The public sees only the status; the
//! causes (paths, the S3 endpoint and bucket, error texts) need an ACCOUNT
//! key, since the endpoint is open to anyone who can reach the port.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::api_key;
use crate::service::{ServiceError, VaultService};

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    status: &'static str,
    /// `ok`, or why the catalog fails (only with an ACCOUNT key).
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog: Option<String>,
    /// `ok`, or why the blob store fails (only with an ACCOUNT key).
    #[serde(skip_serializing_if = "Option::is_none")]
    blobs: Option<String>,
}

/// Liveness and readiness: checks the catalog and the blob store.
///
/// Without an `apiKey`: `{"status":"ok"}` or 503 `{"status":"unavailable"}`.
/// With a valid ACCOUNT key, also what each store answered. A failed S3
/// probe is reused for 2 s (a success for 5 s), and one probe retries at
/// most once.
#[utoipa::path(get, path = "/healthz", tag = "Operations",
    params(("apiKey" = Option<String>, Header, description = "An ACCOUNT key: adds the catalog and blob store details")),
    responses(
        (status = 200, description = "Serving.", body = Health,
            example = json!({"status": "ok"})),
        (status = 503, description = "The catalog or the blob store fails.", body = Health,
            example = json!({"status": "unavailable"})),
        (status = 400, description = "apiKey given more than once.", body = ErrorBody),
        (status = 401, description = "An apiKey was given and is not a valid ACCOUNT key.", body = ErrorBody),
    ))]
pub async fn healthz(
    State(svc): State<VaultService>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<Health>)> {
    let presented = api_key(&headers)?;
    let report = svc.health().await;
    let detailed = match presented {
        None => false,
        Some(key) => match svc.authenticate(Some(key)).await {
            Ok(_) => true,
            Err(ServiceError::Unauthorized) => return Err(ApiError::unauthorized()),
            // The key cannot be checked (the catalog is down): the public
            // answer, which already says unavailable.
            Err(_) => false,
        },
    };
    let ok = report.is_ok();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let detail =
        |r: Result<(), String>| detailed.then(|| r.err().unwrap_or_else(|| "ok".to_owned()));
    Ok((
        status,
        Json(Health {
            status: if ok { "ok" } else { "unavailable" },
            catalog: detail(report.catalog),
            blobs: detail(report.blobs),
        }),
    ))
}
