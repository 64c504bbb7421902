//! The OpenAPI 3.1 document, generated from the handlers' annotations. The
//! purge operation's schemas are the seed contract's, verbatim.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::model::views::PurgeResponse;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vaultplus",
        description = "Self-hostable media cache server speaking the OFAuth Vault+ API.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "Vault+ Media", description = "Vault+ caching and management."),
        (name = "Vault+ Lists", description = "Vault lists: add, sync, read; storing jobs."),
        (name = "Vault+ (older paths)", description = "Paths used by the onlyfans-sdk 3.x clients."),
        (name = "Account", description = "Account management endpoints."),
        (name = "Media delivery", description = "Signed media URLs."),
        (name = "Operations", description = "Health."),
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "ApiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "apiKey",
                "API key with the ACCOUNT scope (`vaultplus keys create`).",
            ))),
        );
    }
}

fn schema_from(json: serde_json::Value) -> RefOr<Schema> {
    serde_json::from_value(json).expect("hand-written schema is valid")
}

impl PartialSchema for PurgeResponse {
    fn schema() -> RefOr<Schema> {
        schema_from(serde_json::json!({
            "type": "object",
            "properties": {
                "success": {"type": "boolean", "description": "Whether the purge request completed.", "example": true},
                "purgedCount": {"type": "number", "description": "Number of internal cached variants removed for this connection.", "example": 2},
                "freedBytes": {"type": "number", "description": "Total bytes freed by the purge.", "example": 1056000}
            },
            "required": ["success", "purgedCount", "freedBytes"],
            "description": "Connection purge response."
        }))
    }
}

impl ToSchema for PurgeResponse {}

/// The seed's error schema for the purge operation. The body vaultplus
/// sends is a superset (`type`, `requestId`, `message` as well).
pub struct PurgeErrorResponse;

impl PartialSchema for PurgeErrorResponse {
    fn schema() -> RefOr<Schema> {
        schema_from(serde_json::json!({
            "type": "object",
            "properties": {
                "error": {"type": "string", "description": "Human-readable error message.", "example": "Media not found"}
            },
            "required": ["error"],
            "description": "Error response."
        }))
    }
}

impl ToSchema for PurgeErrorResponse {}
