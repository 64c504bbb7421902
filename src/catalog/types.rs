//! Records the catalog stores and returns.

use crate::model::list_plan::ListCounts;
use crate::model::observed::Origin;
use crate::model::settings::StorageLimit;
use crate::model::{KeyScope, MediaId, MediaType, SettingsPatch, VariantStatus, VaultPlusSettings};

pub type OrgId = i64;
/// A scope holds one generation of a connection's media. Purging retires the
/// scope and gives the connection a fresh one, which is what makes a purge
/// one small transaction whatever the number of variants.
pub type ScopeId = i64;

#[derive(Clone, Debug, PartialEq)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub auto_enable: bool,
    pub default_settings: VaultPlusSettings,
    /// The org's own rate limit for its API keys (unset fields take the
    /// server's).
    pub rate_limit: OrgRateLimit,
    pub created_at: i64,
}

/// An organization's rate-limit override; `None` takes the server's value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrgRateLimit {
    pub per_minute: Option<u32>,
    pub burst: Option<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyRecord {
    /// Public part of the key, used to find the record.
    pub id: String,
    pub org_id: OrgId,
    /// SHA-256 of the secret part; the secret itself is never stored.
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<KeyScope>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct SigningKeyRecord {
    pub id: i64,
    pub secret: Vec<u8>,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    pub org_id: OrgId,
    pub id: String,
    pub enabled: bool,
    pub overrides: Option<SettingsPatch>,
    pub scope_id: ScopeId,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A settings change on a connection.
#[derive(Clone, Debug, Default)]
pub struct ConnectionChange {
    pub enabled: Option<bool>,
    /// `Some(Some(patch))` merges the patch into the connection's overrides
    /// (inside the transaction, so concurrent changes both land);
    /// `Some(None)` resets the overrides to the org defaults.
    pub overrides: Option<Option<SettingsPatch>>,
    /// Purge the connection's media in the same transaction.
    pub purge: bool,
}

/// A connection with its organization, read in the same statement as what
/// a request asks of the connection's current scope (`found`): one round
/// trip, and `found` belongs to the scope `connection` names at that
/// instant. `org` is `None` only if the organization row is gone.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionRead<T> {
    pub connection: Connection,
    pub org: Option<Org>,
    pub found: T,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopeTotals {
    /// Variants whose status is not `removed`.
    pub live_count: u64,
    pub stored_count: u64,
    pub stored_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrgTotals {
    pub connections: u64,
    pub enabled_connections: u64,
    pub live_count: u64,
    pub stored_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    pub purged_count: u64,
    pub freed_bytes: u64,
    /// The erasure receipt written with the purge (none when the scope was
    /// already retired: nothing was purged by this call).
    pub receipt: Option<ReceiptId>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Variant records deleted (removed tombstones not counted).
    pub removed_count: u64,
    pub freed_bytes: u64,
    /// The erasure receipt written with the delete (none when there was
    /// nothing to delete).
    pub receipt: Option<ReceiptId>,
}

/// An erasure receipt's ID, `rcpt_` and 32 lowercase hex digits (a random
/// UUID: receipts are named in answers and must not be guessable in
/// sequence). `Copy`, so that the outcomes carrying one stay plain values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReceiptId(uuid::Uuid);

impl ReceiptId {
    pub const PREFIX: &'static str = "rcpt_";

    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// Only the form [`ReceiptId`]'s `Display` writes.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix(Self::PREFIX)?;
        let valid = hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return None;
        }
        uuid::Uuid::try_parse(hex).ok().map(Self)
    }
}

impl std::fmt::Display for ReceiptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0.simple())
    }
}

/// What an erasure receipt covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptKind {
    Purge,
    ConnectionRemoval,
    Delete,
    /// By retention, access expiry or a storage limit.
    Eviction,
}

impl ReceiptKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purge => "purge",
            Self::ConnectionRemoval => "connection_removal",
            Self::Delete => "delete",
            Self::Eviction => "eviction",
        }
    }
}

/// A receipt as the catalog keeps it; signing is the service's
/// (`service/receipts.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptRecord {
    pub id: String,
    pub org_id: OrgId,
    pub kind: String,
    pub connection_id: String,
    pub requested_at: i64,
    pub purged_count: u64,
    pub freed_bytes: u64,
    /// Set once every blob the receipt names is deleted from the blob
    /// store; then `digest` is set too.
    pub bytes_gone_at: Option<i64>,
    pub digest: Option<String>,
}

/// A receipt signing key: `secret` is the Ed25519 seed as stored (sealed
/// under the master key when there is one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptKeyRecord {
    pub id: String,
    /// The first key is slot 1 (see `migrations/*/..._receipts.sql`).
    pub slot: i64,
    pub secret: Vec<u8>,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VariantRecord {
    pub label: String,
    pub status: VariantStatus,
    pub size_bytes: u64,
    pub content_type: String,
    pub access_count: u64,
    pub created_at: i64,
    pub stored_at: Option<i64>,
    pub last_accessed_at: i64,
    pub blob_key: Option<String>,
    /// Hex SHA-256 of the stored bytes.
    pub checksum: Option<String>,
    pub origin: Origin,
    /// Short-lived upstream URL, for variants fetched from the upstream.
    pub upstream_url: Option<String>,
    /// Size the upstream announced.
    pub upstream_size: Option<u64>,
    /// Why the last attempt to store it failed, if it did.
    pub last_error: Option<String>,
    /// What media URLs are bound to (rules: `catalog::generation`).
    pub generation: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MediaRecord {
    pub media_id: String,
    pub media_type: MediaType,
    pub duration: Option<f64>,
    pub created_at: i64,
    /// Latest `stored_at` among its stored variants.
    pub cached_at: Option<i64>,
    /// A vault list that holds the item (to list again for fresh URLs).
    pub list_hint: Option<String>,
    pub variants: Vec<VariantRecord>,
}

/// A fully written, checksummed blob ready to become a stored variant.
#[derive(Clone, Debug)]
pub struct NewStoredVariant {
    pub scope_id: ScopeId,
    pub media_id: MediaId,
    pub label: String,
    pub content_type: String,
    pub size_bytes: u64,
    pub checksum: String,
    pub blob_key: String,
    pub duration: Option<f64>,
    pub now: i64,
    /// The connection's storage limit, enforced in the same transaction.
    pub limit: Option<StorageLimit>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CommitOutcome {
    Created(VariantRecord),
    /// An earlier variant with the same label was replaced; its bytes were
    /// queued for reclaim.
    Replaced(VariantRecord),
    /// The connection was purged (or removed) while the bytes were written;
    /// nothing was stored and the blob was queued for reclaim.
    ScopeRetired,
    /// Storing it would break the connection's storage limit (`block_new`,
    /// or larger than the limit itself); nothing was stored.
    OverLimit,
    /// The job is no longer this worker's (its lease passed to another, or
    /// the variant was deleted); the blob was queued for reclaim.
    Superseded,
}

#[derive(Clone, Debug)]
pub struct AccessHit {
    pub scope_id: ScopeId,
    pub media_id: String,
    pub label: String,
    pub count: u64,
    pub last_at: i64,
}

/// One database connection pool's use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// `reader` or `writer` on SQLite; `shared` on PostgreSQL.
    pub pool: &'static str,
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

impl PoolStats {
    pub fn of<DB: sqlx::Database>(pool: &'static str, p: &sqlx::Pool<DB>) -> Self {
        let idle = p.num_idle() as u32;
        Self {
            pool,
            in_use: p.size().saturating_sub(idle),
            idle,
            max: p.options().get_max_connections(),
        }
    }
}

/// Storing jobs by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct JobCounts {
    /// Due, or backing off before their next try.
    pub waiting: i64,
    /// Leased to a worker whose lease has not run out.
    pub running: i64,
    /// Given up after the retry budget.
    pub failed: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReclaimBacklog {
    pub retired_scopes: u64,
    /// Live variants of retired scopes not yet drained: a purge's
    /// `purgedCount` until the reclaimer starts on it.
    pub retired_variants: u64,
    /// Their stored bytes (a purge's `freedBytes`); a queued blob's size is
    /// not kept.
    pub retired_bytes: u64,
    pub queued_blobs: u64,
    /// Erasure receipts not yet `bytes_gone`.
    pub unfinished_receipts: u64,
}

/// What a list add or sync did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListOutcome {
    pub counts: ListCounts,
    /// Storing jobs created.
    pub queued: u64,
}

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct ListSummary {
    pub list_id: String,
    #[sqlx(try_from = "i64")]
    pub media_count: u64,
    #[sqlx(try_from = "i64")]
    pub stored_count: u64,
    #[sqlx(try_from = "i64")]
    pub total_size_bytes: u64,
    pub has_baseline: bool,
    pub first_added_at: i64,
    pub last_added_at: i64,
    pub last_synced_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct ListMember {
    pub media_id: String,
    pub first_added_at: i64,
    pub last_added_at: i64,
    pub last_seen_at: i64,
    pub last_synced_at: Option<i64>,
    /// The item with all its variants (removed ones too), if any remain.
    #[sqlx(skip)]
    pub media: Option<MediaRecord>,
}

/// A storing job, claimed by a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: i64,
    pub scope_id: ScopeId,
    pub org_id: OrgId,
    pub connection_id: String,
    pub media_id: String,
    pub label: String,
    /// Failed attempts so far.
    pub attempts: u32,
    pub origin: Origin,
    pub upstream_url: Option<String>,
    pub upstream_size: Option<u64>,
    pub content_type: String,
    pub list_hint: Option<String>,
    /// Where this attempt writes its bytes: the claim recorded it as an
    /// upload intent, so bytes written there are never unaccounted for.
    pub blob_key: String,
}

/// A fresh blob key in `scope` ("<scope>/<uuid>"): never reused, so a URL
/// or an intent naming one always means the same bytes.
pub fn new_blob_key(scope: ScopeId) -> String {
    format!("{scope}/{}", uuid::Uuid::new_v4().simple())
}

/// Bytes a worker wrote for a job.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchedBlob {
    pub blob_key: String,
    pub content_type: String,
    pub size_bytes: u64,
    pub checksum: String,
}

/// A finished fetch, for [`JobQueue::commit_jobs`].
#[derive(Clone, Debug)]
pub struct JobDone {
    pub job: Job,
    /// The claim that must still hold the job.
    pub owner: String,
    pub blob: FetchedBlob,
    pub limit: Option<StorageLimit>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueOutcome {
    /// Already stored: nothing to do.
    Stored,
    /// Queued now, or already queued.
    Queued,
    /// No such variant in the connection's current media.
    Unknown,
}

/// A job as listed for operators.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct JobRecord {
    /// Its place in the queue (jobs page in ID order).
    pub id: i64,
    pub media_id: String,
    pub label: String,
    #[sqlx(try_from = "i64")]
    pub attempts: u32,
    pub run_after: i64,
    pub leased: bool,
    pub failed_at: Option<i64>,
    pub last_error: Option<String>,
}

/// A scope's counters beside the totals recomputed from its records.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeAudit {
    pub scope_id: ScopeId,
    pub org_id: OrgId,
    pub connection_id: String,
    pub counters: ScopeTotals,
    pub actual: ScopeTotals,
}

/// A stored variant and the blob that holds it.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct StoredBlob {
    pub scope_id: ScopeId,
    pub media_id: String,
    pub label: String,
    pub blob_key: String,
    #[sqlx(try_from = "i64")]
    pub size_bytes: u64,
}

/// A webhook endpoint of an organization. Secrets are as stored: sealed
/// under the master key when there is one (`service::secret_box`).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub org_id: OrgId,
    pub url: String,
    pub description: Option<String>,
    /// The event types it receives, in the order given.
    pub events: Vec<String>,
    pub secret: Vec<u8>,
    /// The secret before the last rotation, still signing until
    /// `previous_until`.
    pub previous_secret: Option<Vec<u8>>,
    pub previous_until: Option<i64>,
    pub created_at: i64,
    /// Set when its deliveries failed for the whole retry window.
    pub disabled_at: Option<i64>,
    pub disabled_reason: Option<String>,
}

/// One event's delivery to one endpoint, leased to a delivering node.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct WebhookDelivery {
    pub id: i64,
    /// The `svix-id`: the same on every attempt.
    pub msg_id: String,
    pub endpoint_id: String,
    pub url: String,
    /// The body, byte for byte as signed.
    pub payload: String,
    /// When the event was written (the retry window counts from it).
    pub created_at: i64,
    /// Failed attempts so far.
    pub attempts: i64,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_until: Option<i64>,
}

/// How an attempt to deliver ended.
#[derive(Clone, Debug, PartialEq)]
pub enum DeliveryEnd {
    /// The endpoint answered 2xx: the delivery is done.
    Delivered,
    /// Try again at `next_attempt_at`.
    Retry { next_attempt_at: i64, error: String },
    /// The retry window is over: the endpoint is disabled, and its other
    /// pending deliveries are dropped with it.
    GiveUp { error: String },
}
