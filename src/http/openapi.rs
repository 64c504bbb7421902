//! The OpenAPI 3.1 document, generated from the handlers' annotations. The
//! purge operation's schemas are the seed contract's verbatim
//! (docs/reference/000_ab7af7969c1ee0d9.txt).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::model::views::PurgeResponse;
use crate::service::{VaultService, rate_schema_with_max};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vaultplus",
        description = "Self-hostable media cache server speaking the OFAuth Vault+ API.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecurityAddon),
    // The shared error responses (error_responses.rs) refer to ErrorBody;
    // the rest are hand-written schemas parameters refer to, which utoipa
    // does not collect from `params(...)`.
    components(schemas(
        super::error::ErrorBody,
        crate::model::MediaId,
        crate::model::ListId,
        crate::model::Label,
        crate::model::ConnectionId,
        super::routes::delivery::MediaToken,
        super::routes::delivery::MediaBody,
        super::routes::upload::MediaBytes,
    )),
    tags(
        (name = "Vault+ Media", description = "Vault+ caching and management."),
        (name = "Vault+ Lists", description = "Vault lists: add, sync, read; storing jobs."),
        (name = "Vault+ (older paths)", description = "Paths used by the onlyfans-sdk 3.x clients."),
        (name = "Vault+ Webhooks", description = "Webhook endpoints: events signed the Svix way."),
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

/// The events webhook endpoints receive, as the document's `webhooks`
/// (OpenAPI 3.1): one `POST` each, with its body's schema and the Svix
/// headers it is signed with (`model::webhook::EVENT_DOCS`).
pub fn document_webhooks(api: &mut utoipa::openapi::OpenApi) {
    use crate::model::webhook::{EVENT_DOCS, body_schema};
    let paths: serde_json::Map<String, serde_json::Value> = EVENT_DOCS
        .iter()
        .map(|doc| {
            let op = serde_json::json!({
                "post": {
                    "summary": doc.event_type,
                    "description": doc.when,
                    "tags": ["Vault+ Webhooks"],
                    "parameters": [
                        {"name": "svix-id", "in": "header", "required": true,
                         "schema": {"type": "string"},
                         "description": "The event's ID (msg_...): the same on every attempt."},
                        {"name": "svix-timestamp", "in": "header", "required": true,
                         "schema": {"type": "string"},
                         "description": "Unix seconds of the attempt."},
                        {"name": "svix-signature", "in": "header", "required": true,
                         "schema": {"type": "string"},
                         "description": "v1,<base64 HMAC-SHA256 of \"{svix-id}.{svix-timestamp}.{body}\"> keyed by the base64 secret after whsec_; two, space-separated, during a secret rotation."},
                    ],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": body_schema(doc)}}},
                    "responses": {
                        "2XX": {"description": "Delivered."},
                        "default": {"description": "Retried with backoff for the retry window (24 h), then the endpoint is disabled."},
                    },
                }
            });
            (doc.event_type.to_owned(), op)
        })
        .collect();
    api.webhooks = Some(
        serde_json::from_value(serde_json::Value::Object(paths)).expect("webhook paths are valid"),
    );
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
/// in each route's annotation: API-key operations (and /healthz, given a
/// key) get the `X-RateLimit-*` headers on every response and a `429`;
/// media URLs (limited per client address when
/// `--media-rate-limit-per-minute` is set, and by a key sent along) get the
/// `429`.
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
        for op in operations_mut(item) {
            // Any request that carries an apiKey is limited by it (the
            // middleware runs before routing): /healthz takes one too.
            let keyed = op.security.as_ref().is_some_and(|s| {
                s.iter()
                    .any(|r| serde_json::to_value(r).is_ok_and(|v| v.get("ApiKey").is_some()))
            }) || op
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p, RefOr::T(p) if p.name.eq_ignore_ascii_case("apiKey")));
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

/// What depends on this server's configuration: the largest rate limit an
/// organization may set is the server's own (`--rate-limit-per-minute`,
/// `--rate-limit-burst`), as the PATCH checks it.
pub fn document_server_limits(api: &mut utoipa::openapi::OpenApi, service: &VaultService) {
    let (per_minute, burst) = service.org_rate_limit_max();
    let Some(RefOr::T(Schema::Object(patch))) = api
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("OrgSettingsPatch"))
    else {
        return;
    };
    for (field, max) in [
        ("rateLimitPerMinute", per_minute),
        ("rateLimitBurst", burst),
    ] {
        if let Some(p) = patch.properties.get_mut(field) {
            *p = rate_schema_with_max(max);
        }
    }
}

/// The document against the rules it describes: each declared value or
/// bound is fed to the parser that enforces it, so a rule changed in one
/// place and not the other fails here.
/// Every operation of a path, to change in place.
pub(super) fn operations_mut(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.head,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::model::{Label, ListId, MediaId, SettingsPatch};
    use crate::service::MediaQueryParams;

    fn doc() -> Value {
        serde_json::to_value(crate::http::routes().1).unwrap()
    }

    /// A schema with its local `$ref` followed.
    fn resolved<'a>(d: &'a Value, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => d.pointer(r.trim_start_matches('#')).expect("dangling $ref"),
            None => v,
        }
    }

    fn param<'a>(d: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
        let params = d["paths"][path][method]["parameters"].as_array().unwrap();
        let p = params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| {
                panic!("{method} {path} has no parameter {name}");
            });
        resolved(d, &p["schema"])
    }

    fn strings(v: &Value) -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn identifiers_declare_the_parsers_shapes() {
        let d = doc();
        let cases: [(&str, &str, &str, String); 5] = [
            (
                "/v2/vault-plus/media/{mediaId}",
                "get",
                "mediaId",
                MediaId::SHAPE.pattern(),
            ),
            (
                "/v2/vault-plus/{mediaId}",
                "delete",
                "mediaId",
                MediaId::SHAPE.pattern(),
            ),
            (
                "/v2/vault-plus/lists/{listId}/add",
                "post",
                "listId",
                ListId::SHAPE.pattern(),
            ),
            (
                "/v2/vault-plus/media/{mediaId}/variants/{label}",
                "put",
                "label",
                Label::SHAPE.pattern(),
            ),
            (
                "/v2/vault-plus/status",
                "get",
                "x-connection-id",
                crate::model::ConnectionId::SHAPE.pattern(),
            ),
        ];
        for (path, method, name, pattern) in cases {
            let s = param(&d, path, method, name);
            assert_eq!(s["pattern"], pattern.as_str(), "{method} {path} {name}");
        }
        let batch = &d["components"]["schemas"]["BatchRequest"]["properties"]["mediaIds"];
        assert_eq!(batch["items"]["pattern"], MediaId::SHAPE.pattern().as_str());
        assert_eq!(batch["maxItems"], crate::service::MAX_BATCH);
        assert_eq!(batch["minItems"], 1);
    }

    #[test]
    fn status_documents_the_list_runs_in_flight() {
        let d = doc();
        let status = &d["components"]["schemas"]["ConnectionStatusView"];
        let required = status["required"].as_array().expect("required");
        assert!(
            !required.iter().any(|r| r == "syncs"),
            "absent when none runs"
        );
        assert!(required.iter().any(|r| r == "storedCount"));
        let run = &d["components"]["schemas"]["ListRunView"]["properties"];
        for field in [
            "listId",
            "mode",
            "startedAt",
            "pagesPlanned",
            "itemsPlanned",
            "jobsQueued",
        ] {
            assert!(run.get(field).is_some(), "{field}");
        }
    }

    #[test]
    fn query_enums_and_ranges_are_what_the_parsers_take() {
        let d = doc();
        let path = "/v2/vault-plus/media";
        let parse = |name: &str, value: &str| {
            let q = crate::http::extract::QueryMap(
                [(name.to_owned(), value.to_owned())].into_iter().collect(),
            );
            q.parse::<MediaQueryParams>().unwrap().parse().is_ok()
        };
        for name in ["status", "type", "source", "sort"] {
            let values = strings(&param(&d, path, "get", name)["enum"]);
            assert!(!values.is_empty(), "{name}");
            for v in &values {
                assert!(parse(name, v), "{name}={v} is declared but refused");
            }
            assert!(!parse(name, ""), "{name}= is accepted but not declared");
        }
        let limit = param(&d, path, "get", "limit");
        let (lo, hi) = (
            limit["minimum"].as_u64().unwrap(),
            limit["maximum"].as_u64().unwrap(),
        );
        for (n, ok) in [(lo - 1, false), (lo, true), (hi, true), (hi + 1, false)] {
            assert_eq!(parse("limit", &n.to_string()), ok, "limit={n}");
        }
        let ct = param(&d, path, "get", "contentType");
        let max = ct["maxLength"].as_u64().unwrap() as usize;
        assert!(parse("contentType", &"é".repeat(max)));
        assert!(!parse("contentType", &"a".repeat(max + 1)));
        assert!(!parse("contentType", ""));
        assert_eq!(param(&d, path, "get", "durationMin")["minimum"], 0.0);
        assert!(parse("durationMin", "0") && !parse("durationMin", "-0.5"));
        let jobs = strings(&param(&d, "/v2/vault-plus/jobs", "get", "state")["enum"]);
        assert_eq!(jobs, crate::service::JOB_FILTERS);
    }

    #[test]
    fn settings_bounds_are_what_validation_takes() {
        let d = doc();
        let props = &d["components"]["schemas"]["SettingsPatch"]["properties"];
        let check = |field: &str, n: u64| {
            serde_json::from_value::<SettingsPatch>(serde_json::json!({ field: n }))
                .is_ok_and(|p| p.validate().is_ok())
        };
        for field in [
            "presignedUrlTtlSeconds",
            "retentionDays",
            "accessExpiryDays",
            "storageLimitBytes",
        ] {
            let (lo, hi) = (
                props[field]["minimum"].as_u64().unwrap(),
                props[field]["maximum"].as_u64().unwrap(),
            );
            assert!(check(field, lo) && check(field, hi), "{field} {lo}..={hi}");
            assert!(lo == 0 || !check(field, lo - 1), "{field} below {lo}");
            assert!(!check(field, hi + 1), "{field} above {hi}");
        }
        for (field, allowed) in [
            (
                "imageQualities",
                &crate::model::settings::IMAGE_QUALITIES[..],
            ),
            (
                "videoQualities",
                &crate::model::settings::VIDEO_QUALITIES[..],
            ),
        ] {
            assert_eq!(strings(&props[field]["items"]["enum"]), allowed, "{field}");
            assert_eq!(props[field]["uniqueItems"], true);
        }
        let strategies = strings(&props["storageLimitPurgeStrategy"]["enum"]);
        assert_eq!(strategies, crate::model::settings::PURGE_STRATEGIES);
    }

    /// The answers every operation can give whatever its route: before
    /// routing, an internal error, and, with a key, 401 and 429.
    #[test]
    fn every_operation_declares_the_common_errors() {
        let d = doc();
        let mut n = 0;
        for (path, item) in d["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                n += 1;
                let responses = op["responses"].as_object().unwrap();
                for code in ["400", "408", "414", "429", "431", "500", "501"] {
                    assert!(responses.contains_key(code), "{method} {path} lacks {code}");
                }
                if op.get("security").is_some() {
                    assert!(responses.contains_key("401"), "{method} {path} lacks 401");
                }
                if op["requestBody"]["content"]
                    .get("application/json")
                    .is_some()
                {
                    assert!(responses.contains_key("413"), "{method} {path} lacks 413");
                }
            }
        }
        assert_eq!(n, 37, "operations");
    }

    #[test]
    fn webhooks_document_every_event_type_the_parser_takes() {
        use crate::model::webhook::EVENT_TYPES;
        let d = doc();
        let mut hooks: Vec<&String> = d["webhooks"].as_object().unwrap().keys().collect();
        hooks.sort();
        let mut types = EVENT_TYPES.to_vec();
        types.sort();
        assert_eq!(hooks, types);
        for t in EVENT_TYPES {
            let body =
                &d["webhooks"][t]["post"]["requestBody"]["content"]["application/json"]["schema"];
            assert_eq!(body["properties"]["eventType"]["enum"][0], t);
        }
        let create = resolved(
            &d,
            &d["paths"]["/v2/vault-plus/webhooks"]["post"]["requestBody"]["content"]["application/json"]
                ["schema"],
        );
        assert_eq!(
            strings(&create["properties"]["events"]["items"]["enum"]),
            EVENT_TYPES
        );
        assert_eq!(create["additionalProperties"], false, "{create}");
        let props = &create["properties"];
        assert_eq!(
            props["url"]["maxLength"],
            crate::service::webhooks::MAX_URL_LEN
        );
        assert_eq!(
            props["description"]["maxLength"],
            crate::service::webhooks::MAX_DESCRIPTION_LEN
        );
    }
}
