//! The catalog: every piece of metadata vaultplus keeps (organizations, keys,
//! connections, media, variants, reclaim work) behind one trait. SQLite is
//! the embedded default; PostgreSQL is shared by several nodes. Every
//! backend must pass the shared conformance suite in `crates/conformance`.

pub mod derive;
pub mod generation;
pub mod paging;
pub mod postgres;
pub mod query;
pub mod query_plan;
mod revoked;
pub mod sqlite;
pub mod types;

use async_trait::async_trait;

pub use paging::{JobKey, MemberKey, Page, PageRequest, ReceiptKey};
pub use query::{MediaQuery, QueryPage, SortKey, SortValue};
pub use revoked::Revoked;
pub use types::*;

/// See [`Catalog::watch_changes`]: the value only counts ticks.
pub type ChangeWatch = tokio::sync::watch::Receiver<u64>;

use crate::model::list_plan::{ListMode, ListRun};
use crate::model::observed::ObservedMedia;
use crate::model::settings::StorageLimit;
use crate::model::{ConnectionId, Label, MediaId, OrgName, SettingsPatch, VaultPlusSettings};

pub type Result<T> = anyhow::Result<T>;

/// Prepared statements each SQL catalog connection keeps (sqlx's default
/// is 100): the catalog's own statements, plus its multi-row writes in up
/// to nine sizes each (`sql::row_chunks`), without evicting one another.
const STATEMENT_CACHE: usize = 256;

/// The whole catalog: every backend implements each part, and callers hold
/// an `Arc<dyn Catalog>`. The parts are separate traits so that each SQL
/// module implements the operations it owns, next to the statements that
/// carry them out.
#[async_trait]
pub trait Catalog:
    Accounts
    + Connections
    + MediaStore
    + RequestReads
    + UploadStore
    + ListStore
    + JobQueue
    + ReclaimQueue
    + Retention
    + Audit
    + Webhooks
    + Receipts
    + Send
    + Sync
    + 'static
{
    /// A cheap round trip proving the catalog answers (health checks).
    async fn ping(&self) -> Result<()>;

    /// Ticks when another process or node may have changed what a server
    /// keeps in memory (the signing keys): on SQLite within a fraction of a
    /// second of any other connection's commit, on PostgreSQL on a
    /// notification sent in the same transaction as the change. Servers
    /// still re-read periodically: a PostgreSQL listener that reconnects
    /// may have missed notifications (it ticks once it is back).
    async fn watch_changes(&self) -> Result<ChangeWatch>;

    /// Starts answering media look-ups (and trusting the signing keys held
    /// in memory) from memory, under a lease that every revocation waits
    /// on: called once by a server before it serves. On PostgreSQL see
    /// `docs/cluster-coherence.md`; on SQLite there is nothing to hold.
    async fn hold_lease(&self) -> Result<()>;

    /// The epoch the signing keys held in memory must have been loaded at
    /// to be trusted, or `None` when they must be confirmed by the catalog
    /// before each use (a cluster node without a live lease).
    fn keys_epoch(&self) -> Option<u64>;

    /// Each connection pool's use (metrics).
    fn pool_stats(&self) -> Vec<PoolStats>;

    /// Waits for the connections in use to come back and closes them all:
    /// the last step of a clean stop (on SQLite, closing the last
    /// connection checkpoints the write-ahead log into the database file).
    async fn close(&self);
}

/// Organizations, their API keys, and the URL signing keys.
#[async_trait]
pub trait Accounts: Send + Sync {
    // --- organizations ---------------------------------------------------
    /// Returns the organization, creating it with these settings if absent.
    /// The flag tells whether it was created by this call.
    async fn ensure_org(
        &self,
        name: &OrgName,
        defaults: &VaultPlusSettings,
        auto_enable: bool,
        now: i64,
    ) -> Result<(Org, bool)>;
    async fn org(&self, id: OrgId) -> Result<Option<Org>>;
    async fn org_by_name(&self, name: &OrgName) -> Result<Option<Org>>;
    async fn list_orgs(&self) -> Result<Vec<Org>>;
    /// Stores new org settings. When `push` is given, the fields it sets are
    /// also dropped from every connection's overrides, in the same
    /// transaction; the answer is the number of connections of the org.
    async fn update_org_settings(
        &self,
        id: OrgId,
        auto_enable: bool,
        defaults: &VaultPlusSettings,
        push: Option<&SettingsPatch>,
        now: i64,
    ) -> Result<u64>;
    /// Stores the org's rate-limit override; false when there is no such org.
    async fn set_org_rate_limit(&self, id: OrgId, limit: &OrgRateLimit) -> Result<bool>;

    // --- API keys --------------------------------------------------------
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>>;
    async fn list_api_keys(&self, org: Option<OrgId>) -> Result<Vec<ApiKeyRecord>>;
    /// Marks the key revoked; false when no such live key exists.
    async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool>;

    // --- URL signing keys ------------------------------------------------
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Inserts the key unless one with its ID exists (several nodes may race
    /// to create the first key); the answer tells whether it was inserted.
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<bool>;
    /// Drops a signing key; false when there was none with that ID.
    async fn delete_signing_key(&self, id: i64) -> Result<bool>;
    /// Replaces a key's stored secret (sealing it at rest) if it still
    /// holds `old`; false when the key is gone or holds something else.
    async fn replace_signing_secret(&self, id: i64, old: &[u8], new: &[u8]) -> Result<bool>;
}

/// Connections, their purges, and the totals the API reports.
#[async_trait]
pub trait Connections: Send + Sync {
    /// Registers a connection; false when the org already has it.
    async fn insert_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        enabled: bool,
        now: i64,
    ) -> Result<bool>;
    async fn connection(&self, org: OrgId, id: &ConnectionId) -> Result<Option<Connection>>;
    /// The connection whose current scope this is, if any.
    async fn connection_of_scope(&self, scope: ScopeId) -> Result<Option<Connection>>;
    async fn list_connections(
        &self,
        org: OrgId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Connection>>;
    /// Applies a settings change; with `purge` the connection's media is
    /// purged in the same transaction. None when the connection is unknown.
    async fn update_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        change: &ConnectionChange,
        now: i64,
    ) -> Result<Option<(Connection, Option<PurgeOutcome>)>>;
    /// Retires the connection's current scope (all its media at once) and
    /// gives it a fresh, empty one. None when the connection is unknown.
    async fn purge_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        now: i64,
    ) -> Result<Option<PurgeOutcome>>;
    /// Purges, then deletes the connection. None when it is unknown.
    async fn remove_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        now: i64,
    ) -> Result<Option<PurgeOutcome>>;
    async fn scope_totals(&self, scope: ScopeId) -> Result<ScopeTotals>;
    async fn org_totals(&self, org: OrgId) -> Result<OrgTotals>;
    /// The counters of every connection's current scope, summed (metrics).
    async fn store_totals(&self) -> Result<ScopeTotals>;
}

/// Media items and variants: reads, deletes, delivery look-ups.
#[async_trait]
pub trait MediaStore: Send + Sync {
    // --- media -------------------------------------------------------------
    /// The items among `ids` that have at least one non-removed variant,
    /// with those variants, in no particular order.
    async fn media(&self, scope: ScopeId, ids: &[MediaId]) -> Result<Vec<MediaRecord>>;
    async fn query_media(&self, scope: ScopeId, query: &MediaQuery) -> Result<QueryPage>;
    /// Deletes every variant of the item and queues their bytes.
    async fn delete_media(&self, scope: ScopeId, id: &MediaId) -> Result<DeleteOutcome>;

    // --- delivery ----------------------------------------------------------
    /// The variant (any status but `removed`), if its scope is still current.
    async fn current_variant(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
    ) -> Result<Option<VariantRecord>>;
    /// Adds batched access counts; hits on variants that are gone are dropped.
    async fn record_accesses(&self, hits: &[AccessHit]) -> Result<()>;
}

/// What one API request reads, each as one statement: its key with the
/// key's organization, then the connection (with its organization, for the
/// effective settings) and what the request asks of its current scope.
/// Each answers exactly what the composition of the separate reads
/// (`api_key`, `org`, `connection`, then `media` or `scope_totals` of its
/// scope) answers when nothing changes in between; `None` when there is no
/// such key, or the org has no such connection. The Vault+ rules (key
/// checks, enabled, settings) stay with the caller.
#[async_trait]
pub trait RequestReads: Send + Sync {
    /// The API key and its organization (for the rate limit the key is
    /// admitted under), as `api_key` then `org` answer them.
    async fn api_key_and_org(&self, id: &str) -> Result<Option<(ApiKeyRecord, Option<Org>)>>;
    /// The connection alone (with its org), as `connection` then `org`
    /// answer them: what every other connection route reads first.
    async fn connection_with_org(
        &self,
        org: OrgId,
        id: &ConnectionId,
    ) -> Result<Option<ConnectionRead<()>>>;
    /// The connection and, in its current scope, the items among `ids` as
    /// [`MediaStore::media`] answers them.
    async fn connection_media(
        &self,
        org: OrgId,
        id: &ConnectionId,
        ids: &[MediaId],
    ) -> Result<Option<ConnectionRead<Vec<MediaRecord>>>>;
    /// The connection and its current scope's counters, as
    /// [`Connections::scope_totals`] answers them.
    async fn connection_totals(
        &self,
        org: OrgId,
        id: &ConnectionId,
    ) -> Result<Option<ConnectionRead<ScopeTotals>>>;
}

/// Bytes written by clients, made stored variants in one step.
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Records that bytes are being written under `blob_key`, so that a
    /// crash mid-write leaves a blob the next start can find and delete.
    async fn begin_upload(&self, scope: ScopeId, blob_key: &str, now: i64) -> Result<()>;
    /// Makes a fully written blob the stored variant, atomically, provided
    /// the scope is still the connection's current one.
    async fn commit_upload(&self, upload: &NewStoredVariant) -> Result<CommitOutcome>;
    /// Gives up an upload: its blob goes to the reclaim queue (a second
    /// abort of the same key, while it is queued, adds nothing).
    async fn abort_upload(&self, blob_key: &str, now: i64) -> Result<()>;
    /// Moves upload intents begun before `started_before` to the reclaim
    /// queue (their writer is gone). Returns how many. On a shared catalog,
    /// uploads running on other nodes have intents too: `started_before`
    /// must be older than any of them.
    async fn requeue_upload_intents(&self, started_before: i64) -> Result<u64>;
}

/// Upstream vault lists: add, sync and their members.
#[async_trait]
pub trait ListStore: Send + Sync {
    /// Applies a list add or sync (rules: `model::list_plan`) in one
    /// transaction. None when the scope is no longer current.
    async fn apply_list(
        &self,
        scope: ScopeId,
        list_id: &str,
        mode: ListMode,
        items: &[ObservedMedia],
        now: i64,
    ) -> Result<Option<ListOutcome>>;
    /// The same, a page at a time: begins a run (the list's next sync
    /// generation), applies each page in its own transaction (the listed
    /// items' part of the plan, marking them seen by the run), then
    /// finishes it (a sync removes the baseline members it did not mark,
    /// and records its baseline). Each is None when the scope is no longer
    /// current.
    async fn begin_list_run(
        &self,
        scope: ScopeId,
        list_id: &str,
        mode: ListMode,
        now: i64,
    ) -> Result<Option<ListRun>>;
    async fn apply_list_page(
        &self,
        scope: ScopeId,
        list_id: &str,
        run: &ListRun,
        items: &[ObservedMedia],
        now: i64,
    ) -> Result<Option<ListOutcome>>;
    /// `pages` is what the run's pages did (with `seen` as the answer
    /// counts it): a sync's `vault_plus.list.synced` event, written here,
    /// reports it with the finish's own removals added.
    async fn finish_list_run(
        &self,
        scope: ScopeId,
        list_id: &str,
        run: &ListRun,
        pages: &ListOutcome,
        now: i64,
    ) -> Result<Option<ListOutcome>>;
    /// Stores fresh upstream URLs of known variants (after a new listing).
    async fn refresh_upstream_urls(&self, scope: ScopeId, items: &[ObservedMedia]) -> Result<()>;
    async fn lists(&self, scope: ScopeId) -> Result<Vec<ListSummary>>;
    /// One page of the list's members, oldest membership first, each with
    /// its media (if any remains). Reads at most `page.limit + 1` members.
    async fn list_members(
        &self,
        scope: ScopeId,
        list_id: &str,
        page: &PageRequest<MemberKey>,
    ) -> Result<Page<ListMember, MemberKey>>;
}

/// The durable storing queue: one job per variant, leased to a worker.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Queues storing of a known variant (single flight: one job per
    /// variant).
    async fn queue_variant(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
        now: i64,
    ) -> Result<QueueOutcome>;
    /// Leases up to `limit` due jobs of current scopes to `owner` until
    /// `lease_until`, marking their variants `storing`, and records each
    /// job's [`Job::blob_key`] as an upload intent, in the same transaction:
    /// a worker may write there at once.
    async fn claim_jobs(
        &self,
        owner: &str,
        limit: u64,
        lease_until: i64,
        now: i64,
    ) -> Result<Vec<Job>>;
    /// Extends a lease still held by `owner`; false when it was lost.
    async fn extend_lease(&self, job_id: i64, owner: &str, lease_until: i64) -> Result<bool>;
    /// The storing pipeline's group commit, one transaction: makes each
    /// finished fetch the stored variant and ends its job, provided its
    /// scope is current and its owner still holds the job. Each fetch
    /// commits or fails alone (a savepoint each): one answer per `done`, in
    /// order. The outer error is the transaction's: nothing was written.
    async fn commit_jobs(&self, done: &[JobDone], now: i64) -> Result<Vec<Result<CommitOutcome>>>;
    /// [`JobQueue::commit_jobs`] of one finished fetch.
    async fn complete_job(
        &self,
        job: &Job,
        owner: &str,
        blob: &FetchedBlob,
        limit: Option<StorageLimit>,
        now: i64,
    ) -> Result<CommitOutcome> {
        let done = JobDone {
            job: job.clone(),
            owner: owner.to_owned(),
            blob: blob.clone(),
            limit,
        };
        let mut out = self.commit_jobs(&[done], now).await?;
        out.pop().expect("one answer per finished fetch")
    }
    /// Gives the job back to run again at `run_after` (the variant returns
    /// to `pending` with `error`); `count_attempt` spends one of its tries.
    async fn retry_job(
        &self,
        job_id: i64,
        owner: &str,
        error: &str,
        run_after: i64,
        count_attempt: bool,
    ) -> Result<()>;
    /// Ends the job as failed for good: the variant stays, `edge_only`,
    /// with `error`, and the job stays listed as failed.
    async fn fail_job(&self, job_id: i64, owner: &str, error: &str, now: i64) -> Result<()>;
    /// One page of the scope's jobs (`failed_only`: those given up), oldest
    /// first. Reads at most `page.limit + 1` jobs.
    async fn jobs(
        &self,
        scope: ScopeId,
        failed_only: bool,
        page: &PageRequest<JobKey>,
    ) -> Result<Page<JobRecord, JobKey>>;
    /// Ends every lease at once (an embedded catalog has a single server,
    /// so at its start no other worker can hold one). Returns how many.
    /// A shared catalog (PostgreSQL) ends none and answers 0: other nodes'
    /// workers may hold live leases, and a dead node's leases lapse.
    async fn release_all_leases(&self) -> Result<u64>;
    /// When the next job becomes due, if any is waiting.
    async fn next_job_due(&self) -> Result<Option<i64>>;
    /// The queue's jobs by state at `now` (metrics). Reads every job row:
    /// the queue holds only unfinished and failed jobs (a stored one's job
    /// is deleted).
    async fn job_counts(&self, now: i64) -> Result<JobCounts>;
}

/// Retired scopes and blob deletions waiting for the reclaimer.
#[async_trait]
pub trait ReclaimQueue: Send + Sync {
    /// Moves up to `limit` variants of one retired scope into the blob
    /// reclaim queue and deletes their records; drops the scope once empty.
    /// Returns the number of records handled (0: nothing retired is left).
    async fn drain_retired_scope(&self, limit: u64) -> Result<u64>;
    /// Up to `limit` blob keys queued for deletion, oldest first. A catalog
    /// shared by several nodes claims them for a while, so that other
    /// callers get other keys (an unforgotten claim runs out and the keys
    /// come back).
    async fn queued_blob_deletions(&self, limit: u64) -> Result<Vec<String>>;
    async fn forget_blob_deletions(&self, keys: &[String]) -> Result<()>;
    /// Puts deletions that failed behind the rest of the queue, out of
    /// reach for `delay_ms`: a blob that cannot be deleted must not hold
    /// back the ones queued after it.
    async fn postpone_blob_deletions(&self, keys: &[String], delay_ms: i64) -> Result<()>;
    async fn reclaim_backlog(&self) -> Result<ReclaimBacklog>;
    /// Every blob key the catalog accounts for (variants, reclaim queue,
    /// upload intents). Used by consistency checks.
    async fn referenced_blob_keys(&self) -> Result<Vec<String>>;
}

/// Evictions by age, by access and by storage limit.
#[async_trait]
pub trait Retention: Send + Sync {
    /// Evicts up to `limit` stored variants of the scope stored before
    /// `stored_before` or last accessed before `accessed_before`. Returns
    /// (variants evicted, bytes freed); (0, 0) once none is left.
    async fn evict_expired(
        &self,
        scope: ScopeId,
        stored_before: Option<i64>,
        accessed_before: Option<i64>,
        limit: u64,
        now: i64,
    ) -> Result<(u64, u64)>;
    /// Evicts by the limit's strategy until the scope fits its storage
    /// limit. Returns (variants evicted, bytes freed).
    async fn enforce_storage_limit(
        &self,
        scope: ScopeId,
        limit: StorageLimit,
        now: i64,
    ) -> Result<(u64, u64)>;
}

/// Consistency checks and repairs (fsck).
#[async_trait]
pub trait Audit: Send + Sync {
    /// Counters and recomputed totals of every current scope.
    async fn audit_scopes(&self) -> Result<Vec<ScopeAudit>>;
    /// Recomputes a scope's counters from its records, in one transaction.
    /// Returns (before, after).
    async fn repair_scope_totals(&self, scope: ScopeId) -> Result<(ScopeTotals, ScopeTotals)>;
    /// Stored variants of current scopes in blob-key order, after `after`.
    async fn stored_blobs(&self, after: Option<&str>, limit: u64) -> Result<Vec<StoredBlob>>;
    /// Evicts one stored variant: bytes queued for reclaim, record kept as
    /// `removed`. Returns the bytes it held.
    async fn evict_variant(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
        now: i64,
    ) -> Result<u64>;
}

/// Webhook endpoints and the outbox of their deliveries. Events are
/// written by the operations whose change they report, in the same
/// transaction (`sql/outbox.rs`); these are the endpoints' management and
/// the delivering node's claims.
#[async_trait]
pub trait Webhooks: Send + Sync {
    async fn insert_webhook_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()>;
    /// The org's endpoints, oldest first.
    async fn webhook_endpoints(&self, org: OrgId) -> Result<Vec<WebhookEndpoint>>;
    /// Deletes an endpoint of the org with its pending deliveries; false
    /// when the org has no such endpoint.
    async fn delete_webhook_endpoint(&self, org: OrgId, id: &str) -> Result<bool>;
    /// Makes `secret` the endpoint's secret; the one it replaces keeps
    /// signing until `previous_until`. Unless a secret replaced before
    /// still signs at `now`: then nothing changes (one secret in rotation
    /// at a time, so none stops signing before the time it was promised).
    /// The endpoint as stored after (its `secret` is `secret` if it was
    /// rotated); None when the org has no such endpoint.
    async fn rotate_webhook_secret(
        &self,
        org: OrgId,
        id: &str,
        secret: &[u8],
        now: i64,
        previous_until: i64,
    ) -> Result<Option<WebhookEndpoint>>;
    /// Leases up to `limit` due deliveries to `owner` until `lease_until`;
    /// an expired lease is taken over (on PostgreSQL, rows another node is
    /// claiming are skipped).
    async fn claim_webhook_deliveries(
        &self,
        owner: &str,
        limit: u64,
        lease_until: i64,
        now: i64,
    ) -> Result<Vec<WebhookDelivery>>;
    /// Records how an attempt of `owner`'s ended (nothing when its lease
    /// was taken over meanwhile).
    async fn end_webhook_delivery(
        &self,
        id: i64,
        owner: &str,
        end: &DeliveryEnd,
        now: i64,
    ) -> Result<()>;
    /// When the next delivery of an enabled endpoint is due, if any is
    /// pending: a leased one counts from when its lease runs out, so a
    /// node that died holding it does not hide it.
    async fn next_webhook_due(&self) -> Result<Option<i64>>;
    /// Ends every delivery lease (on an embedded catalog, whose only server
    /// is starting: they belong to a process that is gone); on a shared
    /// catalog none (a dead node's leases lapse by themselves).
    async fn release_webhook_leases(&self) -> Result<u64>;
}

/// Erasure receipts. A receipt is written by the operation it covers, in
/// its transaction (`sql/receipts.rs`); the lines of its digest are written
/// as its variants' records are deleted, and its blobs are tagged on the
/// reclaim queue. These are the reads and the last step.
#[async_trait]
pub trait Receipts: Send + Sync {
    /// The org's receipt, if it has one with that ID (another org's is
    /// none of its business: None).
    async fn receipt(&self, org: OrgId, id: &ReceiptId) -> Result<Option<ReceiptRecord>>;
    /// One page of the org's receipts for a connection (whether or not it
    /// still exists), newest first. Reads at most `page.limit + 1`.
    async fn connection_receipts(
        &self,
        org: OrgId,
        connection_id: &str,
        page: &PageRequest<ReceiptKey>,
    ) -> Result<Page<ReceiptRecord, ReceiptKey>>;
    /// Up to `limit` receipts not yet `bytes_gone` whose every blob is
    /// deleted (no queued deletion of theirs is left, and their retired
    /// scope, if any, is drained), oldest first.
    async fn receipts_done(&self, limit: u64) -> Result<Vec<ReceiptId>>;
    /// Up to `limit` of the receipt's digest lines after `after`, in
    /// bytewise order.
    async fn receipt_lines(
        &self,
        id: &ReceiptId,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<String>>;
    /// Marks a receipt `bytes_gone` with its digest; false when it was
    /// already (another node finished it first).
    async fn finish_receipt(&self, id: &ReceiptId, digest: &str, now: i64) -> Result<bool>;
    /// Deletes up to `limit` lines of a finished receipt (no longer needed
    /// once its digest is kept); false when no finished receipt has lines
    /// left, so there was nothing to do.
    async fn prune_receipt_lines(&self, limit: u64) -> Result<bool>;
    /// The receipt signing keys, by slot.
    async fn receipt_keys(&self) -> Result<Vec<ReceiptKeyRecord>>;
    /// Inserts the key unless one with its ID or its slot exists (nodes
    /// racing to make the first key: one wins); true when inserted.
    async fn insert_receipt_key(&self, key: &ReceiptKeyRecord) -> Result<bool>;
}
