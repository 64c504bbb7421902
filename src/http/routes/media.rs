//! Query, get, batch-read and delete media (and the older SDK's paths).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;

use super::ConnectionIdHeader;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, Auth, ConnectionHeader, PathParams, QueryMap, media_id};
use crate::model::views::{DeleteMediaResponse, MediaItemView, MediaItems, MediaPage};
use crate::model::{MediaId, schema};
use crate::service::MAX_BATCH;
use crate::service::receipts::Receipted;
use crate::service::{MediaQueryParams, VaultService};

/// Search a connection's cached media.
#[utoipa::path(get, path = "/v2/vault-plus/media", tag = "Vault+ Media",
    params(ConnectionIdHeader, MediaQueryParams),
    responses(
        (status = 200, description = "Matching media, variants grouped per item.", body = MediaPage),
        (status = 400, description = "A parameter is malformed.", body = ErrorBody),
        (status = 401, description = "Bad API key, or unknown connection.", body = ErrorBody),
    ),
    security(("ApiKey" = [])))]
pub async fn query_media(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
    q: QueryMap,
) -> ApiResult<Json<MediaPage>> {
    Ok(Json(svc.query_media(&who, &conn, &q.parse()?).await?))
}

/// List stored media (older SDK path; `source` is accepted and ignored).
#[utoipa::path(get, path = "/v2/vault-plus/list", tag = "Vault+ (older paths)",
    params(ConnectionIdHeader, MediaQueryParams),
    responses((status = 200, description = "Matching media.", body = MediaPage)),
    security(("ApiKey" = [])))]
pub async fn legacy_list(
    state: State<VaultService>,
    auth: Auth,
    conn: ConnectionHeader,
    q: QueryMap,
) -> ApiResult<Json<MediaPage>> {
    query_media(state, auth, conn, q).await
}

/// Get a media item with all its variants.
#[utoipa::path(get, path = "/v2/vault-plus/media/{mediaId}", tag = "Vault+ Media",
    params(ConnectionIdHeader, ("mediaId" = MediaId, Path, description = "Raw upstream media ID")),
    responses(
        (status = 200, description = "The media item.", body = MediaItemView),
        (status = 404, description = "Media not found.", body = ErrorBody),
    ),
    security(("ApiKey" = [])))]
pub async fn get_media(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
    PathParams(raw): PathParams<String>,
) -> ApiResult<Json<MediaItemView>> {
    let id = media_id(&raw)?;
    Ok(Json(svc.get_media(&who, &conn, &id).await?))
}

/// Delete a media item with all its variants.
#[utoipa::path(delete, path = "/v2/vault-plus/media/{mediaId}", tag = "Vault+ Media",
    params(ConnectionIdHeader, ("mediaId" = MediaId, Path, description = "Raw upstream media ID")),
    responses(
        (status = 200, description = "Deleted (success false when nothing matched).", body = DeleteMediaResponse, headers(("x-vaultplus-receipt" = String, description = "The erasure receipt of the change (GET /v2/vault-plus/receipts/{receiptId})"))),
        ),
    security(("ApiKey" = [])))]
pub async fn delete_media(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
    PathParams(raw): PathParams<String>,
) -> ApiResult<Receipted<DeleteMediaResponse>> {
    let id = media_id(&raw)?;
    Ok(svc.delete_media(&who, &conn, &id).await?)
}

/// Get a media item (older SDK path).
#[utoipa::path(get, path = "/v2/vault-plus/{mediaId}", tag = "Vault+ (older paths)",
    params(ConnectionIdHeader, ("mediaId" = MediaId, Path, description = "Raw upstream media ID")),
    responses((status = 200, body = MediaItemView), (status = 404, body = ErrorBody)),
    security(("ApiKey" = [])))]
pub async fn legacy_get(
    state: State<VaultService>,
    auth: Auth,
    conn: ConnectionHeader,
    path: PathParams<String>,
) -> ApiResult<Json<MediaItemView>> {
    get_media(state, auth, conn, path).await
}

/// Delete a media item (older SDK path).
#[utoipa::path(delete, path = "/v2/vault-plus/{mediaId}", tag = "Vault+ (older paths)",
    params(ConnectionIdHeader, ("mediaId" = MediaId, Path, description = "Raw upstream media ID")),
    responses((status = 200, body = DeleteMediaResponse, headers(("x-vaultplus-receipt" = String, description = "The erasure receipt of the change (GET /v2/vault-plus/receipts/{receiptId})")))),
    security(("ApiKey" = [])))]
pub async fn legacy_delete(
    state: State<VaultService>,
    auth: Auth,
    conn: ConnectionHeader,
    path: PathParams<String>,
) -> ApiResult<Receipted<DeleteMediaResponse>> {
    delete_media(state, auth, conn, path).await
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRequest {
    /// 1-100 raw upstream media IDs.
    #[schema(schema_with = media_ids_schema)]
    media_ids: Vec<String>,
}

fn media_ids_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use utoipa::PartialSchema;
    let item = serde_json::to_value(MediaId::schema()).expect("schema serializes");
    schema::schema(serde_json::json!({
        "type": "array",
        "items": item,
        "minItems": 1,
        "maxItems": MAX_BATCH,
        "example": ["4492994399", "4492994400"],
    }))
}

impl BatchRequest {
    fn ids(&self) -> ApiResult<Vec<MediaId>> {
        self.media_ids
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                MediaId::parse(raw).map_err(|e| {
                    crate::http::error::ApiError::bad_request(format!("mediaIds[{i}]: {e}"))
                })
            })
            .collect()
    }
}

/// Get several media items at once (request order, misses left out).
#[utoipa::path(post, path = "/v2/vault-plus/media/batch", tag = "Vault+ Media",
    params(ConnectionIdHeader), request_body = BatchRequest,
    responses((status = 200, description = "The items found.", body = MediaItems)),
    security(("ApiKey" = [])))]
pub async fn batch_media(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
    ApiJson(body): ApiJson<BatchRequest>,
) -> ApiResult<Json<MediaItems>> {
    let ids = body.ids()?;
    Ok(Json(svc.batch_media(&who, &conn, &ids).await?))
}

/// Get several media items (older SDK path).
#[utoipa::path(post, path = "/v2/vault-plus/batch", tag = "Vault+ (older paths)",
    params(ConnectionIdHeader), request_body = BatchRequest,
    responses((status = 200, body = MediaItems)),
    security(("ApiKey" = [])))]
pub async fn legacy_batch(
    state: State<VaultService>,
    auth: Auth,
    conn: ConnectionHeader,
    body: ApiJson<BatchRequest>,
) -> ApiResult<Json<MediaItems>> {
    batch_media(state, auth, conn, body).await
}
