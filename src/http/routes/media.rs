//! Query, get, batch-read and delete media (and the older SDK's paths).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::ConnectionIdHeader;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, Auth, ConnectionHeader, PathParams, QueryMap, media_id};
use crate::model::MediaId;
use crate::model::views::{DeleteMediaResponse, MediaItemView, MediaItems, MediaPage};
use crate::service::{MediaQueryParams, VaultService};

/// Query parameters of `GET /v2/vault-plus/media` and the older `/list`:
/// the one declaration of what they take (the query-parameter check reads
/// it from the OpenAPI document; parsing and validation live in the
/// service).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct MediaQueryDoc {
    /// Variant cache status: edge_only, pending, storing, stored, removed.
    status: Option<String>,
    /// Media type: image, video, audio.
    #[param(rename = "type")]
    media_type: Option<String>,
    /// Exact MIME type of a variant, e.g. image/jpeg.
    #[param(rename = "contentType")]
    content_type: Option<String>,
    /// Minimum duration in seconds.
    #[param(rename = "durationMin")]
    duration_min: Option<f64>,
    /// Maximum duration in seconds.
    #[param(rename = "durationMax")]
    duration_max: Option<f64>,
    /// Media first observed at or after (ISO-8601).
    #[param(rename = "createdAtFrom")]
    created_at_from: Option<String>,
    /// Media first observed at or before (ISO-8601).
    #[param(rename = "createdAtTo")]
    created_at_to: Option<String>,
    /// Media stored at or after (ISO-8601); alias storedAtFrom.
    #[param(rename = "cachedAtFrom")]
    cached_at_from: Option<String>,
    /// Media stored at or before (ISO-8601); alias storedAtTo.
    #[param(rename = "cachedAtTo")]
    cached_at_to: Option<String>,
    /// Alias of cachedAtFrom.
    #[param(rename = "storedAtFrom")]
    stored_at_from: Option<String>,
    /// Alias of cachedAtTo.
    #[param(rename = "storedAtTo")]
    stored_at_to: Option<String>,
    /// Older SDKs: vault, messages, posts or stories; checked, then ignored
    /// (vaultplus keeps no source per variant).
    source: Option<String>,
    /// createdAt_desc (default), createdAt_asc, cachedAt_desc, cachedAt_asc, duration_desc, duration_asc.
    sort: Option<String>,
    /// Page size, 1-100 (default 100).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The previous page's nextCursor.
    cursor: Option<String>,
}

fn query_params(mut q: QueryMap) -> MediaQueryParams {
    MediaQueryParams {
        status: q.take("status"),
        media_type: q.take("type"),
        content_type: q.take("contentType"),
        duration_min: q.take("durationMin"),
        duration_max: q.take("durationMax"),
        created_at_from: q.take("createdAtFrom"),
        created_at_to: q.take("createdAtTo"),
        cached_at_from: q.take("cachedAtFrom"),
        cached_at_to: q.take("cachedAtTo"),
        stored_at_from: q.take("storedAtFrom"),
        stored_at_to: q.take("storedAtTo"),
        sort: q.take("sort"),
        limit: q.take("limit"),
        cursor: q.take("cursor"),
        source: q.take("source"),
    }
}

/// Search a connection's cached media.
#[utoipa::path(get, path = "/v2/vault-plus/media", tag = "Vault+ Media",
    params(ConnectionIdHeader, MediaQueryDoc),
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
    Ok(Json(svc.query_media(&who, &conn, &query_params(q)).await?))
}

/// List stored media (older SDK path; `source` is accepted and ignored).
#[utoipa::path(get, path = "/v2/vault-plus/list", tag = "Vault+ (older paths)",
    params(ConnectionIdHeader, MediaQueryDoc),
    responses((status = 200, description = "Matching media.", body = MediaPage),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
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
    params(ConnectionIdHeader, ("mediaId" = String, Path, description = "Raw upstream media ID", example = "4492994399")),
    responses(
        (status = 200, description = "The media item.", body = MediaItemView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
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
    params(ConnectionIdHeader, ("mediaId" = String, Path, description = "Raw upstream media ID", example = "4492994399")),
    responses(
        (status = 200, description = "Deleted (success false when nothing matched).", body = DeleteMediaResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    ),
    security(("ApiKey" = [])))]
pub async fn delete_media(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
    PathParams(raw): PathParams<String>,
) -> ApiResult<Json<DeleteMediaResponse>> {
    let id = media_id(&raw)?;
    Ok(Json(svc.delete_media(&who, &conn, &id).await?))
}

/// Get a media item (older SDK path).
#[utoipa::path(get, path = "/v2/vault-plus/{mediaId}", tag = "Vault+ (older paths)",
    params(ConnectionIdHeader, ("mediaId" = String, Path, description = "Raw upstream media ID")),
    responses((status = 200, body = MediaItemView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
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
    params(ConnectionIdHeader, ("mediaId" = String, Path, description = "Raw upstream media ID")),
    responses((status = 200, body = DeleteMediaResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)),
    security(("ApiKey" = [])))]
pub async fn legacy_delete(
    state: State<VaultService>,
    auth: Auth,
    conn: ConnectionHeader,
    path: PathParams<String>,
) -> ApiResult<Json<DeleteMediaResponse>> {
    delete_media(state, auth, conn, path).await
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRequest {
    /// 1-100 raw upstream media IDs.
    #[schema(max_items = 100, example = json!(["4492994399", "4492994400"]))]
    media_ids: Vec<String>,
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
    responses((status = 200, description = "The items found.", body = MediaItems),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
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
    responses((status = 200, body = MediaItems), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)),
    security(("ApiKey" = [])))]
pub async fn legacy_batch(
    state: State<VaultService>,
    auth: Auth,
    conn: ConnectionHeader,
    body: ApiJson<BatchRequest>,
) -> ApiResult<Json<MediaItems>> {
    batch_media(state, auth, conn, body).await
}
