//! `DELETE /v2/vault-plus/media`: the purge, exactly as the seed contract
//! (docs/reference/000_ab7af7969c1ee0d9.txt) specifies it (and the older
//! `DELETE /v2/vault-plus/purge`).

use axum::extract::State;

use super::ConnectionIdHeader;
use crate::http::error::ApiResult;
use crate::http::extract::{Auth, ConnectionHeader};
use crate::http::openapi::PurgeErrorResponse;
use crate::model::views::PurgeResponse;
use crate::service::VaultService;
use crate::service::receipts::Receipted;

/// Remove all stored media for a connection
///
/// Purges all cached Vault+ media variants for the connection identified by
/// x-connection-id.
#[utoipa::path(delete, path = "/v2/vault-plus/media", tag = "Vault+ Media",
    params(ConnectionIdHeader),
    responses(
        (status = 200, description = "All cached media variants for the connection were purged.",
            body = PurgeResponse,
            headers(("x-vaultplus-receipt" = String, description = "The erasure receipt of the purge (GET /v2/vault-plus/receipts/{receiptId})")),
            example = json!({"success": true, "purgedCount": 2, "freedBytes": 1056000})),
        (status = 400, description = "The x-connection-id header is missing or invalid.",
            body = PurgeErrorResponse,
            example = json!({"error": "x-connection-id header is required"})),
        (status = 401, description = "The API key is missing, invalid, or lacks the ACCOUNT scope.",
            body = PurgeErrorResponse,
            example = json!({"error": "Unauthorized"})),
    ),
    security(("ApiKey" = [])))]
pub async fn purge_media(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
) -> ApiResult<Receipted<PurgeResponse>> {
    Ok(svc.purge(&who, &conn).await?)
}

/// Remove all stored media for a connection (older SDK path)
#[utoipa::path(delete, path = "/v2/vault-plus/purge", tag = "Vault+ (older paths)",
    params(ConnectionIdHeader),
    responses(
        (status = 200, description = "All cached media variants for the connection were purged.", body = PurgeResponse, headers(("x-vaultplus-receipt" = String, description = "The erasure receipt of the purge (GET /v2/vault-plus/receipts/{receiptId})"))),
        (status = 400, description = "The x-connection-id header is missing or invalid.", body = PurgeErrorResponse),
        (status = 401, description = "The API key is missing, invalid, or lacks the ACCOUNT scope.", body = PurgeErrorResponse),
    ),
    security(("ApiKey" = [])))]
pub async fn legacy_purge(
    state: State<VaultService>,
    auth: Auth,
    conn: ConnectionHeader,
) -> ApiResult<Receipted<PurgeResponse>> {
    purge_media(state, auth, conn).await
}
