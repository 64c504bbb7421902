//! The HTTP layer: routes, extractors, errors. Thin by design: every
//! handler parses, calls the service, and serializes.

pub mod client_ip;
pub mod conditional;
pub mod error;
pub mod error_responses;
pub mod extract;
pub mod openapi;
pub mod query_params;
pub mod rate_limit;
pub mod request_id;
pub mod routes;
pub mod server;
pub mod strict_json;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::service::VaultService;
use error::ApiError;
use routes::{account, delivery, health, lists, media, purge, receipts, status, upload, webhooks};

/// Routes and the OpenAPI document they describe, from one list, so the
/// document cannot miss a route.
pub fn routes() -> (Router<VaultService>, utoipa::openapi::OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(media::query_media, purge::purge_media))
        .routes(routes!(media::batch_media))
        .routes(routes!(media::get_media, media::delete_media))
        .routes(routes!(upload::put_variant))
        .routes(routes!(status::status))
        .routes(routes!(status::stats))
        .routes(routes!(lists::add_list))
        .routes(routes!(lists::sync_list))
        .routes(routes!(lists::lists))
        .routes(routes!(lists::list_media))
        .routes(routes!(lists::jobs))
        .routes(routes!(lists::legacy_store_list))
        .routes(routes!(media::legacy_list))
        .routes(routes!(media::legacy_batch))
        .routes(routes!(purge::legacy_purge))
        .routes(routes!(status::legacy_status))
        .routes(routes!(status::legacy_stats))
        .routes(routes!(media::legacy_get, media::legacy_delete))
        .routes(routes!(
            account::get_connection_settings,
            account::patch_connection_settings
        ))
        .routes(routes!(
            account::get_org_settings,
            account::patch_org_settings
        ))
        .routes(routes!(account::list_connections))
        .routes(routes!(account::delete_connection))
        .routes(routes!(delivery::get_media_bytes, delivery::post_media_url))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(webhooks::delete_webhook))
        .routes(routes!(webhooks::rotate_webhook_secret))
        .routes(routes!(receipts::list_receipts))
        .routes(routes!(receipts::receipt_keys))
        .routes(routes!(receipts::get_receipt))
        .routes(routes!(health::healthz))
        .split_for_parts();
    error_responses::document_common_errors(&mut api);
    openapi::document_rate_limits(&mut api);
    openapi::document_webhooks(&mut api);
    (router, api)
}

pub fn router(service: VaultService) -> Router {
    let (routes, mut api) = routes();
    openapi::document_server_limits(&mut api, &service);
    let query_rules = Arc::new(query_params::QueryRules::from_openapi(&api));
    let api = Arc::new(api);
    let routes = routes
        // HEAD on media URLs goes to the GET handler, which sends no body.
        .route(
            "/openapi.json",
            get(move || {
                let api = api.clone();
                async move { Json(api.as_ref().clone()) }
            }),
        )
        // After routing, where the matched route is known: each route takes
        // only the query parameters its OpenAPI entry declares.
        .route_layer(axum::middleware::from_fn_with_state(
            query_rules,
            query_params::middleware,
        ));
    routes
        .fallback(request_id::fallback)
        // Uploads stream through the service, which enforces its own limit;
        // JSON bodies are bounded by their extractor.
        .layer(DefaultBodyLimit::disable())
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            ApiError::internal().into_response()
        }))
        // Inside the request-ID layer, so a 429 gets its JSON body.
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            rate_limit::api_keys,
        ))
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            rate_limit::media_clients,
        ))
        // Outermost: it also records the request metrics, so that what the
        // layers inside answer (429s, unknown paths) counts too.
        .layer(axum::middleware::from_fn(request_id::middleware))
        .with_state(service)
}
