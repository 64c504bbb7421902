//! The JSON bodies of the Vault+ API, field for field as the reference
//! gives them. Services build these; the HTTP layer only serializes them.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

use super::schema;
use super::{MediaType, SettingsPatch, VariantStatus, VaultPlusSettings};

/// One stored rendition of a media item. Exactly the ten fields of the
/// reference, in its order.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantView {
    pub status: VariantStatus,
    /// Public variant label; equals the key in the `media` map.
    pub quality: String,
    pub size_bytes: u64,
    pub content_type: String,
    pub access_count: u64,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds at which the variant is due for eviction.
    pub expires_at: i64,
    /// Epoch milliseconds; null until the variant is stored.
    pub stored_at: Option<i64>,
    pub last_accessed_at: i64,
    /// Signed URL serving the bytes; needs no API key.
    pub url: String,
}

/// A media item with its variants keyed by label.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct MediaItemView {
    /// Raw upstream media ID.
    pub id: String,
    #[serde(rename = "type")]
    pub media_type: MediaType,
    /// Seconds for video/audio, null for images.
    pub duration: Option<f64>,
    pub media: BTreeMap<String, VariantView>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaPage {
    pub items: Vec<MediaItemView>,
    /// Present only when more results exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MediaItems {
    pub items: Vec<MediaItemView>,
}

/// Connection purge response. Its OpenAPI schema is the seed contract's
/// (docs/reference/000_ab7af7969c1ee0d9.txt), verbatim (see `http::openapi`), so it is written by
/// hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeResponse {
    /// Whether the purge request completed.
    pub success: bool,
    /// Number of internal cached variants removed for this connection.
    pub purged_count: u64,
    /// Total bytes freed by the purge.
    pub freed_bytes: u64,
}

/// What a purge removed (inside settings answers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurgeResult {
    pub purged_count: u64,
    pub freed_bytes: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteMediaResponse {
    /// True if at least one cached variant was removed.
    pub success: bool,
    pub media_id: String,
    pub freed_bytes: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatusView {
    pub connection_id: String,
    pub stored_count: u64,
    pub pending_count: u64,
    pub total_size_bytes: u64,
    /// List adds and syncs in flight on this server, oldest first; absent
    /// when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub syncs: Vec<ListRunView>,
}

/// A list add or sync in flight: the upstream listing is read, planned and
/// committed a page at a time, and storing starts with the first page.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListRunView {
    pub list_id: String,
    /// `add` or `sync`.
    pub mode: String,
    pub started_at: String,
    /// Pages of the upstream listing planned and committed so far.
    pub pages_planned: u64,
    /// Items of those pages (what the answer's `seen` counts).
    pub items_planned: u64,
    /// Storing jobs those pages queued.
    pub jobs_queued: u64,
}

/// The older SDK's status body, which also carries `totalMedia`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyConnectionStatusView {
    pub connection_id: String,
    pub total_media: u64,
    pub stored_count: u64,
    pub pending_count: u64,
    pub total_size_bytes: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgStatsView {
    pub total_connections: u64,
    pub connections_with_vault_plus: u64,
    pub total_storage_bytes: u64,
    pub total_media_count: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatsView {
    pub vault_plus_enabled: bool,
    pub total_storage_bytes: u64,
    pub storage_limit_bytes: u64,
    pub media_count: u64,
    pub stored_count: u64,
    pub storage_usage_percent: f64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionVaultPlusView {
    pub enabled: bool,
    pub settings_overrides: Option<SettingsPatch>,
    pub stats: ConnectionStatsView,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSettingsView {
    pub connection_id: String,
    pub vault_plus: ConnectionVaultPlusView,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSettingsPatchResponse {
    pub settings: ConnectionSettingsView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_result: Option<PurgeResult>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgVaultPlusView {
    pub auto_enable_for_new_connections: bool,
    pub default_settings: VaultPlusSettings,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgSettingsView {
    pub vault_plus: OrgVaultPlusView,
    /// This org's requests a minute per API key; absent: the server's
    /// `--rate-limit-per-minute` (the OFAuth shape has no such field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    /// This org's burst per API key; absent: the server's
    /// `--rate-limit-burst`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_burst: Option<u32>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPurgeResult {
    pub connection_id: String,
    pub purged_count: u64,
    pub freed_bytes: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BroadcastResult {
    pub affected_connections: u64,
    pub purge_results: Vec<ConnectionPurgeResult>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgSettingsPatchResponse {
    pub settings: OrgSettingsView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcast_result: Option<BroadcastResult>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionVaultPlusFlag {
    pub enabled: bool,
}

/// The states a connection can be in upstream (the `status` filter of
/// `GET /v2/account/connections`).
pub const CONNECTION_STATUSES: [&str; 3] = ["active", "expired", "awaiting_2fa"];

fn connection_status_schema() -> RefOr<Schema> {
    schema::schema(schema::one_of(&CONNECTION_STATUSES))
}

/// A connection as `GET /v2/account/connections` lists it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub id: String,
    /// Always `active`: vaultplus holds no upstream session state.
    #[schema(schema_with = connection_status_schema)]
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub imported: bool,
    pub permissions: Vec<String>,
    pub vault_plus: ConnectionVaultPlusFlag,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionListView {
    pub list: Vec<ConnectionView>,
    pub has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteConnectionResponse {
    pub success: bool,
    pub connection_id: String,
    pub purge_result: PurgeResult,
}

/// `POST /v2/vault-plus/lists/{listId}/add`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListAddResponse {
    pub added: bool,
    pub list_id: String,
    pub seen: u64,
    pub added_items: u64,
    pub adopted_items: u64,
    pub unchanged_items: u64,
}

/// `PUT /v2/vault-plus/lists/{listId}/sync`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListSyncResponse {
    pub synced: bool,
    pub list_id: String,
    pub seen: u64,
    pub added_items: u64,
    pub updated_items: u64,
    pub removed_items: u64,
    pub unchanged_items: u64,
    pub adopted_items: u64,
}

/// `POST /v2/vault-plus/store/list/{listId}` (older SDK path).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyStoreListResponse {
    pub queued: bool,
    pub list_id: String,
    pub estimated_items: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListSummaryView {
    pub list_id: String,
    pub media_count: u64,
    pub stored_count: u64,
    pub total_size_bytes: u64,
    pub has_baseline: bool,
    pub first_added_at: String,
    pub last_added_at: String,
    pub last_synced_at: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ListsView {
    pub items: Vec<ListSummaryView>,
}

/// One member of a cached list.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListMediaItemView {
    pub media_id: String,
    pub of_media_id: String,
    /// Best status among its variants (stored > storing > pending >
    /// edge_only > removed); `removed` when nothing of it is held.
    pub status: VariantStatus,
    /// Null when nothing of the item is held any more.
    #[serde(rename = "type")]
    pub media_type: Option<MediaType>,
    pub duration: Option<f64>,
    pub first_added_at: String,
    pub last_added_at: String,
    pub last_seen_at: String,
    pub last_synced_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<BTreeMap<String, VariantView>>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListMediaView {
    pub items: Vec<ListMediaItemView>,
    /// Present only when more members follow: pass it as `cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The `state` of a job in the jobs route's answer.
pub const JOB_STATES: [&str; 3] = ["queued", "running", "failed"];

fn job_state_schema() -> RefOr<Schema> {
    schema::schema(schema::one_of(&JOB_STATES))
}

/// A storing job (vaultplus extension: where failures stay visible).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub media_id: String,
    pub label: String,
    /// `queued`, `running` or `failed`.
    #[schema(schema_with = job_state_schema)]
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobsView {
    pub items: Vec<JobView>,
    /// Present only when more jobs follow: pass it as `cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Answer to `POST` on a media URL.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct QueueResponse {
    pub queued: bool,
    pub status: VariantStatus,
}
