//! The JSON bodies of the webhook endpoint routes.

use serde::Serialize;
use utoipa::ToSchema;

/// A new endpoint: the only answer that shows its secret.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhookEndpoint {
    /// `whk_...`
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// `whsec_` and the base64 key the deliveries are signed with (Svix's
    /// format: give it to `verify_webhook_payload` or `Webhook(...)`).
    pub secret: String,
}

/// An endpoint as listed (never its secret).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// False once deliveries failed for the whole retry window (24 h).
    pub enabled: bool,
    /// Epoch milliseconds; null while enabled.
    pub disabled_at: Option<i64>,
    /// Why it was disabled, with the last error; null while enabled.
    pub disabled_reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookEndpointList {
    pub items: Vec<WebhookEndpointView>,
}

/// A rotated secret: the new one signs from now on, the previous one beside
/// it until `previousSecretExpiresAt`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedWebhookSecret {
    pub id: String,
    pub secret: String,
    /// Epoch milliseconds.
    pub previous_secret_expires_at: i64,
}
