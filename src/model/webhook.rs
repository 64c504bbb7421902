//! Webhook events: their types and bodies. A body is what OFAuth's SDK
//! types as `WebhookEvent`: `{"eventType", "live": true, "data": {...}}`.
//! Each event's `data` is built here, once, for the catalog to write into
//! its outbox in the transaction of the change it reports.

use serde::Serialize;
use serde_json::json;

use super::list_plan::ListCounts;
use super::settings::{LimitStrategy, StorageLimit};

/// A variant was stored (fetched from the upstream or uploaded).
pub const MEDIA_STORED: &str = "vault_plus.media.stored";
/// A connection's media was purged (the purge answer's counts).
pub const PURGE_COMPLETED: &str = "vault_plus.purge.completed";
/// A connection was removed, with what its purge removed.
pub const CONNECTION_REMOVED: &str = "vault_plus.connection.removed";

/// A variant was given up: its storing job failed for the last time.
pub const MEDIA_FAILED: &str = "vault_plus.media.failed";
/// A list sync finished (the sync answer's counts).
pub const LIST_SYNCED: &str = "vault_plus.list.synced";

/// A connection's storage limit made vaultplus evict stored variants.
pub const STORAGE_LIMIT_REACHED: &str = "vault_plus.storage.limit_reached";

/// Every event type an endpoint may subscribe to.
pub const EVENT_TYPES: [&str; 6] = [
    MEDIA_STORED,
    MEDIA_FAILED,
    LIST_SYNCED,
    PURGE_COMPLETED,
    CONNECTION_REMOVED,
    STORAGE_LIMIT_REACHED,
];

/// Prefix of a webhook endpoint's ID.
pub const ENDPOINT_PREFIX: &str = "whk_";
/// Prefix of an event's ID (the `svix-id` of each of its deliveries).
pub const MESSAGE_PREFIX: &str = "msg_";
/// Prefix of a secret as shown to the app (Svix's).
pub const SECRET_PREFIX: &str = "whsec_";

/// One event, ready to be written to the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEvent {
    pub event_type: &'static str,
    pub data: serde_json::Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    event_type: &'a str,
    live: bool,
    data: &'a serde_json::Value,
}

impl WebhookEvent {
    pub fn media_stored(
        connection_id: &str,
        media_id: &str,
        label: &str,
        size_bytes: u64,
        content_type: &str,
        sha256: Option<&str>,
    ) -> Self {
        Self {
            event_type: MEDIA_STORED,
            data: json!({
                "connectionId": connection_id,
                "mediaId": media_id,
                "quality": label,
                "sizeBytes": size_bytes,
                "contentType": content_type,
                "sha256": sha256,
            }),
        }
    }

    pub fn media_failed(connection_id: &str, media_id: &str, label: &str, error: &str) -> Self {
        Self {
            event_type: MEDIA_FAILED,
            data: json!({
                "connectionId": connection_id,
                "mediaId": media_id,
                "quality": label,
                "error": error,
            }),
        }
    }

    pub fn list_synced(connection_id: &str, list_id: &str, counts: &ListCounts) -> Self {
        Self {
            event_type: LIST_SYNCED,
            data: json!({
                "connectionId": connection_id,
                "listId": list_id,
                "seen": counts.seen,
                "addedItems": counts.added,
                "updatedItems": counts.updated,
                "removedItems": counts.removed,
                "unchangedItems": counts.unchanged,
                "adoptedItems": counts.adopted,
            }),
        }
    }

    pub fn storage_limit_reached(
        connection_id: &str,
        limit: &StorageLimit,
        evicted_count: u64,
        freed_bytes: u64,
        receipt: &str,
    ) -> Self {
        let strategy = match limit.strategy {
            LimitStrategy::PurgeOldest => "purge_oldest",
            LimitStrategy::PurgeLargest => "purge_largest",
            LimitStrategy::PurgeSmallest => "purge_smallest",
            LimitStrategy::BlockNew => "block_new",
        };
        Self {
            event_type: STORAGE_LIMIT_REACHED,
            data: json!({
                "connectionId": connection_id,
                "storageLimitBytes": limit.bytes,
                "strategy": strategy,
                "evictedCount": evicted_count,
                "freedBytes": freed_bytes,
                "receiptId": receipt,
            }),
        }
    }

    /// Sent when the purge is committed (`bytes_gone` false), and again
    /// when its erasure receipt is `bytes_gone`.
    pub fn purge_completed(
        connection_id: &str,
        purged_count: u64,
        freed_bytes: u64,
        receipt: &str,
        bytes_gone: bool,
    ) -> Self {
        Self {
            event_type: PURGE_COMPLETED,
            data: json!({
                "connectionId": connection_id,
                "purgedCount": purged_count,
                "freedBytes": freed_bytes,
                "receiptId": receipt,
                "bytesGone": bytes_gone,
            }),
        }
    }

    pub fn connection_removed(
        connection_id: &str,
        purged_count: u64,
        freed_bytes: u64,
        receipt: &str,
    ) -> Self {
        Self {
            event_type: CONNECTION_REMOVED,
            data: json!({
                "connectionId": connection_id,
                "purgedCount": purged_count,
                "freedBytes": freed_bytes,
                "receiptId": receipt,
                "bytesGone": false,
            }),
        }
    }

    /// The JSON body every delivery of this event sends, byte for byte
    /// (it is signed as it is stored).
    pub fn body(&self) -> String {
        serde_json::to_string(&Body {
            event_type: self.event_type,
            live: true,
            data: &self.data,
        })
        .expect("a JSON value serializes")
    }
}

/// What each event type reports, and the fields of its `data`: the
/// OpenAPI document's `webhooks` are built from it, and a test holds the
/// constructors above to it.
pub struct EventDoc {
    pub event_type: &'static str,
    pub when: &'static str,
    /// (name, JSON Schema type, what it holds); every field is always present.
    pub fields: &'static [(&'static str, &'static str, &'static str)],
}

const PURGE_FIELDS: &[(&str, &str, &str)] = &[
    ("connectionId", "string", "The connection."),
    (
        "purgedCount",
        "integer",
        "Variants removed (the purge answer's purgedCount).",
    ),
    (
        "freedBytes",
        "integer",
        "Bytes freed (the purge answer's freedBytes); they are reclaimed in the background.",
    ),
    (
        "receiptId",
        "string",
        "The erasure receipt (GET /v2/vault-plus/receipts/{receiptId}), as the answer's x-vaultplus-receipt header names it.",
    ),
    (
        "bytesGone",
        "boolean",
        "false when the change is committed; true in the second vault_plus.purge.completed of a purge, sent once its receipt is bytes_gone (every blob deleted from the blob store).",
    ),
];

pub const EVENT_DOCS: [EventDoc; 6] = [
    EventDoc {
        event_type: MEDIA_STORED,
        when: "A variant was stored: fetched by a storing job, or uploaded.",
        fields: &[
            ("connectionId", "string", "The connection."),
            ("mediaId", "string", "The upstream media ID."),
            ("quality", "string", "The variant's label."),
            ("sizeBytes", "integer", "Bytes stored."),
            (
                "contentType",
                "string",
                "The stored variant's content type.",
            ),
            (
                "sha256",
                "string",
                "Lowercase hex SHA-256 of the stored bytes.",
            ),
        ],
    },
    EventDoc {
        event_type: MEDIA_FAILED,
        when: "A variant was given up: its storing job failed for the last time (--fetch-attempts); it stays listed, edge_only, with its error.",
        fields: &[
            ("connectionId", "string", "The connection."),
            ("mediaId", "string", "The upstream media ID."),
            ("quality", "string", "The variant's label."),
            ("error", "string", "Why the last attempt failed."),
        ],
    },
    EventDoc {
        event_type: LIST_SYNCED,
        when: "A list sync (PUT /v2/vault-plus/lists/{listId}/sync) finished, with the sync answer's counts.",
        fields: &[
            ("connectionId", "string", "The connection."),
            ("listId", "string", "The upstream vault list."),
            ("seen", "integer", "Items the upstream listed."),
            ("addedItems", "integer", "Items new to the cache."),
            (
                "updatedItems",
                "integer",
                "Items whose media changed and is stored again.",
            ),
            (
                "removedItems",
                "integer",
                "Items that left the list and were removed.",
            ),
            (
                "unchangedItems",
                "integer",
                "Items already cached as listed.",
            ),
            (
                "adoptedItems",
                "integer",
                "Items cached before (another list, an upload) now also members of this list.",
            ),
        ],
    },
    EventDoc {
        event_type: PURGE_COMPLETED,
        when: "A connection's media was purged (DELETE /v2/vault-plus/media, the older /purge, or disabling Vault+ for the connection); sent again, with bytesGone true, once the purge's erasure receipt is bytes_gone.",
        fields: PURGE_FIELDS,
    },
    EventDoc {
        event_type: CONNECTION_REMOVED,
        when: "A connection was removed (DELETE /v2/account/connections/{id}, or `connections remove`), with what its purge removed.",
        fields: PURGE_FIELDS,
    },
    EventDoc {
        event_type: STORAGE_LIMIT_REACHED,
        when: "A connection's storageLimitBytes made vaultplus evict stored variants (a purge_* strategy), in the transaction of the store or sweep that went over it. (With block_new nothing is evicted: the store is refused.)",
        fields: &[
            ("connectionId", "string", "The connection."),
            ("storageLimitBytes", "integer", "The limit in force."),
            (
                "strategy",
                "string",
                "storageLimitPurgeStrategy: which variants went first.",
            ),
            ("evictedCount", "integer", "Variants evicted."),
            (
                "freedBytes",
                "integer",
                "Bytes they held (reclaimed in the background).",
            ),
            (
                "receiptId",
                "string",
                "The eviction's erasure receipt (GET /v2/vault-plus/receipts/{receiptId}).",
            ),
        ],
    },
];

/// The JSON Schema of one event's body.
pub fn body_schema(doc: &EventDoc) -> serde_json::Value {
    let properties: serde_json::Map<String, serde_json::Value> = doc
        .fields
        .iter()
        .map(|(name, ty, what)| ((*name).to_owned(), json!({"type": ty, "description": what})))
        .collect();
    let required: Vec<&str> = doc.fields.iter().map(|f| f.0).collect();
    json!({
        "type": "object",
        "description": doc.when,
        "required": ["eventType", "live", "data"],
        "properties": {
            "eventType": {"type": "string", "enum": [doc.event_type]},
            "live": {"type": "boolean", "enum": [true]},
            "data": {"type": "object", "required": required, "properties": properties},
        },
    })
}

/// Random URL-safe characters after a prefix: 128 bits, as a Svix ID has.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_the_sdk_webhook_event_shape() {
        let e = WebhookEvent::purge_completed("conn_1", 2, 30, "rcpt_1", false);
        let body: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(
            body,
            json!({"eventType": PURGE_COMPLETED, "live": true,
                   "data": {"connectionId": "conn_1", "purgedCount": 2, "freedBytes": 30,
                            "receiptId": "rcpt_1", "bytesGone": false}})
        );
    }

    #[test]
    fn every_event_is_documented_with_exactly_the_fields_it_sends() {
        let examples = [
            WebhookEvent::media_stored("c", "1", "full", 3, "image/jpeg", Some("ab")),
            WebhookEvent::media_failed("c", "1", "full", "gone"),
            WebhookEvent::list_synced("c", "10", &ListCounts::default()),
            WebhookEvent::purge_completed("c", 1, 2, "rcpt_1", true),
            WebhookEvent::connection_removed("c", 1, 2, "rcpt_2"),
            WebhookEvent::storage_limit_reached(
                "c",
                &StorageLimit {
                    bytes: 10,
                    strategy: LimitStrategy::PurgeOldest,
                },
                1,
                2,
                "rcpt_3",
            ),
        ];
        assert_eq!(EVENT_DOCS.map(|d| d.event_type), EVENT_TYPES);
        for (doc, e) in EVENT_DOCS.iter().zip(&examples) {
            assert_eq!(doc.event_type, e.event_type);
            let mut sent: Vec<&String> = e.data.as_object().unwrap().keys().collect();
            let mut documented: Vec<&str> = doc.fields.iter().map(|f| f.0).collect();
            sent.sort();
            documented.sort();
            assert_eq!(sent, documented, "{}", doc.event_type);
            let schema = body_schema(doc);
            let body: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
            for (name, ty, _) in doc.fields {
                let v = &body["data"][name];
                let ok = match *ty {
                    "string" => v.is_string(),
                    "integer" => v.is_u64(),
                    "boolean" => v.is_boolean(),
                    _ => false,
                };
                assert!(ok, "{}: {name} is {v}, documented {ty}", doc.event_type);
            }
            assert_eq!(schema["properties"]["eventType"]["enum"][0], doc.event_type);
        }
    }

    #[test]
    fn ids_carry_their_prefix_and_differ() {
        let (a, b) = (new_id(MESSAGE_PREFIX), new_id(MESSAGE_PREFIX));
        assert!(a.starts_with("msg_") && a.len() == 36, "{a}");
        assert_ne!(a, b);
    }
}
