//! The router and what every handler shares.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::render::Renderer;
use super::state::World;
use super::urls::Signer;
use super::{admin, api, cdn};

pub struct Demo {
    world: Mutex<World>,
    pub renderer: Renderer,
    pub signer: Signer,
    /// The key clients must send in `apiKey`.
    pub api_key: String,
    /// Base of the CDN URLs handed out, without a trailing slash.
    pub public_url: String,
    pub url_ttl_secs: u64,
    /// The seed `/_demo/reset` goes back to.
    pub seed: u64,
}

pub type AppState = Arc<Demo>;

impl Demo {
    pub fn new(
        world: World,
        signer: Signer,
        api_key: String,
        public_url: String,
        url_ttl_secs: u64,
        seed: u64,
    ) -> Self {
        Self {
            world: Mutex::new(world),
            renderer: Renderer::new(),
            signer,
            api_key,
            public_url,
            url_ttl_secs,
            seed,
        }
    }

    /// The world is only touched in short, non-async sections, and each of
    /// its updates leaves it consistent, so a poisoned lock is still usable.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v2/access/vault/lists", get(api::lists))
        .route(
            "/v2/access/vault/lists/{list_id}/media",
            get(api::list_media),
        )
        .route("/cdn/{media_id}/{revision}/{file}", get(cdn::fetch))
        .route(
            "/_demo/lists/{list_id}/remove/{media_id}",
            post(admin::remove),
        )
        .route("/_demo/lists/{list_id}/add/{media_id}", post(admin::add))
        .route("/_demo/media/{media_id}/change", post(admin::change))
        .route("/_demo/faults", get(admin::faults).put(admin::put_faults))
        .route("/_demo/reset", post(admin::reset))
        .route("/_demo/stats", get(admin::stats))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND", "No such route")
        })
        .with_state(state)
}

/// An upstream-style error: `{"type", "error", "message"}` with its status
/// (and `Retry-After: 1` for 429, which is always a "try again shortly").
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    text: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            text: text.into(),
        }
    }

    pub fn bad_request(text: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", text)
    }

    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND", text)
    }

    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", text)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "type": self.kind, "error": self.text, "message": self.text });
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}
