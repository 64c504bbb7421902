//! Vault lists: add, sync, read; storing jobs.

use axum::Json;
use axum::extract::State;
use utoipa::IntoParams;

use super::ConnectionIdHeader;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{Auth, ConnectionHeader, PathParams, QueryMap};
use crate::model::ListId;
use crate::model::schema::{self, schema_type};
use crate::model::views::{
    JobsView, LegacyStoreListResponse, ListAddResponse, ListMediaView, ListSyncResponse, ListsView,
};
use crate::service::{JOB_FILTERS, PageParams, VaultService};

/// Cache new media of a vault list, without removing anything.
#[utoipa::path(post, path = "/v2/vault-plus/lists/{listId}/add", tag = "Vault+ Lists",
    params(ConnectionIdHeader, ("listId" = ListId, Path, description = "Upstream vault list ID")),
    responses((status = 200, body = ListAddResponse), (status = 401, description = "Bad key, unknown connection, or upstream session gone.", body = ErrorBody),
              (status = 403, description = "Vault+ is disabled for the connection.", body = ErrorBody),
              (status = 404, description = "List not found upstream.", body = ErrorBody),
              (status = 409, description = "The connection was purged while the list was being read.", body = ErrorBody),
              (status = 502, description = "The upstream failed, or none is configured (--upstream-url).", body = ErrorBody)),
    security(("ApiKey" = [])))]
pub async fn add_list(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
    PathParams(list): PathParams<String>,
) -> ApiResult<Json<ListAddResponse>> {
    Ok(Json(svc.add_list(&who, &conn, &list).await?))
}

/// Make the cached list match the upstream list (first sync records a
/// baseline and removes nothing).
#[utoipa::path(put, path = "/v2/vault-plus/lists/{listId}/sync", tag = "Vault+ Lists",
    params(ConnectionIdHeader, ("listId" = ListId, Path, description = "Upstream vault list ID")),
    responses((status = 200, body = ListSyncResponse), (status = 401, description = "Bad key, unknown connection, or upstream session gone.", body = ErrorBody),
              (status = 403, description = "Vault+ is disabled for the connection.", body = ErrorBody),
              (status = 404, description = "List not found upstream.", body = ErrorBody),
              (status = 409, description = "The connection was purged while the list was being read.", body = ErrorBody),
              (status = 502, description = "The upstream failed, or none is configured (--upstream-url).", body = ErrorBody)),
    security(("ApiKey" = [])))]
pub async fn sync_list(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
    PathParams(list): PathParams<String>,
) -> ApiResult<Json<ListSyncResponse>> {
    Ok(Json(svc.sync_list(&who, &conn, &list).await?))
}

/// Store all media of a vault list (older SDK path; behaves as add).
#[utoipa::path(post, path = "/v2/vault-plus/store/list/{listId}", tag = "Vault+ (older paths)",
    params(ConnectionIdHeader, ("listId" = ListId, Path, description = "Upstream vault list ID")),
    responses((status = 200, body = LegacyStoreListResponse), (status = 401, description = "Bad key, unknown connection, or upstream session gone.", body = ErrorBody),
              (status = 403, description = "Vault+ is disabled for the connection.", body = ErrorBody),
              (status = 404, description = "List not found upstream.", body = ErrorBody),
              (status = 409, description = "The connection was purged while the list was being read.", body = ErrorBody),
              (status = 502, description = "The upstream failed, or none is configured (--upstream-url).", body = ErrorBody)),
    security(("ApiKey" = [])))]
pub async fn legacy_store_list(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
    PathParams(list): PathParams<String>,
) -> ApiResult<Json<LegacyStoreListResponse>> {
    Ok(Json(svc.legacy_store_list(&who, &conn, &list).await?))
}

/// The vault lists cached for the connection.
#[utoipa::path(get, path = "/v2/vault-plus/lists", tag = "Vault+ Lists",
    params(ConnectionIdHeader),
    responses((status = 200, body = ListsView)),
    security(("ApiKey" = [])))]
pub async fn lists(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
) -> ApiResult<Json<ListsView>> {
    Ok(Json(svc.lists(&who, &conn).await?))
}

/// Cached members of one list, oldest membership first, a page at a time
/// (follow `nextCursor`), from vaultplus records only (the upstream is not
/// contacted).
#[utoipa::path(get, path = "/v2/vault-plus/lists/{listId}/media", tag = "Vault+ Lists",
    params(ConnectionIdHeader, ("listId" = ListId, Path, description = "Upstream vault list ID"), PageParams),
    responses((status = 200, description = "One page of members; nextCursor only when more follow.", body = ListMediaView),
              (status = 400, description = "Bad list ID, limit or cursor (one from another list or route), or an unknown parameter.", body = ErrorBody)),
    security(("ApiKey" = [])))]
pub async fn list_media(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
    PathParams(list): PathParams<String>,
    q: QueryMap,
) -> ApiResult<Json<ListMediaView>> {
    let page = q.parse()?;
    Ok(Json(svc.list_media(&who, &conn, &list, &page).await?))
}

/// The jobs route's own parameter, taken before the page (OpenAPI only).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct JobsFilter {
    /// all (default) or failed
    #[param(value_type = Option<JobFilterParam>, inline)]
    state: Option<String>,
}

schema_type!(JobFilterParam => schema::one_of(&JOB_FILTERS));

/// Storing jobs of the connection, with their last errors (vaultplus
/// extension), oldest first, a page at a time (follow `nextCursor`).
/// `state=failed` lists only those given up.
#[utoipa::path(get, path = "/v2/vault-plus/jobs", tag = "Vault+ Lists",
    params(ConnectionIdHeader, JobsFilter, PageParams),
    responses((status = 200, description = "One page of jobs; nextCursor only when more follow.", body = JobsView),
              (status = 400, description = "Bad state, limit or cursor (one from another state or route), or an unknown parameter.", body = ErrorBody)),
    security(("ApiKey" = [])))]
pub async fn jobs(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
    mut q: QueryMap,
) -> ApiResult<Json<JobsView>> {
    let state = q.take("state");
    let page = q.parse()?;
    Ok(Json(svc.jobs(&who, &conn, state.as_deref(), &page).await?))
}
