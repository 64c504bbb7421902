//! Per-connection status and org-wide stats (and their older paths).

use axum::Json;
use axum::extract::State;

use super::ConnectionIdHeader;
use crate::http::error::ApiResult;
use crate::http::extract::{Auth, ConnectionHeader};
use crate::model::views::{ConnectionStatusView, LegacyConnectionStatusView, OrgStatsView};
use crate::service::VaultService;

/// Storage status of one connection.
#[utoipa::path(get, path = "/v2/vault-plus/status", tag = "Vault+ Media",
    params(ConnectionIdHeader),
    responses((status = 200, body = ConnectionStatusView)),
    security(("ApiKey" = [])))]
pub async fn status(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
) -> ApiResult<Json<ConnectionStatusView>> {
    Ok(Json(svc.connection_status(&who, &conn).await?))
}

/// Storage status of one connection (older SDK path, with `totalMedia`).
#[utoipa::path(get, path = "/v2/vault-plus/store/status", tag = "Vault+ (older paths)",
    params(ConnectionIdHeader),
    responses((status = 200, body = LegacyConnectionStatusView)),
    security(("ApiKey" = [])))]
pub async fn legacy_status(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
) -> ApiResult<Json<LegacyConnectionStatusView>> {
    Ok(Json(svc.status(&who, &conn).await?))
}

/// Organization-wide Vault+ totals.
#[utoipa::path(get, path = "/v2/vault-plus/stats", tag = "Vault+ Media",
    responses((status = 200, body = OrgStatsView)),
    security(("ApiKey" = [])))]
pub async fn stats(
    State(svc): State<VaultService>,
    Auth(who): Auth,
) -> ApiResult<Json<OrgStatsView>> {
    Ok(Json(svc.org_stats(&who).await?))
}

/// Organization-wide Vault+ totals (older SDK path).
#[utoipa::path(get, path = "/v2/vault-plus/store/stats", tag = "Vault+ (older paths)",
    responses((status = 200, body = OrgStatsView)),
    security(("ApiKey" = [])))]
pub async fn legacy_stats(state: State<VaultService>, auth: Auth) -> ApiResult<Json<OrgStatsView>> {
    stats(state, auth).await
}
