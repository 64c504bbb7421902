//! Webhook endpoints of the caller's organization (ACCOUNT scope).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::http::error::{ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, Auth, PathParams};
use crate::model::webhook_views::{
    CreatedWebhookEndpoint, RotatedWebhookSecret, WebhookEndpointList,
};
use crate::service::VaultService;
use crate::service::webhooks::NewWebhookEndpoint;

/// Register a webhook endpoint
///
/// Answers its secret (`whsec_...`), shown only here: deliveries are signed
/// with it the Svix way (`svix-id`, `svix-timestamp`, `svix-signature`).
#[utoipa::path(post, path = "/v2/vault-plus/webhooks", tag = "Vault+ Webhooks",
    request_body = NewWebhookEndpoint,
    responses(
        (status = 201, description = "Registered.", body = CreatedWebhookEndpoint),
        (status = 409, description = "The organization has the most endpoints it may have.", body = ErrorBody),
    ),
    security(("ApiKey" = [])))]
pub async fn create_webhook(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ApiJson(body): ApiJson<NewWebhookEndpoint>,
) -> ApiResult<(StatusCode, Json<CreatedWebhookEndpoint>)> {
    Ok((
        StatusCode::CREATED,
        Json(svc.create_webhook(&who, body).await?),
    ))
}

/// The organization's webhook endpoints (without secrets)
#[utoipa::path(get, path = "/v2/vault-plus/webhooks", tag = "Vault+ Webhooks",
    responses((status = 200, body = WebhookEndpointList)),
    security(("ApiKey" = [])))]
pub async fn list_webhooks(
    State(svc): State<VaultService>,
    Auth(who): Auth,
) -> ApiResult<Json<WebhookEndpointList>> {
    Ok(Json(svc.list_webhooks(&who).await?))
}

/// Delete a webhook endpoint; its pending deliveries are dropped
#[utoipa::path(delete, path = "/v2/vault-plus/webhooks/{webhookId}", tag = "Vault+ Webhooks",
    params(("webhookId" = String, Path, description = "Endpoint ID (whk_...)")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "The organization has no such endpoint.", body = ErrorBody),
    ),
    security(("ApiKey" = [])))]
pub async fn delete_webhook(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    PathParams(id): PathParams<String>,
) -> ApiResult<StatusCode> {
    svc.delete_webhook(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a webhook endpoint's secret
///
/// Answers the new secret; for 24 hours every delivery carries a signature
/// by the previous secret beside the new one's. One rotation at a time:
/// another within those 24 hours is refused.
#[utoipa::path(post, path = "/v2/vault-plus/webhooks/{webhookId}/rotate-secret", tag = "Vault+ Webhooks",
    params(("webhookId" = String, Path, description = "Endpoint ID (whk_...)")),
    responses(
        (status = 200, body = RotatedWebhookSecret),
        (status = 404, description = "The organization has no such endpoint.", body = ErrorBody),
        (status = 409, description = "The secret the last rotation replaced still signs.", body = ErrorBody),
    ),
    security(("ApiKey" = [])))]
pub async fn rotate_webhook_secret(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<RotatedWebhookSecret>> {
    Ok(Json(svc.rotate_webhook_secret(&who, &id).await?))
}
