//! The list API: `GET /v2/access/vault/lists` (discovery) and
//! `GET /v2/access/vault/lists/{listId}/media` (MediaItems with freshly
//! signed rendition URLs), as docs/reference/upstream.md
//! describes them.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::catalog::{self, Kind, MediaSpec, Rendition};
use super::faults::{ApiFault, HOLD_MAX};
use super::routes::{ApiError, AppState, Demo};
use super::urls::now_unix;

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;

pub async fn lists(
    State(demo): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    admit(&demo, &headers)?;
    let (offset, limit) = paging(query.as_deref())?;
    let (page, has_more) = demo.world().lists(offset, limit);
    let list: Vec<Value> = page
        .into_iter()
        .map(|l| {
            let count = |k: Kind| {
                l.media
                    .iter()
                    .filter(|&&id| catalog::media(id).is_some_and(|s| s.kind == k))
                    .count()
            };
            json!({
                "id": l.id,
                "type": "custom",
                "name": l.name,
                "mediaCount": l.media.len(),
                "photosCount": count(Kind::Photo),
                "videosCount": count(Kind::Video),
                "gifsCount": count(Kind::Gif),
                "audiosCount": count(Kind::Audio),
            })
        })
        .collect();
    Ok(Json(json!({ "list": list, "hasMore": has_more })).into_response())
}

pub async fn list_media(
    State(demo): State<AppState>,
    Path(list_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    admit(&demo, &headers)?;
    let (offset, limit) = paging(query.as_deref())?;
    hold(&demo, offset).await;
    let (page, has_more) = list_id
        .parse::<u64>()
        .ok()
        .and_then(|id| demo.world().list_page(id, offset, limit))
        .ok_or_else(|| ApiError::not_found("List not found"))?;
    // Sizes may need an image encoded: keep that off the async workers.
    let d = demo.clone();
    let list = tokio::task::spawn_blocking(move || {
        d.renderer.prefetch(&renditions_of(&page));
        let exp = now_unix() + d.url_ttl_secs;
        page.into_iter()
            .map(|(id, rev)| media_item(&d, id, rev, exp))
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await
    .map_err(|e| ApiError::internal(format!("rendering stopped: {e}")))?
    .map_err(|e| ApiError::internal(format!("cannot render media: {e:#}")))?;
    Ok(Json(json!({ "list": list, "hasMore": has_more })).into_response())
}

/// Waits while pages from `offset` on are held (`holdListFrom`), polling
/// the setting, for at most [`HOLD_MAX`].
async fn hold(demo: &Demo, offset: usize) {
    let started = tokio::time::Instant::now();
    while started.elapsed() < HOLD_MAX {
        let from = demo.world().faults().hold_list_from;
        if from == 0 || (offset as u64) < from {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Checks the headers, then lets the fault settings have their say.
fn admit(demo: &Demo, headers: &HeaderMap) -> Result<(), ApiError> {
    let key = headers.get("apiKey").and_then(|v| v.to_str().ok());
    if key != Some(demo.api_key.as_str()) {
        let text = "Missing or invalid apiKey";
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            text,
        ));
    }
    let connection = headers
        .get("x-connection-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if connection.trim().is_empty() {
        let text = "x-connection-id header is required";
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "SESSION_NOT_PROVIDED",
            text,
        ));
    }
    let fault = demo.world().api_request();
    match fault {
        ApiFault::None => Ok(()),
        ApiFault::SessionExpired => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "SESSION_EXPIRED",
            "Session expired",
        )),
        ApiFault::RateLimited => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMIT_EXCEEDED",
            "Too many requests",
        )),
        ApiFault::Error => Err(ApiError::internal("Injected fault: internal error")),
    }
}

/// `offset` (default 0) and `limit` (default 10, at most 100: larger asks
/// are served 100, as the paging contract lets a server do).
fn paging(query: Option<&str>) -> Result<(usize, usize), ApiError> {
    let (mut offset, mut limit) = (0usize, DEFAULT_LIMIT);
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let target = match k.as_ref() {
            "offset" => &mut offset,
            "limit" => &mut limit,
            _ => continue,
        };
        *target = v.parse().map_err(|_| {
            ApiError::bad_request(format!("{k} must be a non-negative integer, got {v:?}"))
        })?;
    }
    if limit == 0 {
        return Err(ApiError::bad_request("limit must be from 1 to 100"));
    }
    Ok((offset, limit.min(MAX_LIMIT)))
}

/// Every (media, rendition, revision) of a page, for the renderer to size.
fn renditions_of(page: &[(u64, u32)]) -> Vec<(MediaSpec, Rendition, u32)> {
    let mut jobs = Vec::new();
    for &(id, rev) in page {
        let Some(spec) = catalog::media(id) else {
            continue;
        };
        for r in spec.files.iter().flatten() {
            jobs.push((spec.clone(), r.clone(), rev));
        }
    }
    jobs
}

/// One MediaItem. Blocking: image sizes may need an encode.
fn media_item(demo: &Demo, id: u64, revision: u32, exp: u64) -> anyhow::Result<Value> {
    let spec = catalog::media(id).ok_or_else(|| anyhow::anyhow!("unknown media {id}"))?;
    let files = match &spec.files {
        None => Value::Null,
        Some(renditions) => {
            let mut files = Map::new();
            for r in renditions {
                let size = demo.renderer.size(&spec, r, revision)?;
                let path = format!("{id}/{revision}/{}.{}", r.label, r.encoding.ext());
                let file = json!({
                    "url": demo.signer.url(&demo.public_url, &path, exp),
                    "width": r.width,
                    "height": r.height,
                    "size": size,
                });
                files.insert(r.label.to_owned(), file);
            }
            Value::Object(files)
        }
    };
    let created_at = OffsetDateTime::from_unix_timestamp(spec.created_at)?.format(&Rfc3339)?;
    Ok(json!({
        "id": id,
        "type": spec.kind.as_str(),
        "createdAt": created_at,
        "duration": spec.duration,
        "canView": spec.can_view,
        "isReady": spec.is_ready,
        "hasError": spec.has_error,
        "files": files,
    }))
}
