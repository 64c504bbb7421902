//! `/_demo/*`: what tests use to change the upstream under a client (list
//! membership, media revisions, faults) and to see what it fetched. No
//! auth: this is a local test tool.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::faults::FaultPatch;
use super::routes::{ApiError, AppState};
use super::state::{Missing, World};

pub async fn remove(
    State(demo): State<AppState>,
    Path((list, media)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (list_id, media_id) = (parse_id("listId", &list)?, parse_id("mediaId", &media)?);
    let removed = demo.world().remove(list_id, media_id).map_err(missing)?;
    let body = json!({ "listId": list_id, "mediaId": media_id, "removed": removed });
    Ok(Json(body).into_response())
}

pub async fn add(
    State(demo): State<AppState>,
    Path((list, media)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (list_id, media_id) = (parse_id("listId", &list)?, parse_id("mediaId", &media)?);
    let added = demo.world().add(list_id, media_id).map_err(missing)?;
    let body = json!({ "listId": list_id, "mediaId": media_id, "added": added });
    Ok(Json(body).into_response())
}

pub async fn change(
    State(demo): State<AppState>,
    Path(media): Path<String>,
) -> Result<Response, ApiError> {
    let media_id = parse_id("mediaId", &media)?;
    let revision = demo.world().change(media_id);
    let revision = revision.ok_or_else(|| missing(Missing::Media))?;
    Ok(Json(json!({ "mediaId": media_id, "revision": revision })).into_response())
}

pub async fn faults(State(demo): State<AppState>) -> Response {
    Json(faults_json(&demo.world())).into_response()
}

/// Partial update: only the fields given change; anything malformed or out
/// of range is a 400 that changes nothing.
pub async fn put_faults(State(demo): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let patch: FaultPatch =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    patch.validate().map_err(ApiError::bad_request)?;
    let mut world = demo.world();
    world.patch_faults(&patch);
    Ok(Json(faults_json(&world)).into_response())
}

pub async fn reset(State(demo): State<AppState>) -> Response {
    demo.world().reset(demo.seed);
    Json(json!({ "reset": true })).into_response()
}

pub async fn stats(State(demo): State<AppState>) -> Result<Response, ApiError> {
    let stats = serde_json::to_value(demo.world().stats());
    let stats = stats.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(stats).into_response())
}

/// The fault settings plus the seed the generator last started from.
fn faults_json(world: &World) -> Value {
    let mut v = serde_json::to_value(world.faults()).unwrap_or_else(|_| json!({}));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("seed".into(), world.seed().into());
    }
    v
}

fn parse_id(name: &str, value: &str) -> Result<u64, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{name} must be a number, got {value:?}")))
}

fn missing(m: Missing) -> ApiError {
    ApiError::not_found(match m {
        Missing::List => "List not found",
        Missing::Media => "Media not found",
    })
}
