//! The embedded catalog: one SQLite file in WAL mode.
//!
//! Writes go through a single pooled connection and open with
//! `BEGIN IMMEDIATE`, so transactions in this process queue instead of
//! failing with SQLITE_BUSY; other processes on the same file (the CLI while
//! the server runs) wait on the busy timeout. Reads use their own pool and
//! run beside the writer, as WAL allows.

mod accounts;
mod audit;
mod data_version;
mod eviction;
mod jobs;
mod lists;
mod lookup_cache;
mod media;
mod reclaim;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite, SqlitePool, Transaction};

use super::*;
use crate::model::list_plan::ListMode;
use crate::model::observed::ObservedMedia;
use crate::model::settings::StorageLimit;
use crate::model::time::now_ms;

pub struct SqliteCatalog {
    writer: SqlitePool,
    reader: SqlitePool,
    version: data_version::DataVersion,
    lookups: lookup_cache::LookupCache,
}

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        // The file holds the URL signing secrets: SQLite would create it
        // 0644, so it is made private first (SQLite accepts an empty file
        // as a new database), and SQLite gives its -wal and -shm files the
        // database file's mode.
        crate::private_files::file_options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot create the catalog at {}", path.display()))?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before it is answered, so a power
            // cut loses nothing that a client was told is stored.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the catalog at {}", path.display()))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .context("cannot apply catalog migrations")?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone().read_only(true))
            .await?;
        // Its own connection, outside any pool: a data version is only
        // comparable with earlier reads on the same connection.
        let version =
            data_version::DataVersion::new(options.read_only(true).connect().await?).await?;
        Ok(Self {
            writer,
            reader,
            lookups: lookup_cache::LookupCache::new(version.clone()),
            version,
        })
    }

    async fn tx(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Commits, then tells the look-up cache that the catalog changed.
    async fn commit(&self, tx: Transaction<'static, Sqlite>) -> Result<()> {
        tx.commit().await?;
        self.lookups.committed();
        Ok(())
    }
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn watch_changes(&self) -> Result<ChangeWatch> {
        Ok(self.version.watch())
    }

    async fn ensure_org(
        &self,
        name: &OrgName,
        defaults: &VaultPlusSettings,
        auto_enable: bool,
        now: i64,
    ) -> Result<(Org, bool)> {
        let mut tx = self.tx().await?;
        let out = accounts::ensure_org(&mut tx, name, defaults, auto_enable, now).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn org(&self, id: OrgId) -> Result<Option<Org>> {
        accounts::org_where(&self.reader, "id = ?", &id.to_string()).await
    }

    async fn org_by_name(&self, name: &OrgName) -> Result<Option<Org>> {
        accounts::org_where(&self.reader, "name = ?", name.as_str()).await
    }

    async fn list_orgs(&self) -> Result<Vec<Org>> {
        accounts::list_orgs(&self.reader).await
    }

    async fn update_org_settings(
        &self,
        id: OrgId,
        auto_enable: bool,
        defaults: &VaultPlusSettings,
        push: Option<&SettingsPatch>,
        now: i64,
    ) -> Result<u64> {
        let mut tx = self.tx().await?;
        let n =
            accounts::update_org_settings(&mut tx, id, auto_enable, defaults, push, now).await?;
        self.commit(tx).await?;
        Ok(n)
    }

    async fn set_org_rate_limit(&self, id: OrgId, limit: &OrgRateLimit) -> Result<bool> {
        let mut tx = self.tx().await?;
        let found = accounts::set_org_rate_limit(&mut tx, id, limit).await?;
        self.commit(tx).await?;
        Ok(found)
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        accounts::insert_api_key(&self.writer, key).await
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        accounts::api_key(&self.reader, id).await
    }

    async fn list_api_keys(&self, org: Option<OrgId>) -> Result<Vec<ApiKeyRecord>> {
        accounts::list_api_keys(&self.reader, org).await
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool> {
        accounts::revoke_api_key(&self.writer, id, now).await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        accounts::signing_keys(&self.reader).await
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<bool> {
        accounts::insert_signing_key(&self.writer, key).await
    }

    async fn delete_signing_key(&self, id: i64) -> Result<bool> {
        accounts::delete_signing_key(&self.writer, id).await
    }

    async fn replace_signing_secret(&self, id: i64, old: &[u8], new: &[u8]) -> Result<bool> {
        accounts::replace_signing_secret(&self.writer, id, old, new).await
    }

    async fn insert_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        enabled: bool,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.tx().await?;
        let inserted = accounts::insert_connection(&mut tx, org, id, enabled, now).await?;
        self.commit(tx).await?;
        Ok(inserted)
    }

    async fn connection(&self, org: OrgId, id: &ConnectionId) -> Result<Option<Connection>> {
        accounts::connection(&self.reader, org, id.as_str()).await
    }

    async fn connection_of_scope(&self, scope: ScopeId) -> Result<Option<Connection>> {
        accounts::connection_of_scope(&self.reader, scope).await
    }

    async fn list_connections(
        &self,
        org: OrgId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Connection>> {
        accounts::list_connections(&self.reader, org, offset, limit).await
    }

    async fn update_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        change: &ConnectionChange,
        now: i64,
    ) -> Result<Option<(Connection, Option<PurgeOutcome>)>> {
        let mut tx = self.tx().await?;
        let out = accounts::update_connection(&mut tx, org, id, change, now).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn purge_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        now: i64,
    ) -> Result<Option<PurgeOutcome>> {
        let mut tx = self.tx().await?;
        let out = accounts::purge_connection(&mut tx, org, id, now).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn remove_connection(
        &self,
        org: OrgId,
        id: &ConnectionId,
        now: i64,
    ) -> Result<Option<PurgeOutcome>> {
        let mut tx = self.tx().await?;
        let out = accounts::remove_connection(&mut tx, org, id, now).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn scope_totals(&self, scope: ScopeId) -> Result<ScopeTotals> {
        accounts::scope_totals(&self.reader, scope).await
    }

    async fn org_totals(&self, org: OrgId) -> Result<OrgTotals> {
        accounts::org_totals(&self.reader, org).await
    }

    async fn media(&self, scope: ScopeId, ids: &[MediaId]) -> Result<Vec<MediaRecord>> {
        media::media(&self.reader, scope, ids).await
    }

    async fn query_media(&self, scope: ScopeId, query: &MediaQuery) -> Result<QueryPage> {
        media::query_media(&self.reader, scope, query).await
    }

    async fn delete_media(&self, scope: ScopeId, id: &MediaId) -> Result<DeleteOutcome> {
        let mut tx = self.tx().await?;
        let out = media::delete_media(&mut tx, scope, id, now_ms()).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn begin_upload(&self, scope: ScopeId, blob_key: &str, now: i64) -> Result<()> {
        media::begin_upload(&self.writer, scope, blob_key, now).await
    }

    async fn commit_upload(&self, upload: &NewStoredVariant) -> Result<CommitOutcome> {
        let mut tx = self.tx().await?;
        let out = media::commit_upload(&mut tx, upload).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn abort_upload(&self, blob_key: &str, now: i64) -> Result<()> {
        let mut tx = self.tx().await?;
        media::abort_upload(&mut tx, blob_key, now).await?;
        self.commit(tx).await?;
        Ok(())
    }

    async fn requeue_upload_intents(&self, started_before: i64) -> Result<u64> {
        let mut tx = self.tx().await?;
        let n = media::requeue_upload_intents(&mut tx, started_before, now_ms()).await?;
        self.commit(tx).await?;
        Ok(n)
    }

    async fn current_variant(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
    ) -> Result<Option<VariantRecord>> {
        let key = (scope, media.as_str().to_owned(), label.as_str().to_owned());
        let stamp = self.lookups.stamp();
        if let Some(hit) = self.lookups.get(&key, &stamp) {
            return Ok(hit);
        }
        let found = media::current_variant(&self.reader, scope, media, label).await?;
        self.lookups.put(key, stamp, found.clone());
        Ok(found)
    }

    async fn record_accesses(&self, hits: &[AccessHit]) -> Result<()> {
        let mut tx = self.tx().await?;
        media::record_accesses(&mut tx, hits).await?;
        self.commit(tx).await?;
        Ok(())
    }

    async fn apply_list(
        &self,
        scope: ScopeId,
        list_id: &str,
        mode: ListMode,
        items: &[ObservedMedia],
        now: i64,
    ) -> Result<Option<ListOutcome>> {
        let mut tx = self.tx().await?;
        let out = lists::apply_list(&mut tx, scope, list_id, mode, items, now).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn refresh_upstream_urls(&self, scope: ScopeId, items: &[ObservedMedia]) -> Result<()> {
        let mut tx = self.tx().await?;
        lists::refresh_upstream_urls(&mut tx, scope, items).await?;
        self.commit(tx).await?;
        Ok(())
    }

    async fn lists(&self, scope: ScopeId) -> Result<Vec<ListSummary>> {
        lists::lists(&self.reader, scope).await
    }

    async fn list_members(
        &self,
        scope: ScopeId,
        list_id: &str,
        page: &PageRequest<MemberKey>,
    ) -> Result<Page<ListMember, MemberKey>> {
        lists::list_members(&self.reader, scope, list_id, page).await
    }

    async fn queue_variant(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
        now: i64,
    ) -> Result<QueueOutcome> {
        let mut tx = self.tx().await?;
        let out = jobs::queue_variant(&mut tx, scope, media, label, now).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn claim_jobs(
        &self,
        owner: &str,
        limit: u64,
        lease_until: i64,
        now: i64,
    ) -> Result<Vec<Job>> {
        let mut tx = self.tx().await?;
        let out = jobs::claim_jobs(&mut tx, owner, limit, lease_until, now).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn extend_lease(&self, job_id: i64, owner: &str, lease_until: i64) -> Result<bool> {
        jobs::extend_lease(&self.writer, job_id, owner, lease_until).await
    }

    async fn complete_job(
        &self,
        job: &Job,
        owner: &str,
        blob: &FetchedBlob,
        limit: Option<StorageLimit>,
        now: i64,
    ) -> Result<CommitOutcome> {
        let mut tx = self.tx().await?;
        let out = jobs::complete_job(&mut tx, job, owner, blob, limit, now).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn retry_job(
        &self,
        job_id: i64,
        owner: &str,
        error: &str,
        run_after: i64,
        count_attempt: bool,
    ) -> Result<()> {
        let mut tx = self.tx().await?;
        jobs::retry_job(&mut tx, job_id, owner, error, run_after, count_attempt).await?;
        self.commit(tx).await?;
        Ok(())
    }

    async fn fail_job(&self, job_id: i64, owner: &str, error: &str, now: i64) -> Result<()> {
        let mut tx = self.tx().await?;
        jobs::fail_job(&mut tx, job_id, owner, error, now).await?;
        self.commit(tx).await?;
        Ok(())
    }

    async fn jobs(
        &self,
        scope: ScopeId,
        failed_only: bool,
        page: &PageRequest<JobKey>,
    ) -> Result<Page<JobRecord, JobKey>> {
        jobs::jobs(&self.reader, scope, failed_only, page).await
    }

    async fn release_all_leases(&self) -> Result<u64> {
        jobs::release_all_leases(&self.writer).await
    }

    async fn next_job_due(&self) -> Result<Option<i64>> {
        jobs::next_job_due(&self.reader).await
    }

    async fn drain_retired_scope(&self, limit: u64) -> Result<u64> {
        let mut tx = self.tx().await?;
        let n = reclaim::drain_retired_scope(&mut tx, limit, now_ms()).await?;
        self.commit(tx).await?;
        Ok(n)
    }

    async fn queued_blob_deletions(&self, limit: u64) -> Result<Vec<String>> {
        reclaim::queued_blob_deletions(&self.reader, limit).await
    }

    async fn forget_blob_deletions(&self, keys: &[String]) -> Result<()> {
        reclaim::forget_blob_deletions(&self.writer, keys).await
    }

    async fn postpone_blob_deletions(&self, keys: &[String], delay_ms: i64) -> Result<()> {
        reclaim::postpone_blob_deletions(&self.writer, keys, now_ms() + delay_ms).await
    }

    async fn reclaim_backlog(&self) -> Result<ReclaimBacklog> {
        reclaim::reclaim_backlog(&self.reader).await
    }

    async fn referenced_blob_keys(&self) -> Result<Vec<String>> {
        reclaim::referenced_blob_keys(&self.reader).await
    }

    async fn evict_expired(
        &self,
        scope: ScopeId,
        stored_before: Option<i64>,
        accessed_before: Option<i64>,
        limit: u64,
        now: i64,
    ) -> Result<(u64, u64)> {
        let mut tx = self.tx().await?;
        let out =
            eviction::evict_expired(&mut tx, scope, stored_before, accessed_before, limit, now)
                .await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn enforce_storage_limit(
        &self,
        scope: ScopeId,
        limit: StorageLimit,
        now: i64,
    ) -> Result<(u64, u64)> {
        let mut tx = self.tx().await?;
        let out = eviction::enforce_limit(&mut tx, scope, Some(limit), ("", ""), now).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn audit_scopes(&self) -> Result<Vec<ScopeAudit>> {
        audit::audit_scopes(&self.reader).await
    }

    async fn repair_scope_totals(&self, scope: ScopeId) -> Result<(ScopeTotals, ScopeTotals)> {
        let mut tx = self.tx().await?;
        let out = audit::repair_scope_totals(&mut tx, scope).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    async fn stored_blobs(&self, after: Option<&str>, limit: u64) -> Result<Vec<StoredBlob>> {
        audit::stored_blobs(&self.reader, after, limit).await
    }

    async fn evict_variant(
        &self,
        scope: ScopeId,
        media: &MediaId,
        label: &Label,
        now: i64,
    ) -> Result<u64> {
        let mut tx = self.tx().await?;
        let freed =
            eviction::evict_variant(&mut tx, scope, media.as_str(), label.as_str(), now).await?;
        self.commit(tx).await?;
        Ok(freed)
    }
}
