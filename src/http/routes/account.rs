//! Account API: connection settings, org settings, connections.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, Auth, PathParams, QueryMap};
use crate::model::ConnectionId;
use crate::model::schema::{self, schema_type};
use crate::model::views::{
    CONNECTION_STATUSES, ConnectionListView, ConnectionSettingsPatchResponse,
    ConnectionSettingsView, DeleteConnectionResponse, OrgSettingsPatchResponse, OrgSettingsView,
};
use crate::model::whole::parse_whole;
use crate::service::receipts::Receipted;
use crate::service::{
    ConnectionSettingsPatch, MAX_CONNECTION_OFFSET, OrgSettingsPatch, VaultService,
};

/// A connection's Vault+ settings and stats.
#[utoipa::path(get, path = "/v2/account/connections/{connectionId}/settings", tag = "Account",
    params(("connectionId" = ConnectionId, Path, description = "Connection ID (an ID of another shape names no connection: 404)")),
    responses((status = 200, body = ConnectionSettingsView), (status = 404, body = ErrorBody)),
    security(("ApiKey" = [])))]
pub async fn get_connection_settings(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<ConnectionSettingsView>> {
    Ok(Json(svc.connection_settings(&who, &id).await?))
}

/// Enable or disable Vault+ for a connection, or change its overrides.
/// Disabling purges the connection's media and answers `purgeResult`.
#[utoipa::path(patch, path = "/v2/account/connections/{connectionId}/settings", tag = "Account",
    params(("connectionId" = ConnectionId, Path, description = "Connection ID (an ID of another shape names no connection: 404)")),
    request_body = ConnectionSettingsPatch,
    responses((status = 200, body = ConnectionSettingsPatchResponse, description = "With `purgeResult` when Vault+ was disabled; then the header names the purge's erasure receipt.", headers(("x-vaultplus-receipt" = String, description = "The erasure receipt of the change (GET /v2/vault-plus/receipts/{receiptId})"))), (status = 404, body = ErrorBody)),
    security(("ApiKey" = [])))]
pub async fn patch_connection_settings(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    PathParams(id): PathParams<String>,
    ApiJson(body): ApiJson<ConnectionSettingsPatch>,
) -> ApiResult<Receipted<ConnectionSettingsPatchResponse>> {
    Ok(svc.patch_connection_settings(&who, &id, body).await?)
}

/// The organization's Vault+ defaults.
#[utoipa::path(get, path = "/v2/account/settings", tag = "Account",
    responses((status = 200, body = OrgSettingsView)),
    security(("ApiKey" = [])))]
pub async fn get_org_settings(
    State(svc): State<VaultService>,
    Auth(who): Auth,
) -> ApiResult<Json<OrgSettingsView>> {
    Ok(Json(svc.org_settings(&who).await?))
}

/// Change the organization's defaults; `applyToExistingConnections` pushes
/// them to every connection and answers `broadcastResult`.
#[utoipa::path(patch, path = "/v2/account/settings", tag = "Account",
    request_body = OrgSettingsPatch,
    responses((status = 200, body = OrgSettingsPatchResponse)),
    security(("ApiKey" = [])))]
pub async fn patch_org_settings(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ApiJson(body): ApiJson<OrgSettingsPatch>,
) -> ApiResult<Json<OrgSettingsPatchResponse>> {
    Ok(Json(svc.patch_org_settings(&who, body).await?))
}

/// Query parameters of `GET /v2/account/connections`, as they arrived: the
/// one declaration they are parsed by and documented (so accepted) from.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectionListParams {
    /// active, expired or awaiting_2fa
    #[param(value_type = Option<ConnectionStatusParam>, inline)]
    status: Option<String>,
    /// 1-100, default 20
    #[param(value_type = Option<ConnectionLimitParam>, inline)]
    limit: Option<String>,
    /// 0-1000000000, default 0
    #[param(value_type = Option<OffsetParam>, inline)]
    offset: Option<String>,
}

/// Page size of the connection list: at most this, 20 when not given.
const MAX_CONNECTION_PAGE: u64 = 100;
const DEFAULT_CONNECTION_PAGE: u64 = 20;

schema_type!(ConnectionStatusParam => schema::one_of(&CONNECTION_STATUSES));
schema_type!(ConnectionLimitParam => schema::whole(1, MAX_CONNECTION_PAGE));
schema_type!(OffsetParam => schema::whole(0, MAX_CONNECTION_OFFSET));

fn whole(raw: Option<&str>, name: &str, default: u64, min: u64, max: u64) -> ApiResult<u64> {
    match raw {
        None => Ok(default),
        Some(raw) => parse_whole(raw, min, max)
            .map_err(|e| ApiError::bad_request(format!("invalid query parameter {name}: {e}"))),
    }
}

/// The organization's connections (`limit`/`offset` paging).
#[utoipa::path(get, path = "/v2/account/connections", tag = "Account",
    params(ConnectionListParams),
    responses((status = 200, body = ConnectionListView)),
    security(("ApiKey" = [])))]
pub async fn list_connections(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    q: QueryMap,
) -> ApiResult<Json<ConnectionListView>> {
    let q: ConnectionListParams = q.parse()?;
    let limit = whole(
        q.limit.as_deref(),
        "limit",
        DEFAULT_CONNECTION_PAGE,
        1,
        MAX_CONNECTION_PAGE,
    )?;
    let offset = whole(q.offset.as_deref(), "offset", 0, 0, MAX_CONNECTION_OFFSET)?;
    Ok(Json(
        svc.list_connections(&who, q.status.as_deref(), limit, offset)
            .await?,
    ))
}

/// Disconnect a connection: its media is purged, then it is removed.
#[utoipa::path(delete, path = "/v2/account/connections/{connectionId}", tag = "Account",
    params(("connectionId" = ConnectionId, Path, description = "Connection ID (an ID of another shape names no connection: 404)")),
    responses((status = 200, body = DeleteConnectionResponse, headers(("x-vaultplus-receipt" = String, description = "The erasure receipt of the change (GET /v2/vault-plus/receipts/{receiptId})"))), (status = 404, body = ErrorBody)),
    security(("ApiKey" = [])))]
pub async fn delete_connection(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    PathParams(id): PathParams<String>,
) -> ApiResult<Receipted<DeleteConnectionResponse>> {
    Ok(svc.delete_connection(&who, &id).await?)
}
