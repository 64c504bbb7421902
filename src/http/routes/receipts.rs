//! Erasure receipts: a receipt of the caller's organization, the keys that
//! sign them, and the header that names a change's receipt in its answer.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use super::ConnectionIdHeader;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{Auth, ConnectionHeader, PathParams, QueryMap};
use crate::service::receipts::{ReceiptKeysView, ReceiptView, Receipted, ReceiptsView};
use crate::service::{PageParams, VaultService};

/// Names the erasure receipt of a purge, delete or connection removal in
/// its answer; the body stays exactly as it was.
pub const RECEIPT_HEADER: &str = "x-vaultplus-receipt";

/// An answer with its receipt's header (the service's value, rendered
/// here: the service knows no HTTP).
impl<T: serde::Serialize> IntoResponse for Receipted<T> {
    fn into_response(self) -> Response {
        let mut response = Json(self.body).into_response();
        if let Some(id) = self.receipt {
            let value = HeaderValue::try_from(id.to_string()).expect("a receipt ID is ASCII");
            response.headers_mut().insert(RECEIPT_HEADER, value);
        }
        response
    }
}

/// An erasure receipt
///
/// Signed with Ed25519 over its JCS form without `signature`; `state`
/// becomes `bytes_gone`, with the digest of every stored variant removed,
/// once every blob it names is deleted from the blob store.
#[utoipa::path(get, path = "/v2/vault-plus/receipts/{receiptId}", tag = "Vault+ Receipts",
    params(("receiptId" = String, Path, description = "Receipt ID (rcpt_...), from the x-vaultplus-receipt header")),
    responses(
        (status = 200, body = ReceiptView),
        (status = 404, description = "The organization has no such receipt.", body = ErrorBody),
    ),
    security(("ApiKey" = [])))]
pub async fn get_receipt(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<ReceiptView>> {
    Ok(Json(svc.receipt(&who, &id).await?))
}

/// The connection's erasure receipts, newest first
///
/// Every receipt of the organization for the connection named by
/// x-connection-id, also after the connection was removed: the way to find
/// those no answer named (evictions by retention). A page at a time
/// (follow `nextCursor`).
#[utoipa::path(get, path = "/v2/vault-plus/receipts", tag = "Vault+ Receipts",
    params(ConnectionIdHeader, PageParams),
    responses(
        (status = 200, description = "One page of receipts; nextCursor only when more follow.", body = ReceiptsView),
        (status = 400, description = "Bad limit or cursor (one from another connection or route), or an unknown parameter.", body = ErrorBody),
    ),
    security(("ApiKey" = [])))]
pub async fn list_receipts(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
    q: QueryMap,
) -> ApiResult<Json<ReceiptsView>> {
    let page = q.parse()?;
    Ok(Json(svc.connection_receipts(&who, &conn, &page).await?))
}

/// The public keys that sign receipts
#[utoipa::path(get, path = "/v2/vault-plus/receipts/keys", tag = "Vault+ Receipts",
    responses((status = 200, body = ReceiptKeysView)),
    security(("ApiKey" = [])))]
pub async fn receipt_keys(
    State(svc): State<VaultService>,
    Auth(_who): Auth,
) -> ApiResult<Json<ReceiptKeysView>> {
    Ok(Json(svc.receipt_keys().await?))
}
