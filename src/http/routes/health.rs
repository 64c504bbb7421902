//! `GET /healthz`: 200 once the server serves and both the catalog and the
//! blob store answer; 503 naming the part that does not.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::VaultService;

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
    catalog: String,
    blobs: String,
}

/// Liveness and readiness: checks the catalog and the blob store.
#[utoipa::path(get, path = "/healthz", tag = "Operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(svc): State<VaultService>) -> (StatusCode, Json<Health>) {
    let (catalog, blobs) = tokio::join!(svc.catalog().ping(), svc.blobs().ping());
    let text = |r: &anyhow::Result<()>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("{e:#}"),
    };
    let ok = catalog.is_ok() && blobs.is_ok();
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if ok { "ok" } else { "unavailable" },
            catalog: text(&catalog),
            blobs: text(&blobs),
        }),
    )
}
