//! The OpenAPI 3.1 document, generated from the handlers' annotations. The
//! purge operation's schemas are the seed contract's verbatim
//! (docs/reference/000_ab7af7969c1ee0d9.txt).

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

/// Documents the rate limits on every operation, in one place rather than
/// in each route's annotation: API-key operations get the `X-RateLimit-*`
/// headers on every response and a `429`; media URLs (limited per client
/// address when `--media-rate-limit-per-minute` is set) get the `429`.
pub fn document_rate_limits(api: &mut utoipa::openapi::OpenApi) {
    let header = |description: &str| -> utoipa::openapi::Header {
        serde_json::from_value(serde_json::json!({
            "description": description,
            "schema": {"type": "integer", "minimum": 0}
        }))
        .expect("hand-written header is valid")
    };
    let too_many = |keyed: bool| -> RefOr<utoipa::openapi::Response> {
        let mut headers = serde_json::json!({
            "Retry-After": {"description": "Seconds until a request is allowed again.", "schema": {"type": "integer", "minimum": 1}}
        });
        if keyed {
            headers["X-RateLimit-Limit"] = serde_json::json!({"schema": {"type": "integer"}});
            headers["X-RateLimit-Remaining"] = serde_json::json!({"schema": {"type": "integer"}});
            headers["X-RateLimit-Reset"] = serde_json::json!({"schema": {"type": "integer"}});
        }
        serde_json::from_value(serde_json::json!({
            "description": "Rate limit exceeded (`RATE_LIMIT_EXCEEDED`): per API key, or per client address on media URLs.",
            "headers": headers,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        }))
        .expect("hand-written response is valid")
    };
    for (path, item) in api.paths.paths.iter_mut() {
        let media = path.starts_with("/v2/media/");
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.head,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let keyed = op.security.as_ref().is_some_and(|s| {
                s.iter()
                    .any(|r| serde_json::to_value(r).is_ok_and(|v| v.get("ApiKey").is_some()))
            });
            if keyed {
                for resp in op.responses.responses.values_mut() {
                    if let RefOr::T(r) = resp {
                        r.headers.insert(
                            "X-RateLimit-Limit".into(),
                            RefOr::T(header("Requests the API key's bucket holds (the burst).")),
                        );
                        r.headers.insert(
                            "X-RateLimit-Remaining".into(),
                            RefOr::T(header("Requests left in the bucket after this one.")),
                        );
                        r.headers.insert(
                            "X-RateLimit-Reset".into(),
                            RefOr::T(header("Seconds until the bucket is full again.")),
                        );
                    }
                }
            }
            if keyed || media {
                op.responses.responses.insert("429".into(), too_many(keyed));
            }
        }
    }
}
