//! The catalog conformance suite against PostgreSQL, plus what only a
//! shared catalog must show: several nodes starting, claiming jobs and
//! racing on one connection at once.
//!
//! Needs a running cluster: `VAULTPLUS_TEST_POSTGRES_URL` is the admin URL
//! of one (scripts/test.sh starts a throwaway one with
//! `scripts/pg-cluster.sh start DIR`). Every test makes its own database.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection as _, PgConnection, Row};
use vaultplus::catalog::postgres::{MIGRATION_LOCK, PostgresCatalog};
use vaultplus::catalog::{
    Accounts, Catalog, CommitOutcome, NewStoredVariant, ScopeId, ScopeTotals,
};
use vaultplus::model::VariantStatus;
use vaultplus::model::list_plan::ListMode;
use vaultplus::model::observed::{ObservedMedia, ObservedVariant, Origin};
use vaultplus::model::{ConnectionId, MediaId, MediaType, OrgName, VaultPlusSettings};
use vaultplus_conformance::catalog::{Fixture, all_jobs};

#[path = "support/postgres.rs"]
mod postgres;
use postgres::new_database;

const NOW: i64 = 1_800_000_000_000;

async fn fresh() -> Fixture {
    let url = new_database().await;
    let catalog = PostgresCatalog::connect(&url, 4).await.unwrap();
    Fixture::new(Arc::new(catalog), url)
}

vaultplus_conformance::catalog_conformance!(fresh());

// --- several nodes -----------------------------------------------------------

/// Two "nodes": two catalogs, each with its own pool, on one database.
async fn two_nodes() -> (Arc<dyn Catalog>, Arc<dyn Catalog>) {
    let url = new_database().await;
    let a = PostgresCatalog::connect(&url, 8).await.unwrap();
    let b = PostgresCatalog::connect(&url, 8).await.unwrap();
    (Arc::new(a), Arc::new(b))
}

async fn org_and_conn(c: &dyn Catalog) -> (i64, ConnectionId) {
    let name = OrgName::parse("org").unwrap();
    let org = c
        .ensure_org(&name, &VaultPlusSettings::default(), true, NOW)
        .await
        .unwrap()
        .0;
    let id = ConnectionId::parse("conn").unwrap();
    c.insert_connection(org.id, &id, true, NOW).await.unwrap();
    (org.id, id)
}

async fn current_scope(c: &dyn Catalog, org: i64, id: &ConnectionId) -> ScopeId {
    c.connection(org, id).await.unwrap().unwrap().scope_id
}

fn observed(id: &str) -> ObservedMedia {
    ObservedMedia {
        media_id: MediaId::parse(id).unwrap(),
        media_type: MediaType::Image,
        duration: None,
        fingerprint: "f".into(),
        admitted: true,
        variants: vec![ObservedVariant {
            label: "full".into(),
            origin: Origin::Upstream,
            url: Some(format!("http://up/cdn/{id}/full.jpg")),
            size: Some(100),
            content_type: "image/jpeg".into(),
            store: true,
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_migrate_once() {
    let url = new_database().await;
    let nodes: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresCatalog::connect(&url, 2).await })
        })
        .collect();
    for n in nodes {
        let catalog = n.await.unwrap().expect("every node starts");
        catalog.ping().await.unwrap();
    }
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(rows.len(), files, "each migration recorded once");
    assert!(rows.iter().all(|r| r.get::<bool, _>("success")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_waits_for_the_migration_lock() {
    let url = new_database().await;
    let mut holder = PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut holder)
        .await
        .unwrap();
    let starting = {
        let url = url.clone();
        tokio::spawn(async move { PostgresCatalog::connect(&url, 2).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !starting.is_finished(),
        "connect must wait while another node migrates"
    );
    let tables: i64 = sqlx::query("SELECT count(*) FROM pg_tables WHERE tablename = 'scopes'")
        .fetch_one(&mut holder)
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "no migration ran under someone else's lock");
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut holder)
        .await
        .unwrap();
    let catalog = tokio::time::timeout(Duration::from_secs(30), starting)
        .await
        .expect("connect goes on once the lock is free")
        .unwrap()
        .unwrap();
    catalog.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_never_share_a_job() {
    let (a, b) = two_nodes().await;
    let (org, id) = org_and_conn(a.as_ref()).await;
    let scope = current_scope(a.as_ref(), org, &id).await;
    let items: Vec<_> = (1..=120).map(|i| observed(&i.to_string())).collect();
    let out = a
        .apply_list(scope, "10", ListMode::Add, &items, NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.queued, 120);

    let workers: Vec<_> = (0..12)
        .map(|w| {
            let c = if w % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let jobs = c
                        .claim_jobs(&format!("w{w}"), 4, NOW + 60_000, NOW)
                        .await
                        .unwrap();
                    if jobs.is_empty() {
                        break got;
                    }
                    got.extend(jobs.into_iter().map(|j| j.id));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for w in workers {
        for job in w.await.unwrap() {
            assert!(seen.insert(job), "job {job} was handed to two workers");
        }
    }
    assert_eq!(seen.len(), 120, "every job was claimed");
}

#[tokio::test]
async fn expired_leases_pass_to_any_node_and_live_ones_stay() {
    let (a, b) = two_nodes().await;
    let (org, id) = org_and_conn(a.as_ref()).await;
    let scope = current_scope(a.as_ref(), org, &id).await;
    let items: Vec<_> = (1..=3).map(|i| observed(&i.to_string())).collect();
    a.apply_list(scope, "10", ListMode::Add, &items, NOW)
        .await
        .unwrap();
    let held = a.claim_jobs("a1", 10, NOW + 1000, NOW).await.unwrap();
    assert_eq!(held.len(), 3);
    // Another node starting must not end leases node A still works under.
    assert_eq!(b.release_all_leases().await.unwrap(), 0);
    assert!(
        b.claim_jobs("b1", 10, NOW + 5000, NOW + 500)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(a.extend_lease(held[0].id, "a1", NOW + 9000).await.unwrap());
    // Node A is gone: its other two leases lapse and node B takes them.
    let taken = b
        .claim_jobs("b1", 10, NOW + 5000, NOW + 2000)
        .await
        .unwrap();
    assert_eq!(taken.len(), 2);
    assert!(!a.extend_lease(taken[0].id, "a1", NOW + 9000).await.unwrap());
}

/// What every operation on one connection answered, to compare with what
/// is left.
#[derive(Default, Debug)]
struct Ledger {
    created: u64,
    created_bytes: u64,
    purged: u64,
    purged_bytes: u64,
    deleted: u64,
    deleted_bytes: u64,
    evicted: u64,
    evicted_bytes: u64,
    /// Live variants list syncs created (jobs queued) and removed.
    listed: u64,
    unlisted: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writes_keep_counters_exact() {
    let (a, b) = two_nodes().await;
    let (org, id) = org_and_conn(a.as_ref()).await;
    let ledger = Arc::new(std::sync::Mutex::new(Ledger::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Media IDs uploaders made, for the deleters to aim at.
    let made = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));

    // Uploaders on both nodes: each commit makes one new media item.
    let uploaders: Vec<_> = (0..4u64)
        .map(|w| {
            let c = if w % 2 == 0 { a.clone() } else { b.clone() };
            let (ledger, id, made) = (ledger.clone(), id.clone(), made.clone());
            tokio::spawn(async move {
                for i in 0..60u64 {
                    let scope = current_scope(c.as_ref(), org, &id).await;
                    let key = format!("{scope}/{}", uuid::Uuid::new_v4().simple());
                    let size = 1 + w * 1000 + i;
                    c.begin_upload(scope, &key, NOW).await.unwrap();
                    let out = c
                        .commit_upload(&NewStoredVariant {
                            scope_id: scope,
                            media_id: MediaId::parse(&(w * 1000 + i + 1).to_string()).unwrap(),
                            label: "full".into(),
                            content_type: "image/jpeg".into(),
                            size_bytes: size,
                            checksum: "00".repeat(32),
                            blob_key: key,
                            duration: None,
                            now: NOW,
                            limit: None,
                        })
                        .await
                        .unwrap();
                    match out {
                        CommitOutcome::Created(_) => {
                            let mut l = ledger.lock().unwrap();
                            l.created += 1;
                            l.created_bytes += size;
                            if i.is_multiple_of(2) {
                                made.lock().unwrap().push(w * 1000 + i + 1);
                            }
                        }
                        CommitOutcome::ScopeRetired => {}
                        other => panic!("unexpected commit outcome {other:?}"),
                    }
                }
            })
        })
        .collect();
    // Deleters on both nodes, aiming at items the uploaders make.
    let deleters: Vec<_> = (0..2u64)
        .map(|d| {
            let c = if d == 0 { b.clone() } else { a.clone() };
            let (ledger, id, stop, made) = (ledger.clone(), id.clone(), stop.clone(), made.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let scope = current_scope(c.as_ref(), org, &id).await;
                    // Every other item an uploader made, newest first.
                    let Some(media) = made.lock().unwrap().pop() else {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    };
                    let out = c
                        .delete_media(scope, &MediaId::parse(&media.to_string()).unwrap())
                        .await
                        .unwrap();
                    let mut l = ledger.lock().unwrap();
                    l.deleted += out.removed_count;
                    l.deleted_bytes += out.freed_bytes;
                }
            })
        })
        .collect();
    // Purgers on both nodes.
    let purgers: Vec<_> = (0..2)
        .map(|p| {
            let c = if p == 0 { a.clone() } else { b.clone() };
            let (ledger, id, stop) = (ledger.clone(), id.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let out = c.purge_connection(org, &id, NOW).await.unwrap().unwrap();
                    {
                        let mut l = ledger.lock().unwrap();
                        l.purged += out.purged_count;
                        l.purged_bytes += out.freed_bytes;
                    }
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            })
        })
        .collect();
    // An evictor (retention) and a list syncer, one per node.
    let evictor = {
        let (c, ledger, id, stop) = (b.clone(), ledger.clone(), id.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let scope = current_scope(c.as_ref(), org, &id).await;
                let (n, bytes) = c
                    .evict_expired(scope, Some(i64::MAX), None, 3, NOW)
                    .await
                    .unwrap();
                {
                    let mut l = ledger.lock().unwrap();
                    l.evicted += n;
                    l.evicted_bytes += bytes;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let syncer = {
        let (c, ledger, id, stop) = (a.clone(), ledger.clone(), id.clone(), stop.clone());
        tokio::spawn(async move {
            // Two overlapping listings in turn: each sync adds five items
            // and removes five.
            let listing = |from: u64| -> Vec<ObservedMedia> {
                (from..from + 10)
                    .map(|i| observed(&(900_000 + i).to_string()))
                    .collect()
            };
            let mut round = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let scope = current_scope(c.as_ref(), org, &id).await;
                let items = listing(if round.is_multiple_of(2) { 1 } else { 6 });
                round += 1;
                if let Some(out) = c
                    .apply_list(scope, "10", ListMode::Sync, &items, NOW)
                    .await
                    .unwrap()
                {
                    let mut l = ledger.lock().unwrap();
                    l.listed += out.queued;
                    l.unlisted += out.counts.removed;
                }
            }
        })
    };
    for u in uploaders {
        u.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in deleters.into_iter().chain(purgers).chain([evictor, syncer]) {
        t.await.unwrap();
    }

    let l = std::mem::take(&mut *ledger.lock().unwrap());
    let scope = current_scope(a.as_ref(), org, &id).await;
    let left = a.scope_totals(scope).await.unwrap();
    assert!(
        l.purged > 0 && l.deleted > 0 && l.evicted > 0 && l.unlisted > 0,
        "the race happened: {l:?}"
    );
    assert_eq!(
        l.created + l.listed,
        l.purged + l.deleted + l.evicted + l.unlisted + left.live_count,
        "every variant made live was purged, deleted, evicted, unlisted or is still there: \
         {l:?}, left {left:?}"
    );
    assert_eq!(
        l.created_bytes,
        l.purged_bytes + l.deleted_bytes + l.evicted_bytes + left.stored_bytes,
        "bytes add up: {l:?}, left {left:?}"
    );
    for audit in a.audit_scopes().await.unwrap() {
        assert_eq!(audit.counters, audit.actual, "counters match a recount");
    }
    // Draining every retired scope leaves exactly the current one's records.
    while a.drain_retired_scope(100).await.unwrap() > 0 {}
    assert_eq!(a.reclaim_backlog().await.unwrap().retired_scopes, 0);
    let totals: ScopeTotals = a.scope_totals(scope).await.unwrap();
    assert_eq!(totals, left);
}

#[tokio::test]
async fn a_purge_or_revocation_on_one_node_shows_on_the_other_at_once() {
    let (a, b) = two_nodes().await;
    let (org, id) = org_and_conn(a.as_ref()).await;
    let scope = current_scope(a.as_ref(), org, &id).await;
    let media = MediaId::parse("7").unwrap();
    let label = vaultplus::model::Label::parse("full").unwrap();
    let key = format!("{scope}/blob");
    a.begin_upload(scope, &key, NOW).await.unwrap();
    let out = a
        .commit_upload(&NewStoredVariant {
            scope_id: scope,
            media_id: media.clone(),
            label: "full".into(),
            content_type: "image/jpeg".into(),
            size_bytes: 10,
            checksum: "00".repeat(32),
            blob_key: key,
            duration: None,
            now: NOW,
            limit: None,
        })
        .await
        .unwrap();
    assert!(matches!(out, CommitOutcome::Created(_)));
    // Node B serves it (and would have cached it, were there a cache).
    assert!(
        b.current_variant(scope, &media, &label)
            .await
            .unwrap()
            .is_some()
    );
    let read = b.connection_media(org, &id, std::slice::from_ref(&media));
    assert_eq!(read.await.unwrap().unwrap().found.len(), 1);
    a.purge_connection(org, &id, NOW).await.unwrap().unwrap();
    assert!(
        b.current_variant(scope, &media, &label)
            .await
            .unwrap()
            .is_none(),
        "node B must not serve what node A purged"
    );
    // Nor list it: a request's one-statement read on B sees the fresh scope.
    let read = b.connection_media(org, &id, std::slice::from_ref(&media));
    let read = read.await.unwrap().unwrap();
    assert!(
        read.found.is_empty(),
        "node B must not list what node A purged"
    );
    assert_ne!(read.connection.scope_id, scope);
    let totals = b.connection_totals(org, &id).await.unwrap().unwrap();
    assert_eq!(totals.found, ScopeTotals::default());

    let record = vaultplus::catalog::ApiKeyRecord {
        id: "key1".into(),
        org_id: org,
        secret_hash: vec![1; 32],
        scopes: vec![vaultplus::model::KeyScope::Account],
        created_at: NOW,
        revoked_at: None,
    };
    a.insert_api_key(&record).await.unwrap();
    assert_eq!(b.api_key("key1").await.unwrap().unwrap().revoked_at, None);
    assert!(a.revoke_api_key("key1", NOW + 1).await.unwrap());
    assert_eq!(
        b.api_key("key1").await.unwrap().unwrap().revoked_at,
        Some(NOW + 1)
    );
    let (key, _) = b.api_key_and_org("key1").await.unwrap().unwrap();
    assert_eq!(key.revoked_at, Some(NOW + 1));
}

/// A signing key retired through one node (or the CLI) reaches the others
/// by notification, and only once committed.
#[tokio::test]
async fn a_signing_key_change_on_one_node_notifies_the_other() {
    let url = new_database().await;
    let a = PostgresCatalog::connect(&url, 4).await.unwrap();
    let b = PostgresCatalog::connect(&url, 4).await.unwrap();
    let mut on_b = b.watch_changes().await.unwrap();
    let key = |id| vaultplus::catalog::SigningKeyRecord {
        id,
        secret: vec![7; 32],
        created_at: NOW,
    };
    a.insert_signing_key(&key(1)).await.unwrap();
    a.insert_signing_key(&key(2)).await.unwrap();
    assert!(vaultplus_conformance::catalog::next_change(&mut on_b).await);
    // Both inserts may have been seen already; wait for quiet, then retire.
    tokio::time::sleep(Duration::from_millis(300)).await;
    on_b.borrow_and_update();
    assert!(!on_b.has_changed().unwrap(), "no change, no tick");
    assert!(a.delete_signing_key(1).await.unwrap());
    assert!(vaultplus_conformance::catalog::next_change(&mut on_b).await);
    let ids: Vec<i64> = b
        .signing_keys()
        .await
        .unwrap()
        .iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, [2], "what the tick announces is visible to node B");

    // The listener's connection dies (a failover, a restart): node B hears
    // of it (it may have missed notifications) and listens again.
    let mut admin = PgConnection::connect(&url).await.unwrap();
    on_b.borrow_and_update();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(killed >= 1, "the listener's session was found");
    assert!(
        vaultplus_conformance::catalog::next_change(&mut on_b).await,
        "a lost listener ticks"
    );
    // Once it listens again, changes are heard again.
    let mut heard = false;
    for id in 3..40 {
        on_b.borrow_and_update();
        a.insert_signing_key(&key(id)).await.unwrap();
        if tokio::time::timeout(Duration::from_millis(500), on_b.changed())
            .await
            .is_ok()
        {
            heard = true;
            break;
        }
    }
    assert!(heard, "notifications reach node B after it reconnected");
}

/// Storing workers on both nodes race with list syncs, deletes, evictions
/// and purges on one connection. Nothing may fail (a deadlock that outlived
/// its retries would), and every counter must equal a recount afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_jobs_and_syncs_keep_counters_exact() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (a, b) = two_nodes().await;
    let (org, id) = org_and_conn(a.as_ref()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let stored = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let listing = |from: u64| -> Vec<ObservedMedia> {
        (from..from + 30)
            .map(|i| observed(&i.to_string()))
            .collect()
    };

    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let c = if w % 2 == 0 { a.clone() } else { b.clone() };
            let (stop, stored) = (stop.clone(), stored.clone());
            tokio::spawn(async move {
                let owner = format!("w{w}");
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let jobs = c.claim_jobs(&owner, 3, NOW + 60_000, NOW).await.unwrap();
                    if jobs.is_empty() {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    for job in jobs {
                        n += 1;
                        match n % 5 {
                            0 => c
                                .retry_job(job.id, &owner, "later", NOW, true)
                                .await
                                .unwrap(),
                            1 => c.fail_job(job.id, &owner, "gone", NOW).await.unwrap(),
                            _ => {
                                let blob = vaultplus::catalog::FetchedBlob {
                                    blob_key: format!("{}/{}", job.scope_id, uuid::Uuid::new_v4()),
                                    content_type: "image/jpeg".into(),
                                    size_bytes: 50 + n,
                                    checksum: "11".repeat(32),
                                };
                                c.begin_upload(job.scope_id, &blob.blob_key, NOW)
                                    .await
                                    .unwrap();
                                let out = c
                                    .complete_job(&job, &owner, &blob, None, NOW)
                                    .await
                                    .unwrap();
                                if matches!(out, CommitOutcome::Created(_)) {
                                    stored.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let syncers: Vec<_> = (0..2u64)
        .map(|s| {
            let c = if s == 0 { a.clone() } else { b.clone() };
            let (id, stop) = (id.clone(), stop.clone());
            tokio::spawn(async move {
                let mut round = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let scope = current_scope(c.as_ref(), org, &id).await;
                    let items = listing(1 + (round % 3) * 10);
                    round += 1;
                    let mode = if s == 0 {
                        ListMode::Sync
                    } else {
                        ListMode::Add
                    };
                    c.apply_list(scope, &format!("l{s}"), mode, &items, NOW)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let others = {
        let (c, id, stop) = (b.clone(), id.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let scope = current_scope(c.as_ref(), org, &id).await;
                let media = MediaId::parse(&(1 + n % 50).to_string()).unwrap();
                c.delete_media(scope, &media).await.unwrap();
                c.evict_expired(scope, Some(i64::MAX), None, 2, NOW)
                    .await
                    .unwrap();
                if n.is_multiple_of(10) {
                    c.purge_connection(org, &id, NOW).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for t in workers.into_iter().chain(syncers).chain([others]) {
        t.await.unwrap();
    }
    assert!(
        stored.load(Ordering::SeqCst) > 0,
        "workers stored something"
    );
    for audit in a.audit_scopes().await.unwrap() {
        assert_eq!(audit.counters, audit.actual, "counters match a recount");
    }
    // No variant is left in flight without a job that will finish it (a
    // failure racing a sync must not be overwritten by the sync).
    let scope = current_scope(a.as_ref(), org, &id).await;
    let live_jobs: HashSet<(String, String)> = all_jobs(a.as_ref(), scope, false)
        .await
        .into_iter()
        .filter(|j| j.failed_at.is_none())
        .map(|j| (j.media_id, j.label))
        .collect();
    let ids: Vec<MediaId> = (1..=60)
        .map(|i| MediaId::parse(&i.to_string()).unwrap())
        .collect();
    for m in a.media(scope, &ids).await.unwrap() {
        for v in &m.variants {
            if matches!(v.status, VariantStatus::Pending | VariantStatus::Storing) {
                assert!(
                    live_jobs.contains(&(m.media_id.clone(), v.label.clone())),
                    "{} {} is {:?} with no live job",
                    m.media_id,
                    v.label,
                    v.status
                );
            }
        }
    }
    while a.drain_retired_scope(100).await.unwrap() > 0 {}
    let backlog = a.reclaim_backlog().await.unwrap();
    assert_eq!((backlog.retired_scopes, backlog.retired_variants), (0, 0));
}

/// Nodes draining the blob reclaim queue at once get disjoint batches; a
/// batch not forgotten comes back once its claim runs out.
#[tokio::test]
async fn nodes_claim_disjoint_blob_deletions() {
    let (a, b) = two_nodes().await;
    let (org, id) = org_and_conn(a.as_ref()).await;
    let scope = current_scope(a.as_ref(), org, &id).await;
    for i in 0..40 {
        a.begin_upload(scope, &format!("{scope}/k{i:02}"), NOW)
            .await
            .unwrap();
    }
    assert_eq!(a.requeue_upload_intents(NOW + 1).await.unwrap(), 40);
    let (x, y) = tokio::join!(a.queued_blob_deletions(25), b.queued_blob_deletions(25));
    let (x, y) = (x.unwrap(), y.unwrap());
    let both: HashSet<&String> = x.iter().chain(&y).collect();
    assert_eq!(x.len() + y.len(), 40, "{x:?} {y:?}");
    assert_eq!(both.len(), 40, "no key handed to both nodes");
    assert!(a.queued_blob_deletions(25).await.unwrap().is_empty());
    a.forget_blob_deletions(&x).await.unwrap();
    assert_eq!(
        a.reclaim_backlog().await.unwrap().queued_blobs,
        y.len() as u64
    );
}

/// A catalog whose connection holds the plan tests' 20,000 items, analyzed.
async fn loaded() -> (PostgresCatalog, vaultplus::catalog::ScopeId) {
    use vaultplus_conformance::plans;

    let url = new_database().await;
    let catalog = PostgresCatalog::connect(&url, 4).await.unwrap();
    let scope = plans::connection_scope(&catalog).await;
    let mut db = PgConnection::connect(&url).await.unwrap();
    for statement in plans::load_statements(scope, 20_000) {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut db)
            .await
            .unwrap();
    }
    // What autovacuum does shortly after a load this size.
    sqlx::query("ANALYZE").execute(&mut db).await.unwrap();
    (catalog, scope)
}

/// Every media query shape on a loaded, analyzed connection: PostgreSQL's
/// own plan neither scans nor sorts the connection's rows
/// (`docs/query-plans.md`).
#[tokio::test]
async fn media_query_plans_are_bounded() {
    use vaultplus_conformance::plans;

    let (catalog, scope) = loaded().await;
    for (name, q) in plans::shapes() {
        let explained = catalog.explain_media_query(scope, &q).await.unwrap();
        if std::env::var_os("VAULTPLUS_PRINT_PLANS").is_some() {
            eprintln!("{}", plans::describe(&name, &explained));
        }
        plans::assert_postgres_plan(&name, &explained);
    }
}

/// The reads of one request (single item, batch of 100, status) and
/// `media` on a loaded, analyzed connection: PostgreSQL neither scans nor
/// sorts the connection's rows.
#[tokio::test]
async fn request_read_plans_are_bounded() {
    use vaultplus_conformance::plans;

    let (catalog, scope) = loaded().await;
    let (org, id) = plans::connection_key(&catalog).await;
    for n in [1, 100] {
        let ids = plans::batch_ids(20_000, n);
        let name = format!("{n} IDs");
        for (sql, lines) in catalog
            .explain_request_reads("0011223344556677", org, &id, &ids)
            .await
            .unwrap()
        {
            if std::env::var_os("VAULTPLUS_PRINT_PLANS").is_some() {
                eprintln!("{name}: {sql}\n    {}", lines.join("\n    "));
            }
            plans::assert_postgres_lookup(&name, &sql, &lines);
        }
        let lines = catalog.explain_media(scope, &ids).await.unwrap();
        plans::assert_postgres_lookup(&name, "media", &lines);
    }
}
