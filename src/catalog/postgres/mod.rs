//! The shared catalog: PostgreSQL, for several vaultplus nodes on one
//! database.
//!
//! Every node runs the same transactions; PostgreSQL is the only place
//! where nodes meet. Writes run at READ COMMITTED and take row locks in one
//! fixed order (see `locks.rs` for the order and why), which keeps counts,
//! purge answers and per-scope counters exact when nodes race on one
//! connection. Nothing is cached in the process but the URL signing keys: a
//! purge, delete or key revocation committed by one node is seen by the
//! next query on every node, and a signing-key change is notified to every
//! node (`notify.rs`).

mod accounts;
mod audit;
mod eviction;
mod jobs;
mod lists;
mod locks;
mod media;
mod notify;
mod reclaim;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection as _, PgPool};

use super::*;
use crate::model::list_plan::ListMode;
use crate::model::observed::ObservedMedia;
use crate::model::settings::StorageLimit;
use crate::model::time::now_ms;

/// Advisory lock key held while migrations run ("vaultplu" in ASCII).
/// Advisory locks are per database, so clusters hosting several vaultplus
/// databases do not block each other.
pub const MIGRATION_LOCK: i64 = 0x7661_756c_7470_6c75;

/// Times a transaction is run again after PostgreSQL aborted it as a
/// deadlock victim or serialization failure. The lock order should make
/// both impossible; this is the safety net, not the mechanism.
const RETRIES: u32 = 5;

/// Runs `$body` (an async call taking `&mut $tx`) in a transaction,
/// commits, and runs it again from scratch if PostgreSQL asks for a retry.
/// A macro rather than a function taking a closure: the body borrows both
/// the transaction and the caller's arguments, which a closure returning a
/// boxed future cannot express for every transaction lifetime.
macro_rules! in_tx {
    ($self:ident, $tx:ident => $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            let mut $tx = $self.pool.begin().await?;
            let result: Result<_> = match $body.await {
                Ok(value) => $tx
                    .commit()
                    .await
                    .map(|()| value)
                    .map_err(anyhow::Error::from),
                // Dropping the transaction rolls it back.
                Err(e) => Err(e),
            };
            match result {
                Err(e) if attempt < RETRIES && locks::is_retryable(&e) => {
                    attempt += 1;
                    let pause = rand::random_range(1..=10u64) * u64::from(attempt);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                other => break other,
            }
        }
    }};
}

pub struct PostgresCatalog {
    pool: PgPool,
}

impl PostgresCatalog {
    /// Connects to the database at `url` (`postgres://user:pass@host/db`)
    /// and applies pending migrations first. Several nodes may start
    /// together: migrations run under an advisory lock (see `migrate`).
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .context("the catalog URL is not a valid PostgreSQL URL")?;
        migrate(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .context("cannot connect to the PostgreSQL catalog")?;
        Ok(Self { pool })
    }
}

/// Applies migrations on a connection of its own, under an advisory lock.
///
/// sqlx's PostgreSQL migrator already takes `pg_advisory_lock` (keyed on
/// the database name) before it even creates `_sqlx_migrations`, so nodes
/// racing here would be serialized by it alone. We take our own lock
/// anyway, because: the behaviour is then ours and explicit rather than a
/// default of a dependency (`Migrator::locking` can be switched off), and
/// sqlx leaves its lock held if a migration fails (it returns before
/// unlocking) — on a pooled connection that lock would outlive the attempt.
/// Closing this dedicated connection ends the session, which releases
/// every advisory lock whatever happened. Advisory locks are reentrant
/// within a session, so sqlx's own lock on the same connection just nests.
async fn migrate(options: &PgConnectOptions) -> Result<()> {
    let mut conn = options
        .connect()
        .await
        .context("cannot connect to the PostgreSQL catalog")?;
    let result: Result<()> = async {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut conn)
            .await?;
        // `run_direct` rather than `run`: `run` goes through `Acquire`, whose
        // lifetimes make the future not `Send` (sqlx documents this as the
        // way around it), and this runs inside spawned tasks.
        sqlx::migrate!("./migrations/postgres")
            .run_direct(None, &mut conn, false)
            .await
            .context("cannot apply catalog migrations")?;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut conn)
            .await?;
        Ok(())
    }
    .await;
    // Ends the session: releases the lock even when a step above failed.
    let _ = conn.close().await;
    result
}

#[async_trait]
impl Catalog for PostgresCatalog {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn watch_changes(&self) -> Result<ChangeWatch> {
        notify::watch(&self.pool).await
    }

    async fn ensure_org(
        &self,
        name: &OrgName,
        defaults: &VaultPlusSettings,
        auto_enable: bool,
        now: i64,
    ) -> Result<(Org, bool)> {
        in_tx!(self, tx => accounts::ensure_org(&mut tx, name, defaults, auto_enable, now))
    }

    async fn org(&self, id: OrgId) -> Result<Option<Org>> {
        accounts::org_by_id(&self.pool, id).await
    }

    async fn org_by_name(&self, name: &OrgName) -> Result<Option<Org>> {
        accounts::org_by_name(&self.pool, name.as_str()).await
    }

    async fn list_orgs(&self) -> Result<Vec<Org>> {
        accounts::list_orgs(&self.pool).await
    }

    async fn update_org_settings(
        &self,
        id: OrgId,
        auto_enable: bool,
        defaults: &VaultPlusSettings,
        push: Option<&SettingsPatch>,
        now: i64,
    ) -> Result<u64> {
        in_tx!(self, tx => accounts::update_org_settings(&mut tx, id, auto_enable, defaults, push, now))
    }

    async fn set_org_rate_limit(&self, id: OrgId, limit: &OrgRateLimit) -> Result<bool> {
        in_tx!(self, tx => accounts::set_org_rate_limit(&mut tx, id, limit))
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        accounts::insert_api_key(&self.pool, key).await
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        accounts::api_key(&self.pool, id).await
    }

    async fn list_api_keys(&self, org: Option<OrgId>) -> Result<Vec<ApiKeyRecord>> {
        accounts::list_api_keys(&self.pool, org).await
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool> {
        accounts::revoke_api_key(&self.pool, id, now).await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        accounts::signing_keys(&self.pool).await
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<bool> {
        in_tx!(self, tx => accounts::insert_signing_key(&mut tx, key))
    }

    async fn delete_signing_key(&self, id: i64) -> Result<bool> {
        in_tx!(self, tx => accounts::delete_signing_key(&mut tx, id))
    }

    async fn replace_signing_secret(&self, id: i64, old: &[u8], new: &[u8]) -> Result<bool> {
        accounts::replace_signing_secret(&self.pool, id, old, new).await
    }

    async fn insert_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        enabled: bool,
        now: i64,
    ) -> Result<bool> {
        in_tx!(self, tx => accounts::insert_connection(&mut tx, org, id, enabled, now))
    }

    async fn connection(&self, org: OrgId, id: &ConnectionId) -> Result<Option<Connection>> {
        accounts::connection(&self.pool, org, id.as_str()).await
    }

    async fn connection_of_scope(&self, scope: ScopeId) -> Result<Option<Connection>> {
        accounts::connection_of_scope(&self.pool, scope).await
    }

    async fn list_connections(
        &self,
        org: OrgId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Connection>> {
        accounts::list_connections(&self.pool, org, offset, limit).await
    }

    async fn update_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        change: &ConnectionChange,
        now: i64,
    ) -> Result<Option<(Connection, Option<PurgeOutcome>)>> {
        in_tx!(self, tx => accounts::update_connection(&mut tx, org, id, change, now))
    }

    async fn purge_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        now: i64,
    ) -> Result<Option<PurgeOutcome>> {
        in_tx!(self, tx => accounts::purge_connection(&mut tx, org, id, now))
    }

    async fn remove_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        now: i64,
    ) -> Result<Option<PurgeOutcome>> {
        in_tx!(self, tx => accounts::remove_connection(&mut tx, org, id, now))
    }

    async fn scope_totals(&self, scope: ScopeId) -> Result<ScopeTotals> {
        accounts::scope_totals(&self.pool, scope).await
    }

    async fn org_totals(&self, org: OrgId) -> Result<OrgTotals> {
        accounts::org_totals(&self.pool, org).await
    }

    async fn media(&self, scope: ScopeId, ids: &[MediaId]) -> Result<Vec<MediaRecord>> {
        media::media(&self.pool, scope, ids).await
    }

    async fn query_media(&self, scope: ScopeId, query: &MediaQuery) -> Result<QueryPage> {
        media::query_media(&self.pool, scope, query).await
    }

    async fn delete_media(&self, scope: ScopeId, id: &MediaId) -> Result<DeleteOutcome> {
        in_tx!(self, tx => media::delete_media(&mut tx, scope, id, now_ms()))
    }

    async fn begin_upload(&self, scope: ScopeId, blob_key: &str, now: i64) -> Result<()> {
        media::begin_upload(&self.pool, scope, blob_key, now).await
    }

    async fn commit_upload(&self, upload: &NewStoredVariant) -> Result<CommitOutcome> {
        in_tx!(self, tx => media::commit_upload(&mut tx, upload))
    }

    async fn abort_upload(&self, blob_key: &str, now: i64) -> Result<()> {
        in_tx!(self, tx => media::abort_upload(&mut tx, blob_key, now))
    }

    async fn requeue_upload_intents(&self, started_before: i64) -> Result<u64> {
        in_tx!(self, tx => media::requeue_upload_intents(&mut tx, started_before, now_ms()))
    }

    async fn current_variant(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
    ) -> Result<Option<VariantRecord>> {
        // Never cached: see media::current_variant.
        media::current_variant(&self.pool, scope, media, label).await
    }

    async fn record_accesses(&self, hits: &[AccessHit]) -> Result<()> {
        media::record_accesses(&self.pool, hits).await
    }

    async fn apply_list(
        &self,
        scope: ScopeId,
        list_id: &str,
        mode: ListMode,
        items: &[ObservedMedia],
        now: i64,
    ) -> Result<Option<ListOutcome>> {
        in_tx!(self, tx => lists::apply_list(&mut tx, scope, list_id, mode, items, now))
    }

    async fn refresh_upstream_urls(&self, scope: ScopeId, items: &[ObservedMedia]) -> Result<()> {
        in_tx!(self, tx => lists::refresh_upstream_urls(&mut tx, scope, items))
    }

    async fn lists(&self, scope: ScopeId) -> Result<Vec<ListSummary>> {
        lists::lists(&self.pool, scope).await
    }

    async fn list_members(
        &self,
        scope: ScopeId,
        list_id: &str,
        page: &PageRequest<MemberKey>,
    ) -> Result<Page<ListMember, MemberKey>> {
        lists::list_members(&self.pool, scope, list_id, page).await
    }

    async fn queue_variant(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
        now: i64,
    ) -> Result<QueueOutcome> {
        in_tx!(self, tx => jobs::queue_variant(&mut tx, scope, media, label, now))
    }

    async fn claim_jobs(
        &self,
        owner: &str,
        limit: u64,
        lease_until: i64,
        now: i64,
    ) -> Result<Vec<Job>> {
        jobs::claim_jobs(&self.pool, owner, limit, lease_until, now).await
    }

    async fn extend_lease(&self, job_id: i64, owner: &str, lease_until: i64) -> Result<bool> {
        jobs::extend_lease(&self.pool, job_id, owner, lease_until).await
    }

    async fn complete_job(
        &self,
        job: &Job,
        owner: &str,
        blob: &FetchedBlob,
        limit: Option<StorageLimit>,
        now: i64,
    ) -> Result<CommitOutcome> {
        in_tx!(self, tx => jobs::complete_job(&mut tx, job, owner, blob, limit, now))
    }

    async fn retry_job(
        &self,
        job_id: i64,
        owner: &str,
        error: &str,
        run_after: i64,
        count_attempt: bool,
    ) -> Result<()> {
        in_tx!(self, tx => jobs::retry_job(&mut tx, job_id, owner, error, run_after, count_attempt))
    }

    async fn fail_job(&self, job_id: i64, owner: &str, error: &str, now: i64) -> Result<()> {
        in_tx!(self, tx => jobs::fail_job(&mut tx, job_id, owner, error, now))
    }

    async fn jobs(
        &self,
        scope: ScopeId,
        failed_only: bool,
        page: &PageRequest<JobKey>,
    ) -> Result<Page<JobRecord, JobKey>> {
        jobs::jobs(&self.pool, scope, failed_only, page).await
    }

    async fn release_all_leases(&self) -> Result<u64> {
        // The embedded catalog ends every lease at start because it is the
        // only server. Here other nodes may be running the jobs they hold:
        // ending their leases would run those jobs twice at once. A dead
        // node's leases lapse by themselves (`lease_until`), after which
        // any node's `claim_jobs` takes them over, so there is nothing to
        // release.
        Ok(0)
    }

    async fn next_job_due(&self) -> Result<Option<i64>> {
        jobs::next_job_due(&self.pool).await
    }

    async fn drain_retired_scope(&self, limit: u64) -> Result<u64> {
        in_tx!(self, tx => reclaim::drain_retired_scope(&mut tx, limit, now_ms()))
    }

    async fn queued_blob_deletions(&self, limit: u64) -> Result<Vec<String>> {
        reclaim::queued_blob_deletions(&self.pool, limit).await
    }

    async fn forget_blob_deletions(&self, keys: &[String]) -> Result<()> {
        reclaim::forget_blob_deletions(&self.pool, keys).await
    }

    async fn postpone_blob_deletions(&self, keys: &[String], delay_ms: i64) -> Result<()> {
        reclaim::postpone_blob_deletions(&self.pool, keys, delay_ms).await
    }

    async fn reclaim_backlog(&self) -> Result<ReclaimBacklog> {
        reclaim::reclaim_backlog(&self.pool).await
    }

    async fn referenced_blob_keys(&self) -> Result<Vec<String>> {
        reclaim::referenced_blob_keys(&self.pool).await
    }

    async fn evict_expired(
        &self,
        scope: ScopeId,
        stored_before: Option<i64>,
        accessed_before: Option<i64>,
        limit: u64,
        now: i64,
    ) -> Result<(u64, u64)> {
        in_tx!(self, tx => eviction::evict_expired(&mut tx, scope, stored_before, accessed_before, limit, now))
    }

    async fn enforce_storage_limit(
        &self,
        scope: ScopeId,
        limit: StorageLimit,
        now: i64,
    ) -> Result<(u64, u64)> {
        in_tx!(self, tx => eviction::enforce_storage_limit(&mut tx, scope, limit, now))
    }

    async fn audit_scopes(&self) -> Result<Vec<ScopeAudit>> {
        audit::audit_scopes(&self.pool).await
    }

    async fn repair_scope_totals(&self, scope: ScopeId) -> Result<(ScopeTotals, ScopeTotals)> {
        in_tx!(self, tx => audit::repair_scope_totals(&mut tx, scope))
    }

    async fn stored_blobs(&self, after: Option<&str>, limit: u64) -> Result<Vec<StoredBlob>> {
        audit::stored_blobs(&self.pool, after, limit).await
    }

    async fn evict_variant(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
        now: i64,
    ) -> Result<u64> {
        in_tx!(self, tx => eviction::evict_variant(&mut tx, scope, media.as_str(), label.as_str(), now))
    }
}
