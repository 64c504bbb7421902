//! The catalog conformance suite: behaviour every [`Catalog`] backend must
//! show, written against the trait only. A backend runs it with
//! [`catalog_conformance!`](crate::catalog_conformance), giving a factory
//! for a fresh, empty catalog.

use std::any::Any;
use std::sync::Arc;

use vaultplus::catalog::derive::totals_of;
use vaultplus::catalog::*;
use vaultplus::model::list_plan::{ListCounts, ListMode};
use vaultplus::model::observed::{ObservedMedia, ObservedVariant, Origin};
use vaultplus::model::{
    ConnectionId, KeyScope, Label, MediaId, MediaType, VariantStatus, VaultPlusSettings,
};

/// A fresh catalog and whatever must live as long as it (a temp dir, a
/// throwaway database).
pub struct Fixture {
    pub catalog: Arc<dyn Catalog>,
    _guard: Box<dyn Any + Send>,
}

impl Fixture {
    pub fn new(catalog: Arc<dyn Catalog>, guard: impl Any + Send) -> Self {
        Self {
            catalog,
            _guard: Box::new(guard),
        }
    }
}

/// Instantiates every conformance test for a backend. `$make` is an async
/// expression yielding a [`Fixture`]. Every test of this file must be
/// named here; `registration::every_catalog_test_is_registered_once` fails
/// on one that is not.
#[macro_export]
macro_rules! catalog_conformance {
    ($make:expr) => {
        $crate::catalog_conformance!(@tests $make;
            orgs_are_created_once, api_keys_round_trip, signing_keys_insert_once,
            signing_secrets_are_replaced_only_if_unchanged,
            connections_are_per_org, connection_settings_change,
            upload_commit_creates_and_replaces, commit_after_purge_is_refused,
            purge_is_exact_and_idempotent, purge_hides_everything_at_once,
            store_totals_sum_every_current_scope,
            delete_media_is_exact, query_filters, query_sorts_and_pages, every_plan_pages_in_sort_order,
            keyset_is_stable_under_changes, access_counts_add_up,
            reclaim_drains_retired_scopes, upload_intents_are_requeued,
            remove_connection_purges, org_settings_push_clears_overrides,
            totals_match_records, list_add_and_sync_follow_the_plan,
            jobs_are_leased_once, job_counts_follow_leases_and_failures,
            job_outcomes_update_variants, group_commit_answers_each_member,
            group_commit_spans_scopes_and_limits, a_batch_committed_twice_keeps_its_blobs,
            thumbnails_wait_for_their_source,
            job_commit_after_purge_is_refused, queue_variant_revives_known_variants,
            storage_limits_evict_or_block, failed_deletions_wait_behind_the_rest,
            list_members_page_through_changes, jobs_page_through_changes,
            list_runs_page_like_one_plan, big_list_pages_record_every_item_once,
            generations_follow_the_stored_bytes,
            org_rate_limit_round_trips, signing_key_changes_are_watched,
            request_reads_answer_like_separate_reads,
            webhook_endpoints_are_per_org, the_outbox_is_written_with_its_change,
            webhook_deliveries_retry_then_disable_their_endpoint,
            syncs_and_given_up_variants_write_their_events,
            a_storage_limit_eviction_writes_its_event,
            receipts_finish_when_their_blobs_are_gone, receipt_keys_insert_once);
    };
    // Behaviour only an embedded (single-server) catalog shows.
    (embedded $make:expr) => {
        $crate::catalog_conformance!(@tests $make; release_all_leases_ends_every_lease);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let fixture = $make.await;
                $crate::catalog::$name(fixture.catalog.clone()).await;
            }
        )*
    };
}

const NOW: i64 = 1_800_000_000_000;

fn mid(s: &str) -> MediaId {
    MediaId::parse(s).unwrap()
}

async fn org(c: &dyn Catalog, name: &str) -> Org {
    let name = vaultplus::model::OrgName::parse(name).unwrap();
    c.ensure_org(&name, &VaultPlusSettings::default(), true, NOW)
        .await
        .unwrap()
        .0
}

async fn conn(c: &dyn Catalog, org: OrgId, id: &str) -> Connection {
    let id = ConnectionId::parse(id).unwrap();
    c.insert_connection(org, &id, true, NOW).await.unwrap();
    c.connection(org, &id).await.unwrap().unwrap()
}

async fn current_scope(c: &dyn Catalog, org: OrgId, id: &str) -> ScopeId {
    c.connection(org, &ConnectionId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap()
        .scope_id
}

/// One variant to store through the upload path.
struct Put<'a> {
    media: &'a str,
    label: &'a str,
    content_type: &'a str,
    size: u64,
    at: i64,
    duration: Option<f64>,
    limit: Option<vaultplus::model::settings::StorageLimit>,
}

/// Stores a variant through the upload path, as the service does.
async fn put(c: &dyn Catalog, scope: ScopeId, p: Put<'_>) -> CommitOutcome {
    let key = format!("{scope}/{}", uuid::Uuid::new_v4().simple());
    c.begin_upload(scope, &key, p.at).await.unwrap();
    c.commit_upload(&NewStoredVariant {
        scope_id: scope,
        media_id: mid(p.media),
        label: p.label.into(),
        content_type: p.content_type.into(),
        size_bytes: p.size,
        checksum: "00".repeat(32),
        blob_key: key,
        duration: p.duration,
        now: p.at,
        limit: p.limit,
    })
    .await
    .unwrap()
}

async fn store(
    c: &dyn Catalog,
    scope: ScopeId,
    media: &str,
    label: &str,
    content_type: &str,
    size: u64,
    at: i64,
) -> CommitOutcome {
    let p = Put {
        media,
        label,
        content_type,
        size,
        at,
        duration: None,
        limit: None,
    };
    put(c, scope, p).await
}

async fn store_with_duration(c: &dyn Catalog, scope: ScopeId, media: &str, d: f64, at: i64) {
    let p = Put {
        media,
        label: "full",
        content_type: "video/mp4",
        size: 10,
        at,
        duration: Some(d),
        limit: None,
    };
    put(c, scope, p).await;
}

fn query(limit: u32) -> MediaQuery {
    MediaQuery {
        limit,
        ..MediaQuery::default()
    }
}

async fn all_ids(c: &dyn Catalog, scope: ScopeId, mut q: MediaQuery) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let page = c.query_media(scope, &q).await.unwrap();
        ids.extend(page.items.iter().map(|m| m.media_id.clone()));
        match page.next {
            Some(k) => q.after = Some(k),
            None => return ids,
        }
    }
}

/// Every job of the scope (or its failed ones), paging through.
pub async fn all_jobs(c: &dyn Catalog, scope: ScopeId, failed_only: bool) -> Vec<JobRecord> {
    let mut all = Vec::new();
    let mut page = PageRequest::first(paging::MAX_PAGE);
    loop {
        let got = c.jobs(scope, failed_only, &page).await.unwrap();
        all.extend(got.items);
        match got.next {
            Some(k) => page.after = Some(k),
            None => return all,
        }
    }
}

pub async fn orgs_are_created_once(c: Arc<dyn Catalog>) {
    let name = vaultplus::model::OrgName::parse("acme").unwrap();
    let (a, created) = c
        .ensure_org(&name, &VaultPlusSettings::default(), true, NOW)
        .await
        .unwrap();
    assert!(created);
    let (b, created_again) = c
        .ensure_org(&name, &VaultPlusSettings::default(), false, NOW)
        .await
        .unwrap();
    assert!(!created_again);
    assert_eq!(a, b);
    assert_eq!(c.org_by_name(&name).await.unwrap(), Some(a.clone()));
    assert_eq!(c.org(a.id).await.unwrap(), Some(a));
    assert_eq!(c.list_orgs().await.unwrap().len(), 1);
}

/// An ACCOUNT and LINK key of `org`, as the key tests store it.
fn test_key(org: OrgId) -> ApiKeyRecord {
    ApiKeyRecord {
        id: "0011223344556677".into(),
        org_id: org,
        secret_hash: vec![7; 32],
        scopes: vec![KeyScope::Account, KeyScope::Link],
        created_at: NOW,
        revoked_at: None,
    }
}

pub async fn api_keys_round_trip(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "acme").await;
    let other = org(c.as_ref(), "other").await;
    let key = test_key(o.id);
    c.insert_api_key(&key).await.unwrap();
    assert_eq!(c.api_key(&key.id).await.unwrap(), Some(key.clone()));
    assert_eq!(c.api_key("ffffffffffffffff").await.unwrap(), None);
    assert_eq!(c.list_api_keys(Some(o.id)).await.unwrap().len(), 1);
    assert!(c.list_api_keys(Some(other.id)).await.unwrap().is_empty());
    assert!(c.revoke_api_key(&key.id, NOW + 1).await.unwrap());
    assert!(!c.revoke_api_key(&key.id, NOW + 2).await.unwrap());
    assert_eq!(
        c.api_key(&key.id).await.unwrap().unwrap().revoked_at,
        Some(NOW + 1)
    );
}

pub async fn signing_keys_insert_once(c: Arc<dyn Catalog>) {
    let k = SigningKeyRecord {
        id: 1,
        secret: vec![1; 32],
        created_at: NOW,
    };
    assert!(c.insert_signing_key(&k).await.unwrap());
    let mut other = k.clone();
    other.secret = vec![2; 32];
    assert!(!c.insert_signing_key(&other).await.unwrap());
    assert_eq!(c.signing_keys().await.unwrap(), vec![k.clone()]);
    let newer = SigningKeyRecord {
        id: 2,
        secret: vec![3; 32],
        created_at: NOW + 1,
    };
    assert!(c.insert_signing_key(&newer).await.unwrap());
    assert_eq!(
        c.signing_keys().await.unwrap(),
        vec![k, newer.clone()],
        "ordered by ID"
    );
    assert!(c.delete_signing_key(1).await.unwrap());
    assert!(!c.delete_signing_key(1).await.unwrap());
    assert_eq!(c.signing_keys().await.unwrap(), vec![newer]);
}

pub async fn signing_secrets_are_replaced_only_if_unchanged(c: Arc<dyn Catalog>) {
    let k = SigningKeyRecord {
        id: 1,
        secret: vec![1; 32],
        created_at: NOW,
    };
    assert!(c.insert_signing_key(&k).await.unwrap());
    let sealed = vec![9; 76];
    // Not what the row holds: nothing changes.
    assert!(
        !c.replace_signing_secret(1, &[2; 32], &sealed)
            .await
            .unwrap()
    );
    assert!(
        !c.replace_signing_secret(5, &[1; 32], &sealed)
            .await
            .unwrap()
    );
    assert_eq!(c.signing_keys().await.unwrap(), vec![k.clone()]);
    assert!(
        c.replace_signing_secret(1, &[1; 32], &sealed)
            .await
            .unwrap()
    );
    assert_eq!(
        c.signing_keys().await.unwrap(),
        vec![SigningKeyRecord {
            secret: sealed.clone(),
            ..k
        }]
    );
    // A second replace of the same old value finds it gone.
    assert!(
        !c.replace_signing_secret(1, &[1; 32], &[3; 76])
            .await
            .unwrap()
    );
}

pub async fn connections_are_per_org(c: Arc<dyn Catalog>) {
    let a = org(c.as_ref(), "a").await;
    let b = org(c.as_ref(), "b").await;
    let id = ConnectionId::parse("conn_x").unwrap();
    assert!(c.insert_connection(a.id, &id, true, NOW).await.unwrap());
    assert!(!c.insert_connection(a.id, &id, false, NOW).await.unwrap());
    assert!(c.insert_connection(b.id, &id, false, NOW).await.unwrap());
    let ca = c.connection(a.id, &id).await.unwrap().unwrap();
    let cb = c.connection(b.id, &id).await.unwrap().unwrap();
    assert!(ca.enabled && !cb.enabled);
    assert_ne!(ca.scope_id, cb.scope_id, "tenants never share a scope");
    for i in 0..5 {
        conn(c.as_ref(), a.id, &format!("conn_{i}")).await;
    }
    let first = c.list_connections(a.id, 0, 4).await.unwrap();
    let rest = c.list_connections(a.id, 4, 4).await.unwrap();
    assert_eq!((first.len(), rest.len()), (4, 2));
    assert_eq!(c.org_totals(a.id).await.unwrap().connections, 6);
    assert_eq!(c.org_totals(b.id).await.unwrap().enabled_connections, 0);
}

pub async fn connection_settings_change(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let before = conn(c.as_ref(), o.id, "conn_a").await;
    let id = ConnectionId::parse("conn_a").unwrap();
    let patch: vaultplus::model::SettingsPatch =
        serde_json::from_str(r#"{"retentionDays":5}"#).unwrap();
    let change = ConnectionChange {
        enabled: Some(false),
        overrides: Some(Some(patch.clone())),
        purge: false,
    };
    let (after, purged) = c
        .update_connection(o.id, &id, &change, NOW + 1)
        .await
        .unwrap()
        .unwrap();
    assert!(purged.is_none());
    assert!(!after.enabled);
    assert_eq!(after.overrides, Some(patch));
    assert_eq!(after.scope_id, before.scope_id);
    let reset = ConnectionChange {
        overrides: Some(None),
        purge: true,
        ..ConnectionChange::default()
    };
    let (after, purged) = c
        .update_connection(o.id, &id, &reset, NOW + 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.overrides, None);
    let purged = purged.expect("purged");
    assert_eq!((purged.purged_count, purged.freed_bytes), (0, 0));
    assert!(purged.receipt.is_some(), "a purge has its receipt");
    assert_ne!(after.scope_id, before.scope_id);
    let missing = ConnectionId::parse("conn_missing").unwrap();
    assert!(
        c.update_connection(o.id, &missing, &reset, NOW)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn upload_commit_creates_and_replaces(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    let CommitOutcome::Created(v) =
        store(c.as_ref(), scope, "42", "full", "image/png", 100, NOW).await
    else {
        panic!("first commit creates");
    };
    assert_eq!(
        (v.status, v.size_bytes, v.stored_at),
        (VariantStatus::Stored, 100, Some(NOW))
    );
    let old_key = v.blob_key.clone().unwrap();
    store(c.as_ref(), scope, "42", "thumb", "image/jpeg", 10, NOW + 5).await;
    let replaced = store(c.as_ref(), scope, "42", "full", "image/png", 300, NOW + 10).await;
    let CommitOutcome::Replaced(v2) = replaced else {
        panic!("second commit of a label replaces");
    };
    assert_eq!(
        v2.created_at, NOW,
        "a replaced variant keeps its creation time"
    );
    assert_eq!(c.queued_blob_deletions(10).await.unwrap(), vec![old_key]);
    let t = c.scope_totals(scope).await.unwrap();
    assert_eq!(
        t,
        ScopeTotals {
            live_count: 2,
            stored_count: 2,
            stored_bytes: 310
        }
    );
    let m = c.media(scope, &[mid("42")]).await.unwrap().pop().unwrap();
    assert_eq!(m.media_type, MediaType::Image);
    assert_eq!(m.cached_at, Some(NOW + 10));
    assert_eq!(m.created_at, NOW);
    assert_eq!(m.variants.len(), 2);
    let keys = c.referenced_blob_keys().await.unwrap();
    assert_eq!(keys.len(), 3, "two live blobs and one queued");
}

pub async fn commit_after_purge_is_refused(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    let key = format!("{scope}/inflight");
    c.begin_upload(scope, &key, NOW).await.unwrap();
    let id = ConnectionId::parse("conn_a").unwrap();
    c.purge_connection(o.id, &id, NOW + 1)
        .await
        .unwrap()
        .unwrap();
    let out = c
        .commit_upload(&NewStoredVariant {
            scope_id: scope,
            media_id: mid("1"),
            label: "full".into(),
            content_type: "image/png".into(),
            size_bytes: 5,
            checksum: "00".repeat(32),
            blob_key: key.clone(),
            duration: None,
            now: NOW + 2,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(out, CommitOutcome::ScopeRetired);
    assert!(c.queued_blob_deletions(10).await.unwrap().contains(&key));
    let fresh = current_scope(c.as_ref(), o.id, "conn_a").await;
    assert_eq!(c.scope_totals(fresh).await.unwrap(), ScopeTotals::default());
    assert!(c.media(fresh, &[mid("1")]).await.unwrap().is_empty());
}

pub async fn purge_is_exact_and_idempotent(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    let other = conn(c.as_ref(), o.id, "conn_b").await.scope_id;
    for i in 0..7 {
        store(
            c.as_ref(),
            scope,
            &i.to_string(),
            "full",
            "image/jpeg",
            1000 + i,
            NOW,
        )
        .await;
    }
    store(c.as_ref(), other, "1", "full", "image/jpeg", 5, NOW).await;
    let id = ConnectionId::parse("conn_a").unwrap();
    let p = c
        .purge_connection(o.id, &id, NOW + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p.purged_count, p.freed_bytes), (7, 7000 + 21));
    assert!(p.receipt.is_some(), "a purge has its receipt");
    let again = c
        .purge_connection(o.id, &id, NOW + 2)
        .await
        .unwrap()
        .unwrap();
    // The fresh scope held nothing; even so the purge has its own receipt.
    assert_eq!((again.purged_count, again.freed_bytes), (0, 0));
    assert!(again.receipt.is_some() && again.receipt != p.receipt);
    assert_eq!(
        c.scope_totals(other).await.unwrap().stored_bytes,
        5,
        "other connection untouched"
    );
    let missing = ConnectionId::parse("conn_zz").unwrap();
    assert!(
        c.purge_connection(o.id, &missing, NOW)
            .await
            .unwrap()
            .is_none()
    );
    let org_t = c.org_totals(o.id).await.unwrap();
    assert_eq!((org_t.live_count, org_t.stored_bytes), (1, 5));
}

pub async fn store_totals_sum_every_current_scope(c: Arc<dyn Catalog>) {
    assert_eq!(c.store_totals().await.unwrap(), ScopeTotals::default());
    let a = org(c.as_ref(), "a").await;
    let b = org(c.as_ref(), "b").await;
    let one = conn(c.as_ref(), a.id, "conn_a").await.scope_id;
    let two = conn(c.as_ref(), b.id, "conn_b").await.scope_id;
    let gone = conn(c.as_ref(), b.id, "conn_c").await.scope_id;
    store(c.as_ref(), one, "1", "full", "image/jpeg", 10, NOW).await;
    store(c.as_ref(), one, "1", "thumb", "image/jpeg", 2, NOW).await;
    store(c.as_ref(), two, "1", "full", "image/jpeg", 100, NOW).await;
    store(c.as_ref(), gone, "1", "full", "image/jpeg", 1000, NOW).await;
    let purged = ConnectionId::parse("conn_c").unwrap();
    c.purge_connection(b.id, &purged, NOW + 1).await.unwrap();
    // A purged generation no longer counts, drained or not.
    let expected = ScopeTotals {
        live_count: 3,
        stored_count: 3,
        stored_bytes: 112,
    };
    assert_eq!(c.store_totals().await.unwrap(), expected);
}

pub async fn purge_hides_everything_at_once(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    store(c.as_ref(), scope, "9", "full", "image/jpeg", 10, NOW).await;
    let id = ConnectionId::parse("conn_a").unwrap();
    c.purge_connection(o.id, &id, NOW + 1).await.unwrap();
    // Reads against the retired scope (a request that looked the
    // connection up before the purge) see nothing either.
    assert!(c.media(scope, &[mid("9")]).await.unwrap().is_empty());
    assert!(
        c.query_media(scope, &query(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let label = Label::parse("full").unwrap();
    assert!(
        c.current_variant(scope, &mid("9"), &label)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        c.delete_media(scope, &mid("9")).await.unwrap(),
        DeleteOutcome::default()
    );
    // New media in the fresh scope is not confused with the purged one.
    let fresh = current_scope(c.as_ref(), o.id, "conn_a").await;
    store(c.as_ref(), fresh, "9", "full", "image/jpeg", 3, NOW + 2).await;
    let m = c.media(fresh, &[mid("9")]).await.unwrap().pop().unwrap();
    assert_eq!(m.variants[0].size_bytes, 3);
    assert!(
        c.current_variant(fresh, &mid("9"), &label)
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn delete_media_is_exact(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    store(c.as_ref(), scope, "5", "full", "image/jpeg", 100, NOW).await;
    store(c.as_ref(), scope, "5", "thumb", "image/jpeg", 7, NOW).await;
    store(c.as_ref(), scope, "6", "full", "image/jpeg", 1, NOW).await;
    let out = c.delete_media(scope, &mid("5")).await.unwrap();
    assert_eq!((out.removed_count, out.freed_bytes), (2, 107));
    assert!(out.receipt.is_some(), "a delete has its receipt");
    assert_eq!(
        c.delete_media(scope, &mid("5")).await.unwrap(),
        DeleteOutcome::default()
    );
    assert_eq!(c.queued_blob_deletions(10).await.unwrap().len(), 2);
    assert_eq!(
        c.scope_totals(scope).await.unwrap(),
        ScopeTotals {
            live_count: 1,
            stored_count: 1,
            stored_bytes: 1
        }
    );
}

pub async fn query_filters(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    store(c.as_ref(), scope, "1", "full", "image/jpeg", 1, NOW).await;
    store(c.as_ref(), scope, "2", "full", "image/png", 1, NOW + 1000).await;
    store_with_duration(c.as_ref(), scope, "3", 30.0, NOW + 2000).await;
    store_with_duration(c.as_ref(), scope, "4", 300.0, NOW + 3000).await;
    store(c.as_ref(), scope, "5", "full", "audio/mpeg", 1, NOW + 4000).await;
    let run = |q: MediaQuery| {
        let c = c.clone();
        async move {
            let mut ids = all_ids(c.as_ref(), scope, q).await;
            ids.sort();
            ids
        }
    };
    let q = |f: &dyn Fn(&mut MediaQuery)| {
        let mut q = query(100);
        f(&mut q);
        q
    };
    assert_eq!(
        run(q(&|q| q.media_type = Some(MediaType::Video))).await,
        ["3", "4"]
    );
    assert_eq!(
        run(q(&|q| q.content_type = Some("image/png".into()))).await,
        ["2"]
    );
    assert_eq!(run(q(&|q| q.duration_min = Some(100.0))).await, ["4"]);
    assert_eq!(run(q(&|q| q.duration_max = Some(100.0))).await, ["3"]);
    assert_eq!(
        run(q(&|q| q.created_from = Some(NOW + 1000))).await,
        ["2", "3", "4", "5"]
    );
    assert_eq!(
        run(q(&|q| q.created_to = Some(NOW + 1000))).await,
        ["1", "2"]
    );
    assert_eq!(
        run(q(&|q| q.cached_from = Some(NOW + 3000))).await,
        ["4", "5"]
    );
    assert_eq!(run(q(&|q| q.cached_to = Some(NOW))).await, ["1"]);
    assert_eq!(
        run(q(&|q| q.status = Some(VariantStatus::Stored))).await,
        ["1", "2", "3", "4", "5"]
    );
    assert!(
        run(q(&|q| q.status = Some(VariantStatus::Removed)))
            .await
            .is_empty()
    );
    assert!(
        run(q(&|q| q.status = Some(VariantStatus::Pending)))
            .await
            .is_empty()
    );
}

pub async fn query_sorts_and_pages(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    // Same creation time for 9, 10 and 100: ties break by numeric ID.
    for id in ["100", "9", "10"] {
        store(c.as_ref(), scope, id, "full", "image/jpeg", 1, NOW).await;
    }
    store_with_duration(c.as_ref(), scope, "7", 5.0, NOW + 10).await;
    store_with_duration(c.as_ref(), scope, "8", 50.0, NOW + 20).await;
    let sorted = |sort: SortKey| {
        let c = c.clone();
        async move {
            all_ids(
                c.as_ref(),
                scope,
                MediaQuery {
                    sort,
                    limit: 2,
                    ..MediaQuery::default()
                },
            )
            .await
        }
    };
    for (sort, expected) in [
        (SortKey::CreatedAtDesc, ["8", "7", "100", "10", "9"]),
        (SortKey::CreatedAtAsc, ["9", "10", "100", "7", "8"]),
        (SortKey::CachedAtDesc, ["8", "7", "100", "10", "9"]),
        (SortKey::DurationDesc, ["8", "7", "100", "10", "9"]),
        (SortKey::DurationAsc, ["7", "8", "9", "10", "100"]),
    ] {
        assert_eq!(sorted(sort).await, expected, "{sort:?}");
    }
    let one = c.query_media(scope, &query(5)).await.unwrap();
    assert!(one.next.is_none(), "no cursor on the last page");
    let two = c.query_media(scope, &query(4)).await.unwrap();
    assert!(two.next.is_some());
}

pub async fn keyset_is_stable_under_changes(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    for i in 0..20 {
        store(
            c.as_ref(),
            scope,
            &(1000 + i).to_string(),
            "full",
            "image/jpeg",
            1,
            NOW + i,
        )
        .await;
    }
    let mut q = query(5);
    let first = c.query_media(scope, &q).await.unwrap();
    let seen_first: Vec<String> = first.items.iter().map(|m| m.media_id.clone()).collect();
    // Between pages: a new item arrives at the head, one already seen and
    // one not yet seen are deleted.
    store(
        c.as_ref(),
        scope,
        "5000",
        "full",
        "image/jpeg",
        1,
        NOW + 100,
    )
    .await;
    c.delete_media(scope, &mid(&seen_first[0])).await.unwrap();
    c.delete_media(scope, &mid("1003")).await.unwrap();
    q.after = first.next;
    let rest = all_ids(c.as_ref(), scope, q).await;
    let mut all: Vec<String> = seen_first
        .iter()
        .cloned()
        .chain(rest.iter().cloned())
        .collect();
    let len = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), len, "no item repeated");
    for i in 0..20 {
        let id = (1000 + i).to_string();
        if id != "1003" {
            assert!(
                all.contains(&id),
                "item {id}, present throughout, was skipped"
            );
        }
    }
}

pub async fn access_counts_add_up(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    store(c.as_ref(), scope, "1", "full", "image/jpeg", 1, NOW).await;
    let hit = |n, at| AccessHit {
        scope_id: scope,
        media_id: "1".into(),
        label: "full".into(),
        count: n,
        last_at: at,
    };
    c.record_accesses(&[hit(3, NOW + 50)]).await.unwrap();
    c.record_accesses(&[hit(2, NOW + 20), hit(1, NOW + 70)])
        .await
        .unwrap();
    let gone = AccessHit {
        media_id: "404".into(),
        ..hit(1, NOW)
    };
    c.record_accesses(&[gone]).await.unwrap();
    let v = c
        .media(scope, &[mid("1")])
        .await
        .unwrap()
        .pop()
        .unwrap()
        .variants
        .pop()
        .unwrap();
    assert_eq!((v.access_count, v.last_accessed_at), (6, NOW + 70));
}

pub async fn reclaim_drains_retired_scopes(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    for i in 0..12 {
        store(
            c.as_ref(),
            scope,
            &i.to_string(),
            "full",
            "image/jpeg",
            10,
            NOW,
        )
        .await;
    }
    // An evicted record ("0", drained first) is neither live nor stored.
    let full = Label::parse("full").unwrap();
    c.evict_variant(scope, &mid("0"), &full, NOW).await.unwrap();
    let id = ConnectionId::parse("conn_a").unwrap();
    let purged = c
        .purge_connection(o.id, &id, NOW + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((purged.purged_count, purged.freed_bytes), (11, 110));
    let b = c.reclaim_backlog().await.unwrap();
    assert_eq!(
        (b.retired_scopes, b.retired_variants, b.retired_bytes),
        (1, 11, 110),
        "the backlog starts at the purge's answer"
    );
    // Drained in key order: "0" (evicted), "1", "10", "11", "2".
    assert_eq!(c.drain_retired_scope(5).await.unwrap(), 5);
    let b = c.reclaim_backlog().await.unwrap();
    assert_eq!(
        (b.retired_scopes, b.retired_variants, b.retired_bytes),
        (1, 7, 70),
        "what is drained leaves the backlog"
    );
    let mut rounds = 0;
    while c.drain_retired_scope(5).await.unwrap() > 0 {
        rounds += 1;
        assert!(rounds < 50, "drain terminates");
    }
    let b = c.reclaim_backlog().await.unwrap();
    assert_eq!(
        (
            b.retired_scopes,
            b.retired_variants,
            b.retired_bytes,
            b.queued_blobs
        ),
        (0, 0, 0, 12)
    );
    let keys = c.queued_blob_deletions(100).await.unwrap();
    assert_eq!(c.referenced_blob_keys().await.unwrap().len(), 12);
    c.forget_blob_deletions(&keys).await.unwrap();
    // Only the purge's receipt is left, done and waiting to be finished.
    let unfinished = ReclaimBacklog {
        unfinished_receipts: 1,
        ..ReclaimBacklog::default()
    };
    assert_eq!(c.reclaim_backlog().await.unwrap(), unfinished);
    let receipt = purged.receipt.unwrap();
    assert_eq!(c.receipts_done(10).await.unwrap(), [receipt]);
    c.finish_receipt(&receipt, "00", NOW + 2).await.unwrap();
    assert_eq!(
        c.reclaim_backlog().await.unwrap(),
        ReclaimBacklog::default()
    );
    assert!(c.referenced_blob_keys().await.unwrap().is_empty());
}

pub async fn upload_intents_are_requeued(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    c.begin_upload(scope, "1/old", NOW).await.unwrap();
    c.begin_upload(scope, "1/new", NOW + 100).await.unwrap();
    assert_eq!(c.requeue_upload_intents(NOW + 50).await.unwrap(), 1);
    assert_eq!(
        c.queued_blob_deletions(10).await.unwrap(),
        vec!["1/old".to_string()]
    );
    let keys = c.referenced_blob_keys().await.unwrap();
    assert!(
        keys.contains(&"1/new".to_string()),
        "an intent is a reference"
    );
    c.abort_upload("1/new", NOW + 200).await.unwrap();
    assert_eq!(c.reclaim_backlog().await.unwrap().queued_blobs, 2);
}

pub async fn remove_connection_purges(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    store(c.as_ref(), scope, "1", "full", "image/jpeg", 11, NOW).await;
    let id = ConnectionId::parse("conn_a").unwrap();
    let out = c
        .remove_connection(o.id, &id, NOW + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((out.purged_count, out.freed_bytes), (1, 11));
    assert!(out.receipt.is_some(), "a removal has its receipt");
    assert!(c.connection(o.id, &id).await.unwrap().is_none());
    assert!(c.remove_connection(o.id, &id, NOW).await.unwrap().is_none());
    assert!(c.media(scope, &[mid("1")]).await.unwrap().is_empty());
    assert_eq!(c.org_totals(o.id).await.unwrap(), OrgTotals::default());
    // The ID can be registered again, empty.
    assert!(c.insert_connection(o.id, &id, true, NOW + 2).await.unwrap());
    let again = current_scope(c.as_ref(), o.id, "conn_a").await;
    assert_eq!(c.scope_totals(again).await.unwrap(), ScopeTotals::default());
}

pub async fn org_settings_push_clears_overrides(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    conn(c.as_ref(), o.id, "conn_a").await;
    let id = ConnectionId::parse("conn_a").unwrap();
    let overrides: vaultplus::model::SettingsPatch =
        serde_json::from_str(r#"{"retentionDays":3,"cacheAudio":false}"#).unwrap();
    let change = ConnectionChange {
        overrides: Some(Some(overrides)),
        ..ConnectionChange::default()
    };
    c.update_connection(o.id, &id, &change, NOW).await.unwrap();
    let pushed: vaultplus::model::SettingsPatch =
        serde_json::from_str(r#"{"retentionDays":9}"#).unwrap();
    let defaults = o.default_settings.with(&pushed);
    let n = c
        .update_org_settings(o.id, false, &defaults, Some(&pushed), NOW + 1)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let after = c.org(o.id).await.unwrap().unwrap();
    assert_eq!(
        (after.auto_enable, after.default_settings.retention_days),
        (false, 9)
    );
    let conn = c.connection(o.id, &id).await.unwrap().unwrap();
    let left = conn.overrides.unwrap();
    assert_eq!((left.retention_days, left.cache_audio), (None, Some(false)));
}

pub async fn totals_match_records(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    for i in 0..30u64 {
        let media = (i % 11).to_string();
        let label = ["full", "thumb", "preview"][(i % 3) as usize];
        store(
            c.as_ref(),
            scope,
            &media,
            label,
            "image/jpeg",
            i * 13 + 1,
            NOW + i as i64,
        )
        .await;
        if i % 7 == 0 {
            c.delete_media(scope, &mid(&((i + 3) % 11).to_string()))
                .await
                .unwrap();
        }
    }
    let page = c.query_media(scope, &query(100)).await.unwrap();
    let recomputed = totals_of(page.items.iter().flat_map(|m| m.variants.iter()));
    assert_eq!(c.scope_totals(scope).await.unwrap(), recomputed);
}

fn observed(id: &str, fingerprint: &str) -> ObservedMedia {
    let v = |label: &str, store: bool| ObservedVariant {
        label: label.into(),
        origin: Origin::Upstream,
        url: Some(format!("http://up/cdn/{id}/{label}.jpg?sig=1")),
        size: Some(100),
        content_type: "image/jpeg".into(),
        store,
    };
    ObservedMedia {
        media_id: mid(id),
        media_type: MediaType::Image,
        duration: None,
        fingerprint: fingerprint.into(),
        admitted: true,
        variants: vec![v("full", true), v("preview", false)],
    }
}

pub async fn list_add_and_sync_follow_the_plan(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    let items = [observed("1", "a"), observed("2", "b"), observed("3", "c")];
    let out = c
        .apply_list(scope, "10", ListMode::Add, &items, NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((out.counts.added, out.queued), (3, 3));
    let t = c.scope_totals(scope).await.unwrap();
    assert_eq!(
        (t.live_count, t.stored_count),
        (6, 0),
        "full pending + preview edge_only"
    );
    let first = c
        .apply_list(scope, "10", ListMode::Sync, &items, NOW + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.counts.adopted, first.counts.removed, first.queued),
        (3, 0, 0)
    );
    // Item 3 also belongs to another list; 2 and 3 leave list 10; 1 changes.
    c.apply_list(scope, "20", ListMode::Add, &[observed("3", "c")], NOW + 2)
        .await
        .unwrap();
    let later = c
        .apply_list(scope, "10", ListMode::Sync, &[observed("1", "A")], NOW + 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            later.counts.updated,
            later.counts.removed,
            later.counts.unchanged,
            later.queued
        ),
        (1, 1, 0, 1)
    );
    assert!(c.media(scope, &[mid("2")]).await.unwrap().is_empty());
    assert_eq!(c.media(scope, &[mid("3")]).await.unwrap().len(), 1);
    let lists = c.lists(scope).await.unwrap();
    assert_eq!(lists.len(), 2);
    let l10 = lists.iter().find(|l| l.list_id == "10").unwrap();
    assert!(l10.has_baseline);
    assert_eq!(l10.media_count, 1);
    assert_eq!(l10.last_synced_at, Some(NOW + 3));
    let members = c
        .list_members(scope, "20", &PageRequest::first(100))
        .await
        .unwrap()
        .items;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].media.as_ref().unwrap().variants.len(), 2);
    let t = c.scope_totals(scope).await.unwrap();
    assert_eq!(t.live_count, 4, "items 1 and 3 remain, two variants each");
    // Retired scopes take their lists along.
    let id = ConnectionId::parse("conn_a").unwrap();
    c.purge_connection(o.id, &id, NOW + 4).await.unwrap();
    assert!(c.lists(scope).await.unwrap().is_empty());
    assert!(
        c.apply_list(scope, "10", ListMode::Add, &items, NOW + 5)
            .await
            .unwrap()
            .is_none()
    );
}

/// A sync of the same listing page by page: `run` applies `items` in pages
/// of `size` (a `size` of 0 is one `apply_list`).
async fn run_list(
    c: &dyn Catalog,
    scope: ScopeId,
    mode: ListMode,
    items: &[ObservedMedia],
    size: usize,
    now: i64,
) -> ListCounts {
    if size == 0 {
        let o = c.apply_list(scope, "10", mode, items, now).await.unwrap();
        return o.unwrap().counts;
    }
    let run = c.begin_list_run(scope, "10", mode, now).await.unwrap();
    let run = run.unwrap();
    let mut counts = ListCounts::default();
    for page in items.chunks(size) {
        let o = c.apply_list_page(scope, "10", &run, page, now).await;
        counts += o.unwrap().unwrap().counts;
    }
    let pages = ListOutcome { counts, queued: 0 };
    counts += c
        .finish_list_run(scope, "10", &run, &pages, now)
        .await
        .unwrap()
        .unwrap()
        .counts;
    counts
}

/// What a scope holds of list 10: its members and their variants' states.
async fn list_state(c: &dyn Catalog, scope: ScopeId) -> Vec<(String, bool, Vec<String>)> {
    let members = c.list_members(scope, "10", &PageRequest::first(100)).await;
    let mut got: Vec<_> = members
        .unwrap()
        .items
        .into_iter()
        .map(|m| {
            let v = m.media.iter().flat_map(|r| r.variants.iter());
            let v = v.map(|v| format!("{}:{}", v.label, v.status.as_str()));
            (m.media_id, m.media.is_some(), v.collect())
        })
        .collect();
    got.sort();
    got
}

/// The scope's queued jobs, as (media, label).
async fn list_jobs(c: &dyn Catalog, scope: ScopeId) -> Vec<(String, String)> {
    let page = c
        .jobs(scope, false, &PageRequest::first(100))
        .await
        .unwrap();
    let mut got: Vec<_> = page
        .items
        .into_iter()
        .map(|j| (j.media_id, j.label))
        .collect();
    got.sort();
    got
}

/// Paged runs answer and leave what one plan of the whole listing does; a
/// run that stopped after some pages (a crash) leaves nothing that the
/// next run does not converge from, and no job twice.
pub async fn list_runs_page_like_one_plan(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let one = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    let paged = conn(c.as_ref(), o.id, "conn_b").await.scope_id;
    let mut hidden = observed("5", "e");
    hidden.admitted = false;
    let start: Vec<_> = ["1", "2", "3", "4", "5", "6"]
        .map(|i| observed(i, i))
        .into();
    // 1 and 6 stay, 2 changes, 3 and 4 leave (4 is on list 20 too), 5 is
    // listed but no longer admitted, 7 is new.
    let later = vec![
        observed("1", "1"),
        observed("2", "B"),
        hidden,
        observed("6", "6"),
        observed("7", "7"),
    ];
    for (scope, size) in [(one, 0), (paged, 2)] {
        let c = c.as_ref();
        let first = run_list(c, scope, ListMode::Sync, &start, size, NOW).await;
        assert_eq!((first.seen, first.added), (6, 6));
        c.apply_list(scope, "20", ListMode::Add, &[observed("4", "4")], NOW)
            .await
            .unwrap();
        let again = run_list(c, scope, ListMode::Sync, &later, size, NOW + 1).await;
        let expected = ListCounts {
            seen: 5,
            added: 1,
            updated: 1,
            removed: 1,
            unchanged: 2,
            adopted: 0,
        };
        assert_eq!(again, expected, "pages of {size}");
    }
    assert_eq!(
        list_state(c.as_ref(), one).await,
        list_state(c.as_ref(), paged).await
    );
    let jobs = |s| list_jobs(c.as_ref(), s);
    assert_eq!(jobs(one).await, jobs(paged).await);
    // A run that stops after its first page, then the whole run again.
    let gone = vec![observed("1", "1"), observed("7", "X")];
    run_list(c.as_ref(), one, ListMode::Sync, &gone, 0, NOW + 2).await;
    let run = c.begin_list_run(paged, "10", ListMode::Sync, NOW + 2).await;
    let run = run.unwrap().unwrap();
    c.apply_list_page(paged, "10", &run, &gone[1..], NOW + 2)
        .await
        .unwrap();
    run_list(c.as_ref(), paged, ListMode::Sync, &gone, 1, NOW + 3).await;
    assert_eq!(
        list_state(c.as_ref(), one).await,
        list_state(c.as_ref(), paged).await
    );
    assert_eq!(jobs(one).await, jobs(paged).await);
    // A run whose scope was purged meanwhile changes nothing more.
    let id = ConnectionId::parse("conn_b").unwrap();
    c.purge_connection(o.id, &id, NOW + 4).await.unwrap();
    let page = c.apply_list_page(paged, "10", &run, &gone, NOW + 5).await;
    assert!(page.unwrap().is_none());
    let end = c
        .finish_list_run(paged, "10", &run, &ListOutcome::default(), NOW + 5)
        .await;
    assert!(end.unwrap().is_none());
}

/// A page far bigger than the upstream's (more rows than one multi-row
/// statement writes), with an item listed twice, records every item,
/// variant, job and membership once; a sync of it that changes every item
/// re-queues each once; the totals follow the records throughout.
pub async fn big_list_pages_record_every_item_once(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    let n = 1_300;
    let mut items: Vec<_> = (1..=n).map(|i| observed(&i.to_string(), "a")).collect();
    items.push(observed("7", "a"));
    let run = c.begin_list_run(scope, "10", ListMode::Sync, NOW).await;
    let run = run.unwrap().unwrap();
    let page = c.apply_list_page(scope, "10", &run, &items, NOW).await;
    let page = page.unwrap().unwrap();
    assert_eq!(page.queued, n);
    let end = c
        .finish_list_run(scope, "10", &run, &ListOutcome::default(), NOW)
        .await;
    assert_eq!(end.unwrap().unwrap().queued, 0);
    let t = c.scope_totals(scope).await.unwrap();
    assert_eq!((t.live_count, t.stored_count), (2 * n, 0));
    let jobs = c.job_counts(NOW).await.unwrap();
    assert_eq!(jobs.waiting, n as i64);
    let lists = c.lists(scope).await.unwrap();
    assert_eq!(lists[0].media_count, n);
    let some = c.media(scope, &[mid("1"), mid("7"), mid("1300")]).await;
    let some = some.unwrap();
    assert_eq!(some.len(), 3);
    assert!(some.iter().all(|m| m.variants.len() == 2));
    // Every item changes: each is removed and queued again, once.
    let changed: Vec<_> = (1..=n).map(|i| observed(&i.to_string(), "b")).collect();
    let run = c.begin_list_run(scope, "10", ListMode::Sync, NOW + 1).await;
    let run = run.unwrap().unwrap();
    let page = c
        .apply_list_page(scope, "10", &run, &changed, NOW + 1)
        .await;
    let page = page.unwrap().unwrap();
    assert_eq!((page.counts.updated, page.queued), (n, n));
    c.finish_list_run(scope, "10", &run, &ListOutcome::default(), NOW + 1)
        .await
        .unwrap();
    let t = c.scope_totals(scope).await.unwrap();
    assert_eq!(t.live_count, 2 * n);
    assert_eq!(c.job_counts(NOW + 1).await.unwrap().waiting, n as i64);
}

async fn queued_scope(c: &dyn Catalog, n: usize) -> (Org, ScopeId) {
    let o = org(c, "a").await;
    let scope = conn(c, o.id, "conn_a").await.scope_id;
    let items: Vec<_> = (0..n)
        .map(|i| observed(&(i + 1).to_string(), "f"))
        .collect();
    c.apply_list(scope, "10", ListMode::Add, &items, NOW)
        .await
        .unwrap();
    (o, scope)
}

fn fetched(scope: ScopeId, size: u64) -> FetchedBlob {
    FetchedBlob {
        blob_key: format!("{scope}/{}", uuid::Uuid::new_v4().simple()),
        content_type: "image/png".into(),
        size_bytes: size,
        checksum: "11".repeat(32),
    }
}

pub async fn jobs_are_leased_once(c: Arc<dyn Catalog>) {
    let (_, scope) = queued_scope(c.as_ref(), 3).await;
    let a = c.claim_jobs("w1", 2, NOW + 1000, NOW).await.unwrap();
    let b = c.claim_jobs("w2", 10, NOW + 1000, NOW).await.unwrap();
    assert_eq!(
        (a.len(), b.len()),
        (2, 1),
        "a leased job is not claimed again"
    );
    assert!(
        c.claim_jobs("w3", 10, NOW + 1000, NOW + 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(a[0].scope_id, scope);
    assert_eq!(a[0].upstream_size, Some(100));
    assert_eq!(a[0].list_hint.as_deref(), Some("10"));
    let v = c
        .current_variant(scope, &mid(&a[0].media_id), &Label::parse("full").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.status, VariantStatus::Storing);
    // A lease that is extended holds; one that lapses passes to another.
    assert!(c.extend_lease(a[0].id, "w1", NOW + 5000).await.unwrap());
    assert!(!c.extend_lease(a[0].id, "w2", NOW + 5000).await.unwrap());
    let taken = c
        .claim_jobs("w3", 10, NOW + 9000, NOW + 2000)
        .await
        .unwrap();
    assert_eq!(
        taken.iter().map(|j| j.id).collect::<Vec<_>>().len(),
        2,
        "w1's second and w2's job lapsed"
    );
    assert!(c.next_job_due().await.unwrap().is_some());
}

pub async fn job_counts_follow_leases_and_failures(c: Arc<dyn Catalog>) {
    let counts = |w, r, f| JobCounts {
        waiting: w,
        running: r,
        failed: f,
    };
    assert_eq!(c.job_counts(NOW).await.unwrap(), counts(0, 0, 0));
    queued_scope(c.as_ref(), 3).await;
    assert_eq!(c.job_counts(NOW).await.unwrap(), counts(3, 0, 0));
    let claimed = c.claim_jobs("w1", 2, NOW + 1000, NOW).await.unwrap();
    assert_eq!(c.job_counts(NOW).await.unwrap(), counts(1, 2, 0));
    c.fail_job(claimed[0].id, "w1", "gone", NOW).await.unwrap();
    assert_eq!(c.job_counts(NOW).await.unwrap(), counts(1, 1, 1));
    // A lease that ran out is waiting for another worker.
    assert_eq!(c.job_counts(NOW + 2000).await.unwrap(), counts(2, 0, 1));
}

/// Embedded catalogs only: a single server, so at its start every lease
/// is a leftover of its previous run and can end at once. (A shared
/// catalog must not end leases other nodes still work under.)
pub async fn release_all_leases_ends_every_lease(c: Arc<dyn Catalog>) {
    queued_scope(c.as_ref(), 3).await;
    assert_eq!(
        c.claim_jobs("w1", 1, NOW + 5000, NOW).await.unwrap().len(),
        1
    );
    assert_eq!(
        c.claim_jobs("w3", 10, NOW + 9000, NOW).await.unwrap().len(),
        2
    );
    assert_eq!(c.release_all_leases().await.unwrap(), 3);
    assert_eq!(
        c.claim_jobs("w4", 10, NOW + 9000, NOW + 2000)
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(c.next_job_due().await.unwrap().is_some());
}

pub async fn job_outcomes_update_variants(c: Arc<dyn Catalog>) {
    let (_, scope) = queued_scope(c.as_ref(), 3).await;
    let jobs = c.claim_jobs("w", 10, NOW + 1000, NOW).await.unwrap();
    let by_media = |m: &str| jobs.iter().find(|j| j.media_id == m).unwrap().clone();
    let full = Label::parse("full").unwrap();
    // Stored: counters and the response's content type.
    let blob = fetched(scope, 321);
    c.begin_upload(scope, &blob.blob_key, NOW).await.unwrap();
    let out = c
        .complete_job(&by_media("1"), "w", &blob, None, NOW + 1)
        .await
        .unwrap();
    assert!(matches!(out, CommitOutcome::Created(_)));
    let v = c
        .current_variant(scope, &mid("1"), &full)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (v.status, v.size_bytes, v.content_type.as_str()),
        (VariantStatus::Stored, 321, "image/png")
    );
    assert_eq!(c.scope_totals(scope).await.unwrap().stored_bytes, 321);
    assert!(!c.referenced_blob_keys().await.unwrap().is_empty());
    // A worker that lost the job cannot commit it (the bytes it wrote under
    // its own claim's intent go to reclaim).
    let other = fetched(scope, 5);
    c.begin_upload(scope, &other.blob_key, NOW).await.unwrap();
    let out = c
        .complete_job(&by_media("2"), "intruder", &other, None, NOW)
        .await
        .unwrap();
    assert_eq!(out, CommitOutcome::Superseded);
    assert!(
        c.queued_blob_deletions(10)
            .await
            .unwrap()
            .contains(&other.blob_key)
    );
    // Retry: back to pending with the error, due later.
    c.retry_job(by_media("2").id, "w", "boom", NOW + 500, true)
        .await
        .unwrap();
    let v = c
        .current_variant(scope, &mid("2"), &full)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (v.status, v.last_error.as_deref()),
        (VariantStatus::Pending, Some("boom"))
    );
    assert!(
        c.claim_jobs("w", 10, NOW + 1000, NOW + 100)
            .await
            .unwrap()
            .is_empty()
    );
    let again = c.claim_jobs("w", 10, NOW + 2000, NOW + 600).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    // Fail: edge_only with the error, listed as failed, not claimable.
    c.fail_job(by_media("3").id, "w", "gone upstream", NOW)
        .await
        .unwrap();
    let v = c
        .current_variant(scope, &mid("3"), &full)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.status, VariantStatus::EdgeOnly);
    let failed = all_jobs(c.as_ref(), scope, true).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].last_error.as_deref(), Some("gone upstream"));
    assert_eq!(all_jobs(c.as_ref(), scope, false).await.len(), 2);
}

pub async fn group_commit_answers_each_member(c: Arc<dyn Catalog>) {
    let (_, scope) = queued_scope(c.as_ref(), 3).await;
    let mut jobs = c.claim_jobs("w", 10, NOW + 1000, NOW).await.unwrap();
    jobs.sort_by(|a, b| a.media_id.cmp(&b.media_id));
    // The claim recorded where each job writes, as upload intents.
    let referenced = c.referenced_blob_keys().await.unwrap();
    for j in &jobs {
        assert!(
            j.blob_key.starts_with(&format!("{scope}/")),
            "{}",
            j.blob_key
        );
        assert!(referenced.contains(&j.blob_key), "an intent is a reference");
    }
    let done = |i: usize, owner: &str| JobDone {
        job: jobs[i].clone(),
        owner: owner.into(),
        blob: FetchedBlob {
            blob_key: jobs[i].blob_key.clone(),
            ..fetched(scope, (i as u64 + 1) * 100)
        },
        limit: None,
    };
    let full = Label::parse("full").unwrap();
    let status = |m: &'static str| {
        let c = c.clone();
        let full = full.clone();
        async move {
            let v = c.current_variant(scope, &mid(m), &full).await.unwrap();
            v.unwrap().status
        }
    };
    assert_eq!(status("1").await, VariantStatus::Storing);
    // Each member answers for itself, in the order given; one refused
    // changes nothing of the others.
    let batch = [done(1, "intruder"), done(2, "w"), done(0, "w")];
    let out: Vec<_> = c
        .commit_jobs(&batch, NOW + 1)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(out[0], CommitOutcome::Superseded);
    assert!(matches!(&out[1], CommitOutcome::Created(v) if v.size_bytes == 300));
    assert!(matches!(&out[2], CommitOutcome::Created(v) if v.size_bytes == 100));
    assert_eq!(status("1").await, VariantStatus::Stored);
    assert_eq!(status("2").await, VariantStatus::Storing);
    assert_eq!(status("3").await, VariantStatus::Stored);
    assert_eq!(c.scope_totals(scope).await.unwrap().stored_bytes, 400);
    let queued = c.queued_blob_deletions(10).await.unwrap();
    assert!(
        queued.contains(&jobs[1].blob_key),
        "the refused blob is reclaimed"
    );
    assert_eq!(all_jobs(c.as_ref(), scope, false).await.len(), 1);
    // Aborting again while queued adds nothing to the queue.
    let backlog = c.reclaim_backlog().await.unwrap().queued_blobs;
    c.abort_upload(&jobs[1].blob_key, NOW + 2).await.unwrap();
    assert_eq!(c.reclaim_backlog().await.unwrap().queued_blobs, backlog);
}

pub async fn group_commit_spans_scopes_and_limits(c: Arc<dyn Catalog>) {
    use vaultplus::model::settings::{LimitStrategy, StorageLimit};
    let o = org(c.as_ref(), "a").await;
    let mut scopes = Vec::new();
    for name in ["conn_a", "conn_b", "conn_c"] {
        let scope = conn(c.as_ref(), o.id, name).await.scope_id;
        let items: Vec<_> = (1..=3).map(|i| observed(&i.to_string(), "f")).collect();
        c.apply_list(scope, "10", ListMode::Add, &items, NOW)
            .await
            .unwrap();
        scopes.push(scope);
    }
    let (a, b, limited) = (scopes[0], scopes[1], scopes[2]);
    let jobs = c.claim_jobs("w", 100, NOW + 1000, NOW).await.unwrap();
    assert_eq!(jobs.len(), 9);
    let block_new = StorageLimit {
        bytes: 250,
        strategy: LimitStrategy::BlockNew,
    };
    let done: Vec<JobDone> = jobs
        .iter()
        .map(|j| JobDone {
            job: j.clone(),
            owner: "w".into(),
            blob: FetchedBlob {
                blob_key: j.blob_key.clone(),
                ..fetched(j.scope_id, 100)
            },
            limit: (j.scope_id == limited).then_some(block_new),
        })
        .collect();
    let key_of = |scope: ScopeId, m: &str| {
        let d = done
            .iter()
            .find(|d| d.job.scope_id == scope && d.job.media_id == m);
        d.unwrap().blob.blob_key.clone()
    };
    // One fetch of `a` had its intent given to reclaim (a restart while it
    // was written): it must not be stored. `b` is purged meanwhile.
    c.abort_upload(&key_of(a, "2"), NOW + 1).await.unwrap();
    c.purge_connection(o.id, &ConnectionId::parse("conn_b").unwrap(), NOW + 1)
        .await
        .unwrap();
    // Given in reverse: the answers follow the order given, not the order
    // the rows are visited in.
    let batch: Vec<JobDone> = done.iter().rev().cloned().collect();
    let out: Vec<_> = c
        .commit_jobs(&batch, NOW + 2)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut created_in_limited = 0;
    for (d, o) in batch.iter().zip(&out) {
        let (scope, m) = (d.job.scope_id, d.job.media_id.as_str());
        if scope == b {
            assert_eq!(o, &CommitOutcome::ScopeRetired, "{m} of a purged scope");
        } else if scope == a && m == "2" {
            assert_eq!(o, &CommitOutcome::Superseded, "intent gone");
        } else if scope == a {
            assert!(
                matches!(o, CommitOutcome::Created(v) if v.size_bytes == 100),
                "{o:?}"
            );
        } else {
            // Under block_new at 250 bytes, the fetches of one batch count
            // the ones stored before them: two fit, the third does not.
            match o {
                CommitOutcome::Created(_) => created_in_limited += 1,
                other => assert_eq!(other, &CommitOutcome::OverLimit),
            }
        }
    }
    assert_eq!(created_in_limited, 2);
    assert_eq!(c.scope_totals(a).await.unwrap().stored_bytes, 200);
    assert_eq!(c.scope_totals(limited).await.unwrap().stored_bytes, 200);
    // Every refused blob is reclaimed; no stored one is.
    let queued = c.queued_blob_deletions(100).await.unwrap();
    for (d, o) in batch.iter().zip(&out) {
        let stored = matches!(o, CommitOutcome::Created(_));
        assert_eq!(
            queued.contains(&d.blob.blob_key),
            !stored,
            "{} {}: {o:?}",
            d.job.scope_id,
            d.job.media_id
        );
    }
    // The stored fetches' jobs are ended; the refused ones' are not (the
    // superseded one is left to its next attempt, the over-limit one to
    // its worker's answer).
    assert_eq!(all_jobs(c.as_ref(), a, false).await.len(), 1);
    assert_eq!(all_jobs(c.as_ref(), limited, false).await.len(), 1);
    let full = Label::parse("full").unwrap();
    let v = c
        .current_variant(a, &mid("3"), &full)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (v.status, v.blob_key.as_deref()),
        (VariantStatus::Stored, Some(key_of(a, "3").as_str()))
    );
}

pub async fn a_batch_committed_twice_keeps_its_blobs(c: Arc<dyn Catalog>) {
    let (_, scope) = queued_scope(c.as_ref(), 3).await;
    let jobs = c.claim_jobs("w", 10, NOW + 1000, NOW).await.unwrap();
    let batch: Vec<JobDone> = jobs
        .iter()
        .map(|j| JobDone {
            job: j.clone(),
            owner: "w".into(),
            blob: FetchedBlob {
                blob_key: j.blob_key.clone(),
                ..fetched(scope, 100)
            },
            limit: None,
        })
        .collect();
    let first = c.commit_jobs(&batch, NOW + 1).await.unwrap();
    // Again, as after a COMMIT whose answer was lost: the same answers,
    // and no stored variant's blob goes to reclaim.
    let again = c.commit_jobs(&batch, NOW + 2).await.unwrap();
    for (a, b) in first.iter().zip(&again) {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        assert!(matches!(a, CommitOutcome::Created(_)), "{a:?}");
        assert_eq!(a, b);
    }
    let queued = c.queued_blob_deletions(10).await.unwrap();
    assert!(queued.is_empty(), "{queued:?}");
    assert_eq!(c.scope_totals(scope).await.unwrap().stored_bytes, 300);
}

pub async fn thumbnails_wait_for_their_source(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    let with_thumb = |id: &str| {
        let mut m = observed(id, "f");
        let mut thumb = m.variants[0].clone();
        (thumb.label, thumb.origin, thumb.url) = ("thumb".into(), Origin::Derived, None);
        m.variants.push(thumb);
        m
    };
    let items = [with_thumb("1"), with_thumb("2")];
    c.apply_list(scope, "10", ListMode::Add, &items, NOW)
        .await
        .unwrap();
    let labels = |jobs: &[Job]| {
        let mut l: Vec<_> = jobs
            .iter()
            .map(|j| format!("{}/{}", j.media_id, j.label))
            .collect();
        l.sort();
        l
    };
    // Only the sources, however many are asked for.
    let fulls = c.claim_jobs("w", 10, NOW + 1000, NOW).await.unwrap();
    assert_eq!(labels(&fulls), ["1/full", "2/full"]);
    // A stored source frees its thumbnail; one given up frees it too (to
    // fail with a reason rather than wait forever).
    let blob = fetched(scope, 7);
    c.begin_upload(scope, &blob.blob_key, NOW).await.unwrap();
    let out = c.complete_job(&fulls[0], "w", &blob, None, NOW).await;
    assert!(matches!(out.unwrap(), CommitOutcome::Created(_)));
    c.fail_job(fulls[1].id, "w", "gone", NOW).await.unwrap();
    let thumbs = c.claim_jobs("w", 10, NOW + 1000, NOW + 1).await.unwrap();
    assert_eq!(labels(&thumbs), ["1/thumb", "2/thumb"]);
}

pub async fn job_commit_after_purge_is_refused(c: Arc<dyn Catalog>) {
    let (o, scope) = queued_scope(c.as_ref(), 1).await;
    let jobs = c.claim_jobs("w", 10, NOW + 1000, NOW).await.unwrap();
    let id = ConnectionId::parse("conn_a").unwrap();
    c.purge_connection(o.id, &id, NOW + 1).await.unwrap();
    // Written under the claim's key, which has its upload intent.
    let blob = FetchedBlob {
        blob_key: jobs[0].blob_key.clone(),
        ..fetched(scope, 9)
    };
    let out = c
        .complete_job(&jobs[0], "w", &blob, None, NOW + 2)
        .await
        .unwrap();
    assert_eq!(out, CommitOutcome::ScopeRetired);
    assert!(
        c.queued_blob_deletions(10)
            .await
            .unwrap()
            .contains(&blob.blob_key)
    );
    assert!(
        c.claim_jobs("w2", 10, NOW + 9000, NOW + 5000)
            .await
            .unwrap()
            .is_empty(),
        "jobs of a retired scope never run"
    );
}

pub async fn queue_variant_revives_known_variants(c: Arc<dyn Catalog>) {
    let (_, scope) = queued_scope(c.as_ref(), 1).await;
    let preview = Label::parse("preview").unwrap();
    assert_eq!(
        c.queue_variant(scope, &mid("1"), &preview, NOW)
            .await
            .unwrap(),
        QueueOutcome::Queued
    );
    let v = c
        .current_variant(scope, &mid("1"), &preview)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.status, VariantStatus::Pending);
    assert_eq!(
        c.queue_variant(scope, &mid("1"), &preview, NOW)
            .await
            .unwrap(),
        QueueOutcome::Queued
    );
    assert_eq!(
        all_jobs(c.as_ref(), scope, false).await.len(),
        2,
        "one job per variant"
    );
    assert_eq!(
        c.queue_variant(scope, &mid("9"), &preview, NOW)
            .await
            .unwrap(),
        QueueOutcome::Unknown
    );
    // Fresh URLs replace expired ones.
    let mut fresh = observed("1", "f");
    fresh.variants[0].url = Some("http://up/new".into());
    c.refresh_upstream_urls(scope, &[fresh]).await.unwrap();
    let full = c
        .current_variant(scope, &mid("1"), &Label::parse("full").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(full.upstream_url.as_deref(), Some("http://up/new"));
    let stored = store(c.as_ref(), scope, "1", "full", "image/jpeg", 4, NOW).await;
    assert!(matches!(stored, CommitOutcome::Replaced(_)));
    assert_eq!(
        c.queue_variant(scope, &mid("1"), &Label::parse("full").unwrap(), NOW)
            .await
            .unwrap(),
        QueueOutcome::Stored
    );
}

async fn store_limited(
    c: &dyn Catalog,
    scope: ScopeId,
    media: &str,
    size: u64,
    at: i64,
    limit: vaultplus::model::settings::StorageLimit,
) -> CommitOutcome {
    let p = Put {
        media,
        label: "full",
        content_type: "image/jpeg",
        size,
        at,
        duration: None,
        limit: Some(limit),
    };
    put(c, scope, p).await
}

pub async fn storage_limits_evict_or_block(c: Arc<dyn Catalog>) {
    use vaultplus::model::settings::{LimitStrategy, StorageLimit};
    let o = org(c.as_ref(), "a").await;
    for (n, strategy, expect_left) in [
        (0, LimitStrategy::PurgeOldest, ["2", "3", "4"]),
        (1, LimitStrategy::PurgeLargest, ["1", "3", "4"]),
        (2, LimitStrategy::PurgeSmallest, ["2", "3", "4"]),
    ] {
        let scope = conn(c.as_ref(), o.id, &format!("conn_{n}")).await.scope_id;
        let limit = StorageLimit {
            bytes: 100,
            strategy,
        };
        // Sizes 20, 40, 30 fit; 4 (size 30) pushes over: one goes.
        for (i, size) in [(1, 20), (2, 40), (3, 30)] {
            store_limited(c.as_ref(), scope, &i.to_string(), size, NOW + i, limit).await;
        }
        let out = store_limited(c.as_ref(), scope, "4", 30, NOW + 10, limit).await;
        assert!(matches!(out, CommitOutcome::Created(_)), "{strategy:?}");
        let t = c.scope_totals(scope).await.unwrap();
        assert!(t.stored_bytes <= 100, "{strategy:?}: {t:?}");
        let mut q = query(100);
        q.status = Some(VariantStatus::Stored);
        let mut left = all_ids(c.as_ref(), scope, q.clone()).await;
        left.sort();
        assert_eq!(left, expect_left, "{strategy:?}");
        // The evicted variant stays as a removed tombstone, size 0.
        q.status = Some(VariantStatus::Removed);
        let removed = c.query_media(scope, &q).await.unwrap().items;
        assert_eq!(removed.len(), 1, "{strategy:?}");
        let v = &removed[0].variants[0];
        assert_eq!(
            (v.status, v.size_bytes, v.blob_key.as_deref()),
            (VariantStatus::Removed, 0, None)
        );
        assert_eq!(c.scope_totals(scope).await.unwrap().live_count, 3);
    }
    let scope = conn(c.as_ref(), o.id, "conn_block").await.scope_id;
    let limit = StorageLimit {
        bytes: 100,
        strategy: LimitStrategy::BlockNew,
    };
    store_limited(c.as_ref(), scope, "1", 80, NOW, limit).await;
    assert_eq!(
        store_limited(c.as_ref(), scope, "2", 30, NOW, limit).await,
        CommitOutcome::OverLimit
    );
    assert_eq!(c.scope_totals(scope).await.unwrap().stored_bytes, 80);
    // Replacing a variant counts only the difference.
    assert!(matches!(
        store_limited(c.as_ref(), scope, "1", 95, NOW, limit).await,
        CommitOutcome::Replaced(_)
    ));
    let purge_oldest = StorageLimit {
        bytes: 100,
        strategy: LimitStrategy::PurgeOldest,
    };
    assert_eq!(
        store_limited(c.as_ref(), scope, "3", 101, NOW, purge_oldest).await,
        CommitOutcome::OverLimit
    );
}

pub async fn failed_deletions_wait_behind_the_rest(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    for k in ["1/a", "1/b", "1/c"] {
        c.begin_upload(scope, k, NOW).await.unwrap();
    }
    assert_eq!(c.requeue_upload_intents(NOW + 1).await.unwrap(), 3);
    let first = c.queued_blob_deletions(1).await.unwrap();
    assert_eq!(first.len(), 1);
    c.postpone_blob_deletions(&first, 60_000).await.unwrap();
    // A claimed-and-postponed key is out of reach; the others come first.
    let rest = c.queued_blob_deletions(10).await.unwrap();
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert!(!rest.contains(&first[0]));
    c.forget_blob_deletions(&rest).await.unwrap();
    assert!(c.queued_blob_deletions(10).await.unwrap().is_empty());
    assert_eq!(c.reclaim_backlog().await.unwrap().queued_blobs, 1);
}

/// Pages of list members hold at most `limit` items, end with no `next`,
/// and give every member present throughout exactly once, whatever is
/// added or removed between pages.
pub async fn list_members_page_through_changes(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    // Two batches with equal first_added_at inside each: the media ID
    // breaks the tie.
    let first: Vec<_> = (1..=7).map(|i| observed(&format!("1{i}"), "f")).collect();
    let second: Vec<_> = (1..=6).map(|i| observed(&format!("2{i}"), "f")).collect();
    c.apply_list(scope, "10", ListMode::Add, &first, NOW)
        .await
        .unwrap();
    c.apply_list(scope, "10", ListMode::Add, &second, NOW + 1)
        .await
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut page = PageRequest::first(3);
    let mut pages = 0;
    loop {
        let got = c.list_members(scope, "10", &page).await.unwrap();
        assert!(got.items.len() <= 3);
        assert!(got.items.iter().all(|m| m.media.is_some()));
        seen.extend(got.items.iter().map(|m| m.media_id.clone()));
        pages += 1;
        if pages == 1 {
            // Between pages: one member not yet reached leaves, one that
            // was already read leaves, and new members join.
            c.apply_list(scope, "10", ListMode::Sync, &first, NOW + 2)
                .await
                .unwrap();
            let mut rest: Vec<_> = first.clone();
            rest.retain(|m| m.media_id.as_str() != "11" && m.media_id.as_str() != "15");
            rest.extend(second.iter().cloned());
            rest.push(observed("31", "f"));
            c.apply_list(scope, "10", ListMode::Sync, &rest, NOW + 3)
                .await
                .unwrap();
        }
        match got.next {
            Some(k) => page.after = Some(k),
            None => break,
        }
    }
    let mut expected: Vec<String> = ["11", "12", "13", "14", "16", "17"]
        .into_iter()
        .chain(["21", "22", "23", "24", "25", "26", "31"])
        .map(String::from)
        .collect();
    // "11" was read before it left; "15" left before it was reached.
    expected.sort();
    let mut got = seen.clone();
    got.sort();
    let mut dedup = got.clone();
    dedup.dedup();
    assert_eq!(got, dedup, "no member repeated: {seen:?}");
    assert_eq!(got, expected, "no member present throughout skipped");
    // 12 members now: a page of exactly that many has no next, one fewer
    // has.
    let all = c
        .list_members(scope, "10", &PageRequest::first(12))
        .await
        .unwrap();
    assert_eq!((all.items.len(), all.next), (12, None));
    let short = c
        .list_members(scope, "10", &PageRequest::first(11))
        .await
        .unwrap();
    assert_eq!(short.items.len(), 11);
    assert!(short.next.is_some());
    let other = c
        .list_members(scope, "99", &PageRequest::first(3))
        .await
        .unwrap();
    assert_eq!((other.items.len(), other.next), (0, None));
}

/// Pages of jobs: bounded, complete, stable while jobs come and go, and
/// the failed filter pages on its own.
pub async fn jobs_page_through_changes(c: Arc<dyn Catalog>) {
    let (_, scope) = queued_scope(c.as_ref(), 8).await;
    let full = Label::parse("full").unwrap();
    let mut seen = Vec::new();
    let mut page = PageRequest::first(3);
    let mut pages = 0;
    loop {
        let got = c.jobs(scope, false, &page).await.unwrap();
        assert!(got.items.len() <= 3);
        seen.extend(
            got.items
                .iter()
                .map(|j| format!("{}/{}", j.media_id, j.label)),
        );
        pages += 1;
        if pages == 1 {
            // A job behind the cursor ends (its variant is uploaded) and
            // a new one is queued.
            store(c.as_ref(), scope, "6", "full", "image/jpeg", 5, NOW + 1).await;
            c.queue_variant(scope, &mid("1"), &Label::parse("preview").unwrap(), NOW)
                .await
                .unwrap();
        }
        match got.next {
            Some(k) => page.after = Some(k),
            None => break,
        }
    }
    assert_eq!(pages, 3, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no job repeated: {seen:?}");
    for m in ["1", "2", "3", "4", "5", "7", "8"] {
        let job = format!("{m}/full");
        assert!(seen.contains(&job), "{job} missing from {seen:?}");
    }
    assert!(
        seen.contains(&"1/preview".to_string()),
        "queued later, reached"
    );
    assert!(
        !seen.contains(&"6/full".to_string()),
        "ended before it was reached"
    );
    // Fail two: the failed filter pages through only those.
    let claimed = c.claim_jobs("w", 100, NOW + 1000, NOW + 10).await.unwrap();
    for j in claimed
        .iter()
        .filter(|j| j.media_id == "3" || j.media_id == "7")
    {
        c.fail_job(j.id, "w", "gone", NOW + 11).await.unwrap();
    }
    let first = c.jobs(scope, true, &PageRequest::first(1)).await.unwrap();
    assert_eq!(first.items.len(), 1);
    let rest = c
        .jobs(
            scope,
            true,
            &PageRequest {
                limit: 1,
                after: first.next,
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.next, None, "last page");
    let mut failed: Vec<_> = first
        .items
        .iter()
        .chain(&rest.items)
        .map(|j| j.media_id.as_str())
        .collect();
    failed.sort();
    assert_eq!(failed, ["3", "7"]);
    assert!(
        c.current_variant(scope, &mid("3"), &full)
            .await
            .unwrap()
            .is_some()
    );
}

/// A variant row's generation survives what keeps its bytes (listings,
/// storing what the upstream serves) and changes with what does not
/// (an upload, a replace, a return from eviction, a delete and re-store).
pub async fn generations_follow_the_stored_bytes(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    let full = Label::parse("full").unwrap();
    let generation = |c: Arc<dyn Catalog>| async move {
        c.current_variant(scope, &mid("1"), &Label::parse("full").unwrap())
            .await
            .unwrap()
            .map(|v| v.generation)
    };
    c.apply_list(scope, "10", ListMode::Add, &[observed("1", "f")], NOW)
        .await
        .unwrap();
    let listed = generation(c.clone()).await.unwrap();
    // Listing again, and storing the upstream bytes, keep it.
    c.apply_list(scope, "10", ListMode::Add, &[observed("1", "f")], NOW + 1)
        .await
        .unwrap();
    assert_eq!(generation(c.clone()).await, Some(listed));
    let jobs = c.claim_jobs("w", 10, NOW + 1000, NOW + 2).await.unwrap();
    let blob = fetched(scope, 10);
    c.begin_upload(scope, &blob.blob_key, NOW + 2)
        .await
        .unwrap();
    let job = jobs.iter().find(|j| j.label == "full").unwrap();
    c.complete_job(job, "w", &blob, None, NOW + 3)
        .await
        .unwrap();
    assert_eq!(
        generation(c.clone()).await,
        Some(listed),
        "stored from upstream"
    );
    // Evicted, then listed again (revived): a new one.
    c.evict_variant(scope, &mid("1"), &full, NOW + 4)
        .await
        .unwrap();
    assert_eq!(generation(c.clone()).await, None, "removed is not current");
    c.queue_variant(scope, &mid("1"), &full, NOW + 5)
        .await
        .unwrap();
    let revived = generation(c.clone()).await.unwrap();
    assert_ne!(revived, listed);
    // An upload, and a replace: each a new one.
    store(c.as_ref(), scope, "1", "full", "image/jpeg", 5, NOW + 6).await;
    let uploaded = generation(c.clone()).await.unwrap();
    assert_ne!(uploaded, revived);
    store(c.as_ref(), scope, "1", "full", "image/jpeg", 6, NOW + 7).await;
    let replaced = generation(c.clone()).await.unwrap();
    assert_ne!(replaced, uploaded);
    // Deleted and stored anew: a new one, never an earlier one.
    c.delete_media(scope, &mid("1")).await.unwrap();
    store(c.as_ref(), scope, "1", "full", "image/jpeg", 6, NOW + 8).await;
    let anew = generation(c.clone()).await.unwrap();
    for old in [listed, revived, uploaded, replaced] {
        assert_ne!(anew, old);
    }
    // Reads agree with one another.
    let m = c.media(scope, &[mid("1")]).await.unwrap();
    assert_eq!(m[0].variants[0].generation, anew);
}

pub async fn org_rate_limit_round_trips(c: Arc<dyn Catalog>) {
    let c = c.as_ref();
    let o = org(c, "limited").await;
    assert_eq!(o.rate_limit, OrgRateLimit::default(), "a new org has none");
    let set = OrgRateLimit {
        per_minute: Some(120),
        burst: None,
    };
    assert!(c.set_org_rate_limit(o.id, &set).await.unwrap());
    let after = c.org(o.id).await.unwrap().unwrap();
    assert_eq!(after.rate_limit, set);
    assert_eq!(
        after.default_settings, o.default_settings,
        "nothing else moved"
    );
    let wide = OrgRateLimit {
        per_minute: Some(u32::MAX),
        burst: Some(1),
    };
    assert!(c.set_org_rate_limit(o.id, &wide).await.unwrap());
    assert_eq!(c.org(o.id).await.unwrap().unwrap().rate_limit, wide);
    assert!(
        !c.set_org_rate_limit(o.id + 1000, &set).await.unwrap(),
        "no such org"
    );
}

/// Waits for one tick of a change watch, for a few seconds at most (the
/// promise is "within a second").
pub async fn next_change(rx: &mut ChangeWatch) -> bool {
    tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed())
        .await
        .is_ok_and(|r| r.is_ok())
}

pub async fn signing_key_changes_are_watched(c: Arc<dyn Catalog>) {
    let mut rx = c.watch_changes().await.unwrap();
    let key = |id| SigningKeyRecord {
        id,
        secret: vec![id as u8; 32],
        created_at: NOW,
    };
    assert!(c.insert_signing_key(&key(1)).await.unwrap());
    assert!(next_change(&mut rx).await, "an inserted key is signalled");
    rx.borrow_and_update();
    assert!(c.delete_signing_key(1).await.unwrap());
    assert!(next_change(&mut rx).await, "a deleted key is signalled");
}

/// Every filter under every sort, paged three at a time, against the same
/// items filtered and sorted here: whichever plan the catalog takes (a
/// walk of the sort's index, or the rows a selective filter's index
/// selects, sorted), pages hold the items in sort order, nulls last and
/// ties by ID, each once.
pub async fn every_plan_pages_in_sort_order(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    let mut ids = Vec::new();
    for i in 1..=60u32 {
        let id = (100 + i).to_string();
        // Ties in every sort column: ten creation times, seven durations.
        let at = NOW + i64::from(i % 10) * 1000;
        match i % 3 {
            0 => store_with_duration(c.as_ref(), scope, &id, f64::from(i % 7) * 10.0, at).await,
            1 => {
                let ct = if i < 8 { "image/png" } else { "image/jpeg" };
                store(c.as_ref(), scope, &id, "full", ct, 1, at).await;
            }
            _ => {
                // Never stored: no cachedAt; some videos with a duration.
                let item = if i % 4 == 0 {
                    ObservedMedia {
                        media_type: MediaType::Video,
                        duration: Some(f64::from(i % 5) * 10.0),
                        ..observed(&id, "f")
                    }
                } else {
                    observed(&id, "f")
                };
                c.apply_list(scope, "10", ListMode::Add, &[item], at)
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
        ids.push(mid(&id));
    }
    let items = c.media(scope, &ids).await.unwrap();
    assert_eq!(items.len(), 60);
    let f = |f: &dyn Fn(&mut MediaQuery)| {
        let mut q = query(3);
        f(&mut q);
        q
    };
    let shapes = [
        f(&|_| ()),
        f(&|q| q.status = Some(VariantStatus::Stored)),
        f(&|q| q.status = Some(VariantStatus::Pending)),
        f(&|q| q.status = Some(VariantStatus::EdgeOnly)),
        f(&|q| q.status = Some(VariantStatus::Removed)),
        f(&|q| q.content_type = Some("image/png".into())),
        f(&|q| q.content_type = Some("video/mp4".into())),
        f(&|q| {
            q.status = Some(VariantStatus::Stored);
            q.content_type = Some("image/png".into());
        }),
        f(&|q| q.media_type = Some(MediaType::Video)),
        f(&|q| q.media_type = Some(MediaType::Image)),
        f(&|q| q.duration_min = Some(30.0)),
        f(&|q| q.duration_max = Some(10.0)),
        f(&|q| {
            q.media_type = Some(MediaType::Video);
            q.duration_min = Some(20.0);
        }),
        f(&|q| q.created_from = Some(NOW + 8000)),
        f(&|q| {
            q.created_from = Some(NOW + 2000);
            q.created_to = Some(NOW + 6000);
        }),
        f(&|q| q.cached_to = Some(NOW + 1000)),
        f(&|q| {
            q.cached_from = Some(NOW + 3000);
            q.status = Some(VariantStatus::Stored);
        }),
    ];
    for shape in shapes {
        for sort in SortKey::ALL {
            let q = MediaQuery {
                sort,
                ..shape.clone()
            };
            let mut expected: Vec<&MediaRecord> =
                items.iter().filter(|m| matches_query(m, &q)).collect();
            expected.sort_by(|a, b| {
                let key =
                    |m: &MediaRecord| (q.sort.value_of(m), m.media_id.parse::<u64>().unwrap());
                let (ka, kb) = (key(a), key(b));
                let order = match (ka.0, kb.0) {
                    (SortValue::Int(x), SortValue::Int(y)) => x.cmp(&y),
                    (SortValue::Float(x), SortValue::Float(y)) => x.total_cmp(&y),
                    _ => unreachable!("one sort, one value kind"),
                }
                .then(ka.1.cmp(&kb.1));
                if q.sort.descending() {
                    order.reverse()
                } else {
                    order
                }
            });
            let expected: Vec<String> = expected.iter().map(|m| m.media_id.clone()).collect();
            assert_eq!(
                all_ids(c.as_ref(), scope, q.clone()).await,
                expected,
                "{q:?}"
            );
        }
    }
}

/// Whether `m` matches the query's filters: one of its variants matches
/// the variant filters (any but removed ones without a status filter).
fn matches_query(m: &MediaRecord, q: &MediaQuery) -> bool {
    let variant = m.variants.iter().any(|v| {
        q.status
            .map_or(v.status != VariantStatus::Removed, |s| v.status == s)
            && q.content_type.as_ref().is_none_or(|t| &v.content_type == t)
    });
    let within = |v: Option<f64>, lo: Option<f64>, hi: Option<f64>| {
        (lo.is_none() && hi.is_none())
            || v.is_some_and(|v| lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v <= hi))
    };
    let as_f = |v: Option<i64>| v.map(|v| v as f64);
    variant
        && q.media_type.is_none_or(|t| m.media_type == t)
        && within(m.duration, q.duration_min, q.duration_max)
        && within(
            Some(m.created_at as f64),
            as_f(q.created_from),
            as_f(q.created_to),
        )
        && within(
            m.cached_at.map(|v| v as f64),
            as_f(q.cached_from),
            as_f(q.cached_to),
        )
}

/// What the separate reads answer for a connection: the connection, its
/// org, and the items of `ids` (sorted by ID) and counters of its scope.
async fn separate_reads(
    c: &dyn Catalog,
    org: OrgId,
    id: &ConnectionId,
    ids: &[MediaId],
) -> Option<(
    ConnectionRead<Vec<MediaRecord>>,
    ConnectionRead<ScopeTotals>,
)> {
    let connection = c.connection(org, id).await.unwrap()?;
    let o = c.org(org).await.unwrap();
    let mut found = c.media(connection.scope_id, ids).await.unwrap();
    found.sort_by(|a, b| a.media_id.cmp(&b.media_id));
    let totals = c.scope_totals(connection.scope_id).await.unwrap();
    Some((
        ConnectionRead {
            connection: connection.clone(),
            org: o.clone(),
            found,
        },
        ConnectionRead {
            connection,
            org: o,
            found: totals,
        },
    ))
}

/// The same, through `RequestReads` (one statement each).
async fn request_reads(
    c: &dyn Catalog,
    org: OrgId,
    id: &ConnectionId,
    ids: &[MediaId],
) -> Option<(
    ConnectionRead<Vec<MediaRecord>>,
    ConnectionRead<ScopeTotals>,
)> {
    let media = c.connection_media(org, id, ids).await.unwrap();
    let totals = c.connection_totals(org, id).await.unwrap();
    let alone = c.connection_with_org(org, id).await.unwrap();
    assert_eq!(media.is_some(), totals.is_some());
    assert_eq!(
        alone.map(|r| (r.connection, r.org)),
        totals
            .as_ref()
            .map(|r| (r.connection.clone(), r.org.clone()))
    );
    let mut media = media?;
    media.found.sort_by(|a, b| a.media_id.cmp(&b.media_id));
    Some((media, totals?))
}

/// The one-statement reads of a request answer exactly what the separate
/// reads they replace answer: the key with its org, and, for every list of IDs (none, misses,
/// duplicates, removed variants, a full batch), connection state (disabled,
/// with overrides, purged) and tenant.
pub async fn request_reads_answer_like_separate_reads(c: Arc<dyn Catalog>) {
    let a = org(c.as_ref(), "a").await;
    let b = org(c.as_ref(), "b").await;
    let scope = conn(c.as_ref(), a.id, "conn_a").await.scope_id;
    let other = conn(c.as_ref(), b.id, "conn_a").await.scope_id;
    store(c.as_ref(), scope, "1", "full", "image/jpeg", 100, NOW).await;
    store(c.as_ref(), scope, "1", "thumb", "image/jpeg", 7, NOW + 1).await;
    store(c.as_ref(), scope, "1", "a_small", "image/webp", 3, NOW + 2).await;
    store_with_duration(c.as_ref(), scope, "2", 12.5, NOW + 3).await;
    // An evicted variant (kept as `removed`) is left out; an item whose
    // every variant is gone is left out.
    store(c.as_ref(), scope, "3", "full", "image/jpeg", 5, NOW + 4).await;
    store(c.as_ref(), scope, "3", "thumb", "image/jpeg", 1, NOW + 4).await;
    let thumb = Label::parse("thumb").unwrap();
    c.evict_variant(scope, &mid("3"), &thumb, NOW + 5)
        .await
        .unwrap();
    store(c.as_ref(), scope, "4", "full", "image/jpeg", 5, NOW + 6).await;
    c.delete_media(scope, &mid("4")).await.unwrap();
    for i in 10..110 {
        store(
            c.as_ref(),
            scope,
            &i.to_string(),
            "full",
            "image/png",
            i,
            NOW + i as i64,
        )
        .await;
    }
    store(c.as_ref(), other, "1", "full", "image/jpeg", 9, NOW).await;

    // The key with its org, as `api_key` and `org` answer them.
    let key = test_key(b.id);
    c.insert_api_key(&key).await.unwrap();
    let limit = OrgRateLimit {
        per_minute: Some(120),
        burst: Some(7),
    };
    c.set_org_rate_limit(b.id, &limit).await.unwrap();
    let expected = (key.clone(), c.org(b.id).await.unwrap());
    assert_eq!(expected.1.as_ref().unwrap().rate_limit, limit);
    assert_eq!(c.api_key_and_org(&key.id).await.unwrap(), Some(expected));
    assert_eq!(c.api_key_and_org("ffffffffffffffff").await.unwrap(), None);
    c.revoke_api_key(&key.id, NOW + 1).await.unwrap();
    let revoked = c.api_key_and_org(&key.id).await.unwrap().unwrap();
    assert_eq!(revoked.0, c.api_key(&key.id).await.unwrap().unwrap());

    let id = ConnectionId::parse("conn_a").unwrap();
    let ids = |list: &[&str]| list.iter().map(|s| mid(s)).collect::<Vec<_>>();
    let batch: Vec<MediaId> = (10..110).map(|i| mid(&i.to_string())).collect();
    let lists = [
        ids(&[]),
        ids(&["1"]),
        ids(&["99"]),
        ids(&["1", "2", "3", "4", "99"]),
        ids(&["2", "2", "1", "2"]),
        batch,
    ];
    let check = |org: OrgId, id: ConnectionId| {
        let c = c.clone();
        let lists = lists.clone();
        async move {
            for list in &lists {
                let expected = separate_reads(c.as_ref(), org, &id, list).await;
                let got = request_reads(c.as_ref(), org, &id, list).await;
                assert_eq!(got, expected, "{org} {id:?} {list:?}");
            }
        }
    };
    check(a.id, id.clone()).await;
    let (read, totals) = request_reads(c.as_ref(), a.id, &id, &ids(&["1", "3", "4"]))
        .await
        .unwrap();
    let labels: Vec<_> = read.found[0]
        .variants
        .iter()
        .map(|v| v.label.as_str())
        .collect();
    assert_eq!(labels, ["a_small", "full", "thumb"], "label order");
    assert_eq!(read.found.len(), 2, "item 4 has no live variant");
    assert_eq!(
        read.found[1].variants.len(),
        1,
        "the evicted variant is left out"
    );
    assert_eq!(totals.found.live_count, 3 + 1 + 1 + 100);
    // Another tenant's connection of the same name is its own.
    check(b.id, id.clone()).await;
    let (read, _) = request_reads(c.as_ref(), b.id, &id, &ids(&["1"]))
        .await
        .unwrap();
    assert_eq!(read.connection.scope_id, other);
    assert_eq!(read.found[0].variants[0].size_bytes, 9);
    // Unknown connections: nothing, as the separate reads answer.
    let missing = ConnectionId::parse("conn_missing").unwrap();
    assert!(
        request_reads(c.as_ref(), a.id, &missing, &ids(&["1"]))
            .await
            .is_none()
    );
    assert!(
        request_reads(c.as_ref(), 999_999, &id, &ids(&["1"]))
            .await
            .is_none()
    );

    // Disabled, with overrides: the read still answers (the caller decides).
    let patch: vaultplus::model::SettingsPatch =
        serde_json::from_str(r#"{"retentionDays":5}"#).unwrap();
    let change = ConnectionChange {
        enabled: Some(false),
        overrides: Some(Some(patch)),
        purge: false,
    };
    c.update_connection(a.id, &id, &change, NOW + 200)
        .await
        .unwrap()
        .unwrap();
    check(a.id, id.clone()).await;

    // After a purge the reads see the fresh scope only.
    c.purge_connection(a.id, &id, NOW + 300).await.unwrap();
    check(a.id, id.clone()).await;
    let (read, totals) = request_reads(c.as_ref(), a.id, &id, &ids(&["1", "2"]))
        .await
        .unwrap();
    assert_ne!(read.connection.scope_id, scope);
    assert!(read.found.is_empty());
    assert_eq!(totals.found, ScopeTotals::default());
}

fn endpoint(org: OrgId, id: &str, events: &[&str], at: i64) -> WebhookEndpoint {
    WebhookEndpoint {
        id: id.into(),
        org_id: org,
        url: format!("http://127.0.0.1:9/{id}"),
        description: None,
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        secret: id.as_bytes().to_vec(),
        previous_secret: None,
        previous_until: None,
        created_at: at,
        disabled_at: None,
        disabled_reason: None,
    }
}

/// Due deliveries claimed for a moment, as (endpoint, event type, data).
async fn outbox(c: &dyn Catalog, owner: &str, at: i64) -> Vec<(String, String, serde_json::Value)> {
    let mut out: Vec<(String, String, serde_json::Value)> = c
        .claim_webhook_deliveries(owner, 100, at + 1, at)
        .await
        .unwrap()
        .into_iter()
        .map(|d| {
            let body: serde_json::Value = serde_json::from_str(&d.payload).unwrap();
            assert_eq!(body["live"], true);
            let t = body["eventType"].as_str().unwrap().to_owned();
            (d.endpoint_id, t, body["data"].clone())
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

pub async fn webhook_endpoints_are_per_org(c: Arc<dyn Catalog>) {
    use vaultplus::model::webhook::{MEDIA_STORED, PURGE_COMPLETED};
    let (a, b) = (org(c.as_ref(), "a").await, org(c.as_ref(), "b").await);
    let e = endpoint(a.id, "whk_1", &[PURGE_COMPLETED, MEDIA_STORED], NOW);
    c.insert_webhook_endpoint(&e).await.unwrap();
    c.insert_webhook_endpoint(&endpoint(a.id, "whk_2", &[MEDIA_STORED], NOW + 1))
        .await
        .unwrap();
    let listed = c.webhook_endpoints(a.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], e, "as stored, events in the order given");
    assert!(c.webhook_endpoints(b.id).await.unwrap().is_empty());
    // Another org can neither delete nor rotate it.
    assert!(!c.delete_webhook_endpoint(b.id, "whk_1").await.unwrap());
    assert!(
        c.rotate_webhook_secret(b.id, "whk_1", b"new", NOW, NOW + 5)
            .await
            .unwrap()
            .is_none()
    );
    let rotated = c
        .rotate_webhook_secret(a.id, "whk_1", b"new", NOW, NOW + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.secret, b"new");
    assert_eq!(rotated.previous_secret.as_deref(), Some(&b"whk_1"[..]));
    assert_eq!(rotated.previous_until, Some(NOW + 5));
    assert_eq!(rotated.events, e.events);
    // While the replaced secret still signs, another rotation changes
    // nothing; once it has expired, it may.
    let again = c
        .rotate_webhook_secret(a.id, "whk_1", b"newer", NOW + 4, NOW + 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, rotated);
    let later = c
        .rotate_webhook_secret(a.id, "whk_1", b"newer", NOW + 5, NOW + 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(later.secret, b"newer");
    assert_eq!(later.previous_secret.as_deref(), Some(&b"new"[..]));
    assert!(c.delete_webhook_endpoint(a.id, "whk_1").await.unwrap());
    assert!(!c.delete_webhook_endpoint(a.id, "whk_1").await.unwrap());
    let left: Vec<String> = c
        .webhook_endpoints(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, ["whk_2"]);
}

/// Each change writes its event for the org's endpoints subscribed to its
/// type, in its own transaction; claims lease them to one owner at a time.
pub async fn the_outbox_is_written_with_its_change(c: Arc<dyn Catalog>) {
    use serde_json::json;
    use vaultplus::model::webhook::{CONNECTION_REMOVED, MEDIA_STORED, PURGE_COMPLETED};
    let (a, b) = (org(c.as_ref(), "a").await, org(c.as_ref(), "b").await);
    let purges = endpoint(a.id, "whk_p", &[PURGE_COMPLETED, CONNECTION_REMOVED], NOW);
    c.insert_webhook_endpoint(&purges).await.unwrap();
    c.insert_webhook_endpoint(&endpoint(a.id, "whk_s", &[MEDIA_STORED], NOW))
        .await
        .unwrap();
    c.insert_webhook_endpoint(&endpoint(
        b.id,
        "whk_b",
        &[PURGE_COMPLETED, MEDIA_STORED],
        NOW,
    ))
    .await
    .unwrap();
    let scope = conn(c.as_ref(), a.id, "conn_a").await.scope_id;
    conn(c.as_ref(), b.id, "conn_b").await;
    assert!(
        outbox(c.as_ref(), "x", NOW).await.is_empty(),
        "no change, no event"
    );

    store(c.as_ref(), scope, "7", "full", "image/jpeg", 11, NOW).await;
    let id = ConnectionId::parse("conn_a").unwrap();
    let p = c.purge_connection(a.id, &id, NOW).await.unwrap().unwrap();
    let r = c.remove_connection(a.id, &id, NOW).await.unwrap().unwrap();
    // Each names its erasure receipt; neither's bytes are gone yet.
    let purged = json!({"connectionId": "conn_a", "purgedCount": 1, "freedBytes": 11,
                        "receiptId": p.receipt.unwrap().to_string(), "bytesGone": false});
    let removed = json!({"connectionId": "conn_a", "purgedCount": 0, "freedBytes": 0,
                         "receiptId": r.receipt.unwrap().to_string(), "bytesGone": false});
    let got = outbox(c.as_ref(), "x", NOW).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, "whk_p");
    assert_eq!(got[0].1, CONNECTION_REMOVED);
    assert_eq!(got[0].2, removed);
    assert_eq!(
        (got[1].0.as_str(), got[1].1.as_str()),
        ("whk_p", PURGE_COMPLETED)
    );
    assert_eq!(got[1].2, purged);
    assert_eq!(
        (got[2].0.as_str(), got[2].1.as_str()),
        ("whk_s", MEDIA_STORED)
    );
    assert_eq!(got[2].2["mediaId"], "7");
    assert_eq!(got[2].2["sizeBytes"], 11);

    // Leased: nobody else gets them until the lease (NOW + 1) is over.
    assert!(outbox(c.as_ref(), "y", NOW).await.is_empty());
    assert_eq!(
        c.next_webhook_due().await.unwrap(),
        Some(NOW + 1),
        "all leased: due again when the leases run out"
    );
    let again = c
        .claim_webhook_deliveries("y", 100, NOW + 100, NOW + 2)
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    // The first owner's outcome no longer counts; the second's does.
    for d in &again {
        c.end_webhook_delivery(d.id, "x", &DeliveryEnd::Delivered, NOW + 3)
            .await
            .unwrap();
    }
    assert!(outbox(c.as_ref(), "z", NOW + 200).await.len() == 3);
    let mine = c
        .claim_webhook_deliveries("w", 100, NOW + 1000, NOW + 300)
        .await
        .unwrap();
    for d in &mine {
        assert_eq!(
            d.msg_id,
            again.iter().find(|g| g.id == d.id).unwrap().msg_id
        );
        c.end_webhook_delivery(d.id, "w", &DeliveryEnd::Delivered, NOW + 301)
            .await
            .unwrap();
    }
    assert!(outbox(c.as_ref(), "z", NOW + 2000).await.is_empty());
    assert_eq!(c.next_webhook_due().await.unwrap(), None);
}

pub async fn webhook_deliveries_retry_then_disable_their_endpoint(c: Arc<dyn Catalog>) {
    use vaultplus::model::webhook::PURGE_COMPLETED;
    let a = org(c.as_ref(), "a").await;
    c.insert_webhook_endpoint(&endpoint(a.id, "whk_1", &[PURGE_COMPLETED], NOW))
        .await
        .unwrap();
    conn(c.as_ref(), a.id, "conn_a").await;
    let id = ConnectionId::parse("conn_a").unwrap();
    for at in [NOW, NOW + 1] {
        c.purge_connection(a.id, &id, at).await.unwrap().unwrap();
    }
    let claimed = c
        .claim_webhook_deliveries("x", 1, NOW + 10, NOW + 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "at most the limit");
    let d = &claimed[0];
    assert_eq!((d.attempts, d.secret.as_slice()), (0, &b"whk_1"[..]));
    let retry = DeliveryEnd::Retry {
        next_attempt_at: NOW + 500,
        error: "the endpoint answered 500".into(),
    };
    c.end_webhook_delivery(d.id, "x", &retry, NOW + 2)
        .await
        .unwrap();
    // The other one is due now; the retried one at NOW + 500.
    assert_eq!(c.next_webhook_due().await.unwrap(), Some(NOW + 1));
    let other = c
        .claim_webhook_deliveries("x", 10, NOW + 20, NOW + 3)
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    assert_ne!(other[0].id, d.id);
    let back = c
        .claim_webhook_deliveries("y", 10, NOW + 600, NOW + 500)
        .await
        .unwrap();
    let back: Vec<_> = back.into_iter().filter(|b| b.id == d.id).collect();
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].attempts, back[0].msg_id.as_str()),
        (1, d.msg_id.as_str())
    );

    let end = DeliveryEnd::GiveUp {
        error: "the endpoint answered 500".into(),
    };
    c.end_webhook_delivery(d.id, "y", &end, NOW + 501)
        .await
        .unwrap();
    let e = &c.webhook_endpoints(a.id).await.unwrap()[0];
    assert_eq!(e.disabled_at, Some(NOW + 501));
    assert!(
        e.disabled_reason
            .as_deref()
            .unwrap()
            .contains("answered 500")
    );
    // Its other pending delivery is dropped, and new events skip it.
    c.purge_connection(a.id, &id, NOW + 502)
        .await
        .unwrap()
        .unwrap();
    assert!(outbox(c.as_ref(), "z", NOW + 10_000).await.is_empty());
    assert_eq!(c.next_webhook_due().await.unwrap(), None);
}

/// A finished sync writes `vault_plus.list.synced` with the whole sync's
/// counts (paged or not; an add writes none), and a variant given up
/// writes `vault_plus.media.failed` with its error.
pub async fn syncs_and_given_up_variants_write_their_events(c: Arc<dyn Catalog>) {
    use serde_json::json;
    use vaultplus::model::webhook::{LIST_SYNCED, MEDIA_FAILED};
    let (o, scope) = queued_scope(c.as_ref(), 2).await;
    c.insert_webhook_endpoint(&endpoint(o.id, "whk_1", &[LIST_SYNCED, MEDIA_FAILED], NOW))
        .await
        .unwrap();
    // The baseline, then a paged sync in which item 3 left (removed by
    // the finish) and 5 is new.
    let items = [observed("1", "f"), observed("3", "f")];
    run_list(c.as_ref(), scope, ListMode::Sync, &items, 0, NOW).await;
    run_list(
        c.as_ref(),
        scope,
        ListMode::Add,
        &[observed("4", "f")],
        1,
        NOW,
    )
    .await;
    let items = [observed("1", "f"), observed("5", "f")];
    let counts = run_list(c.as_ref(), scope, ListMode::Sync, &items, 1, NOW).await;
    assert_eq!((counts.seen, counts.removed), (2, 1), "{counts:?}");
    let got = outbox(c.as_ref(), "x", NOW).await;
    let synced: Vec<&serde_json::Value> = got
        .iter()
        .filter(|g| g.1 == LIST_SYNCED)
        .map(|g| &g.2)
        .collect();
    assert_eq!(synced.len(), 2, "one per sync, none for the add: {got:?}");
    let paged = json!({"connectionId": "conn_a", "listId": "10", "seen": counts.seen,
               "addedItems": counts.added, "updatedItems": counts.updated,
               "removedItems": counts.removed, "unchangedItems": counts.unchanged,
               "adoptedItems": counts.adopted});
    assert!(synced.contains(&&paged), "{synced:?} lacks {paged}");

    let jobs = c.claim_jobs("w", 1, NOW + 1000, NOW).await.unwrap();
    let media = jobs[0].media_id.clone();
    c.fail_job(jobs[0].id, "w", "gone upstream", NOW)
        .await
        .unwrap();
    let got = outbox(c.as_ref(), "y", NOW + 10).await;
    let failed: Vec<_> = got.iter().filter(|g| g.1 == MEDIA_FAILED).collect();
    assert_eq!(failed.len(), 1, "{got:?}");
    assert_eq!(
        failed[0].2,
        json!({"connectionId": "conn_a", "mediaId": media, "quality": "full",
               "error": "gone upstream"})
    );
}

/// A store that takes a connection over its limit writes
/// `vault_plus.storage.limit_reached` with what it evicted, in its own
/// transaction; a store refused under `block_new` evicts nothing and
/// writes none.
pub async fn a_storage_limit_eviction_writes_its_event(c: Arc<dyn Catalog>) {
    use serde_json::json;
    use vaultplus::model::settings::{LimitStrategy, StorageLimit};
    use vaultplus::model::webhook::STORAGE_LIMIT_REACHED;
    let o = org(c.as_ref(), "a").await;
    c.insert_webhook_endpoint(&endpoint(o.id, "whk_1", &[STORAGE_LIMIT_REACHED], NOW))
        .await
        .unwrap();
    for (n, strategy) in [
        (0, LimitStrategy::PurgeOldest),
        (1, LimitStrategy::BlockNew),
    ] {
        let scope = conn(c.as_ref(), o.id, &format!("conn_{n}")).await.scope_id;
        let limit = StorageLimit {
            bytes: 100,
            strategy,
        };
        for (i, size) in [(1, 20), (2, 40), (3, 30)] {
            store_limited(c.as_ref(), scope, &i.to_string(), size, NOW + i, limit).await;
        }
        store_limited(c.as_ref(), scope, "4", 30, NOW + 10, limit).await;
    }
    let got = outbox(c.as_ref(), "x", NOW + 10).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, STORAGE_LIMIT_REACHED);
    let receipt = got[0].2["receiptId"].as_str().unwrap().to_owned();
    assert_eq!(
        got[0].2,
        json!({"connectionId": "conn_0", "storageLimitBytes": 100, "strategy": "purge_oldest",
               "evictedCount": 1, "freedBytes": 20, "receiptId": receipt})
    );
    // The eviction has its erasure receipt, with the evicted variant's line.
    let id = ReceiptId::parse(&receipt).expect("a receipt ID");
    let r = c
        .receipt(o.id, &id)
        .await
        .unwrap()
        .expect("the eviction's receipt");
    assert_eq!(
        (r.kind.as_str(), r.connection_id.as_str()),
        ("eviction", "conn_0")
    );
    assert_eq!((r.purged_count, r.freed_bytes), (1, 20));
    let zeros = "00".repeat(32);
    assert_eq!(
        all_lines(c.as_ref(), &id).await,
        [format!("1\tfull\t{zeros}\t20")]
    );
    assert!(
        c.receipts_done(10).await.unwrap().is_empty(),
        "its blob is queued"
    );
    reclaim_all(c.as_ref()).await;
    assert_eq!(c.receipts_done(10).await.unwrap(), [id]);
}

/// Drains every retired scope and deletes every queued blob (as the
/// reclaimer does once the blob store confirmed each deletion).
async fn reclaim_all(c: &dyn Catalog) {
    while c.drain_retired_scope(2).await.unwrap() > 0 {}
    loop {
        let keys = c.queued_blob_deletions(100).await.unwrap();
        if keys.is_empty() {
            break;
        }
        c.forget_blob_deletions(&keys).await.unwrap();
    }
}

async fn all_lines(c: &dyn Catalog, id: &ReceiptId) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    loop {
        let page = c
            .receipt_lines(id, out.last().map(String::as_str), 2)
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

pub async fn receipts_finish_when_their_blobs_are_gone(c: Arc<dyn Catalog>) {
    let o = org(c.as_ref(), "a").await;
    let stranger = org(c.as_ref(), "b").await;
    let scope = conn(c.as_ref(), o.id, "conn_a").await.scope_id;
    let other = conn(c.as_ref(), o.id, "conn_b").await.scope_id;
    for (m, label, size) in [("10", "full", 5), ("9", "full", 7), ("9", "thumb", 2)] {
        store(c.as_ref(), scope, m, label, "image/jpeg", size, NOW).await;
    }
    store(c.as_ref(), other, "1", "full", "image/jpeg", 3, NOW).await;
    store(c.as_ref(), other, "1", "thumb", "image/jpeg", 1, NOW).await;
    store(c.as_ref(), other, "2", "full", "image/jpeg", 4, NOW).await;

    let a = ConnectionId::parse("conn_a").unwrap();
    let purge = c
        .purge_connection(o.id, &a, NOW + 1)
        .await
        .unwrap()
        .unwrap();
    let r = purge.receipt.expect("a purge has its receipt");
    let got = c
        .receipt(o.id, &r)
        .await
        .unwrap()
        .expect("the receipt is kept");
    assert_eq!(
        (
            got.id.clone(),
            got.kind.as_str(),
            got.connection_id.as_str()
        ),
        (r.to_string(), "purge", "conn_a")
    );
    assert_eq!(
        (got.requested_at, got.purged_count, got.freed_bytes),
        (NOW + 1, 3, 14)
    );
    assert_eq!((got.bytes_gone_at, got.digest), (None, None));
    assert_eq!(
        c.receipt(stranger.id, &r).await.unwrap(),
        None,
        "another org's"
    );
    // Not done while its scope is undrained.
    assert!(c.receipts_done(10).await.unwrap().is_empty());

    let deleted = c.delete_media(other, &mid("1")).await.unwrap();
    let d = deleted.receipt.expect("a delete has its receipt");
    // A delete's lines are written with it.
    let zeros = "00".repeat(32);
    assert_eq!(
        all_lines(c.as_ref(), &d).await,
        vec![
            format!("1\tfull\t{zeros}\t3"),
            format!("1\tthumb\t{zeros}\t1")
        ]
    );

    // Drained but its blobs still queued: not done.
    while c.drain_retired_scope(2).await.unwrap() > 0 {}
    assert!(c.receipts_done(10).await.unwrap().is_empty());
    // Lines in bytewise order: "10" before "9".
    assert_eq!(
        all_lines(c.as_ref(), &r).await,
        vec![
            format!("10\tfull\t{zeros}\t5"),
            format!("9\tfull\t{zeros}\t7"),
            format!("9\tthumb\t{zeros}\t2"),
        ]
    );
    // A blob deletion claimed but not confirmed keeps both waiting.
    let claimed = c.queued_blob_deletions(100).await.unwrap();
    assert_eq!(claimed.len(), 5);
    c.forget_blob_deletions(&claimed[..4]).await.unwrap();
    assert_eq!(c.receipts_done(10).await.unwrap().len(), 1);
    c.forget_blob_deletions(&claimed[4..]).await.unwrap();
    let mut done = c.receipts_done(10).await.unwrap();
    done.sort_by_key(|id| id.to_string());
    let mut both = vec![r, d];
    both.sort_by_key(|id| id.to_string());
    assert_eq!(done, both);

    assert!(c.finish_receipt(&r, "ab", NOW + 5).await.unwrap());
    assert!(
        !c.finish_receipt(&r, "cd", NOW + 6).await.unwrap(),
        "finished once"
    );
    let got = c.receipt(o.id, &r).await.unwrap().unwrap();
    assert_eq!(
        (got.bytes_gone_at, got.digest.as_deref()),
        (Some(NOW + 5), Some("ab"))
    );
    // Its lines go once it is finished, in batches.
    assert!(c.prune_receipt_lines(2).await.unwrap());
    assert_eq!(
        all_lines(c.as_ref(), &r).await.len(),
        1,
        "two of three gone"
    );
    assert!(c.prune_receipt_lines(2).await.unwrap());
    assert!(
        !c.prune_receipt_lines(2).await.unwrap(),
        "nothing left to prune"
    );
    assert!(
        all_lines(c.as_ref(), &r).await.is_empty(),
        "lines go once hashed"
    );
    assert_eq!(
        all_lines(c.as_ref(), &d).await.len(),
        2,
        "an unfinished one's stay"
    );
    assert_eq!(c.receipts_done(10).await.unwrap(), vec![d]);

    // A removal's receipt outlives its connection; a removal with nothing
    // stored finishes once its empty scope is drained.
    let b = ConnectionId::parse("conn_b").unwrap();
    let removed = c
        .remove_connection(o.id, &b, NOW + 7)
        .await
        .unwrap()
        .unwrap();
    let rr = removed.receipt.expect("a removal has its receipt");
    reclaim_all(c.as_ref()).await;
    let got = c.receipt(o.id, &rr).await.unwrap().unwrap();
    assert_eq!(
        (got.kind.as_str(), got.purged_count, got.freed_bytes),
        ("connection_removal", 1, 4)
    );
    assert_eq!(
        all_lines(c.as_ref(), &rr).await,
        vec![format!("2\tfull\t{zeros}\t4")]
    );
    assert!(c.receipts_done(10).await.unwrap().contains(&rr));

    // An eviction by retention has its receipt too (one per call that
    // evicted something).
    for id in c.receipts_done(10).await.unwrap() {
        c.finish_receipt(&id, "00", NOW + 8).await.unwrap();
    }
    let third = conn(c.as_ref(), o.id, "conn_c").await.scope_id;
    store(c.as_ref(), third, "5", "full", "image/jpeg", 9, NOW).await;
    store(c.as_ref(), third, "6", "full", "image/jpeg", 8, NOW + 20).await;
    let evicted = c
        .evict_expired(third, Some(NOW + 10), None, 10, NOW + 30)
        .await
        .unwrap();
    assert_eq!(evicted, (1, 9));
    assert_eq!(
        c.evict_expired(third, Some(NOW + 10), None, 10, NOW + 31)
            .await
            .unwrap(),
        (0, 0)
    );
    reclaim_all(c.as_ref()).await;
    let done = c.receipts_done(10).await.unwrap();
    assert_eq!(done.len(), 1, "one receipt, for the call that evicted");
    let got = c.receipt(o.id, &done[0]).await.unwrap().unwrap();
    assert_eq!(
        (got.kind.as_str(), got.purged_count, got.freed_bytes),
        ("eviction", 1, 9)
    );
    assert_eq!(
        all_lines(c.as_ref(), &done[0]).await,
        [format!("5\tfull\t{zeros}\t9")]
    );
}

pub async fn receipt_keys_insert_once(c: Arc<dyn Catalog>) {
    assert!(c.receipt_keys().await.unwrap().is_empty());
    let key = |id: &str, slot: i64| ReceiptKeyRecord {
        id: id.into(),
        slot,
        secret: vec![7; 32],
        created_at: NOW,
    };
    assert!(c.insert_receipt_key(&key("rk_b", 2)).await.unwrap());
    assert!(
        !c.insert_receipt_key(&key("rk_b", 3)).await.unwrap(),
        "its ID is taken"
    );
    assert!(
        !c.insert_receipt_key(&key("rk_c", 2)).await.unwrap(),
        "its slot is taken"
    );
    assert!(c.insert_receipt_key(&key("rk_a", 1)).await.unwrap());
    let ids: Vec<String> = c
        .receipt_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["rk_a", "rk_b"], "by slot");
}
