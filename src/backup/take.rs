//! `vaultplus backup`: a consistent copy of a running embedded installation,
//! taken beside its server without its lock and without pausing it.
//!
//! The catalog is copied first (one snapshot), then the blobs that copy
//! names are linked or copied from the live directory. The server keeps
//! serving and may delete a blob between the two: a variant deleted,
//! replaced or purged after the snapshot has its bytes reclaimed soon after.
//! Its blob cannot be taken back, and the snapshot still names it, so a
//! backup from that snapshot would restore a variant without its bytes
//! (which `fsck` reports). Instead the catalog is copied again, and the
//! blobs the new copy names that are not in the backup yet are linked: the
//! new copy no longer names what was deleted. Blobs placed before are kept
//! (keys are never reused, so the same key is the same bytes), so each
//! round only has the changes since the last; it ends when one copy finds
//! every blob it names. A blob missing in two rounds in a row while both
//! copies name it is not a race: the installation lost it (`fsck` says the
//! same), and the backup stops. So does a server deleting faster than the
//! rounds catch up (after [`ROUNDS`]): run the backup again, at a quieter
//! time. Either way the backup fails loudly; it never ends with a catalog
//! naming bytes it does not hold.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};

use super::files::{self, FreshDir, Placed, Placer};
use super::manifest::{CatalogFile, Manifest};
use super::{CATALOG, PARALLEL_PLACES, named_blobs, verify};
use crate::blobs::local::key_path;
use crate::catalog::sqlite::snapshot::snapshot;
use crate::model::time::{format_iso_ms, now_ms};
use crate::progress::Progress;

/// Catalog copies before a backup under heavy deletion gives up.
pub const ROUNDS: u32 = 10;

/// What a backup holds.
#[derive(Debug)]
pub struct Taken {
    pub manifest: Manifest,
    pub linked: u64,
    pub copied: u64,
    /// Catalog copies it took (1 unless blobs were deleted meanwhile).
    pub rounds: u32,
}

/// Backs up the catalog file `catalog` and the blobs under `blob_dir`
/// (the directory holding `blobs/`) into the new or empty directory `to`.
/// `source` describes them for the manifest. On failure `to` is left as it
/// was found.
pub async fn backup(
    catalog: &Path,
    blob_dir: &Path,
    to: &Path,
    source: &str,
    progress: &dyn Progress,
) -> anyhow::Result<Taken> {
    let live = blob_dir.join("blobs");
    let out = FreshDir::take(to, "--to")?;
    let copy = out.path().join(CATALOG);
    let root = out.path().join("blobs");
    let placer = Arc::new(Placer::default());
    // Every blob placed so far, with how.
    let mut placed: HashMap<String, Placed> = HashMap::new();
    let mut missed_last: Vec<String> = Vec::new();
    let mut rounds = 0;
    let (named, copied_at) = loop {
        rounds += 1;
        progress.phase("catalog", 0);
        let _ = std::fs::remove_file(&copy);
        let copied_at = now_ms();
        snapshot(catalog, &copy).await?;
        let named = named_blobs(&copy).await?;
        let todo: Vec<&str> = named
            .blobs
            .iter()
            .map(|b| b.key.as_str())
            .filter(|k| !placed.contains_key(*k))
            .collect();
        progress.phase("linking blobs", todo.len() as u64);
        let results = place_all(&placer, &live, &root, &todo, progress).await?;
        let mut missed = Vec::new();
        for (key, how) in results {
            match how {
                Placed::Missing => missed.push(key),
                how => {
                    placed.insert(key, how);
                }
            }
        }
        if missed.is_empty() {
            break (named, copied_at);
        }
        missed.sort();
        if let Some(lost) = missed.iter().find(|k| missed_last.contains(k)) {
            bail!(
                "blob {lost} is named by the catalog but missing from {}: the installation is \
                 damaged ({} blobs like it); `vaultplus fsck` reports them and `fsck --repair` \
                 marks their variants removed; then back up again",
                live.display(),
                missed.iter().filter(|k| missed_last.contains(k)).count()
            );
        }
        if rounds == ROUNDS {
            bail!(
                "the server deleted blobs faster than the backup could copy them ({} in the \
                 last of {ROUNDS} catalog copies, e.g. {}): nothing was kept; run the backup \
                 again, at a quieter time",
                missed.len(),
                missed[0]
            );
        }
        tracing::info!(
            deleted = missed.len(),
            "blobs were deleted by the server after the catalog copy; copying the catalog again"
        );
        missed_last = missed;
    };

    // Blobs placed for an earlier copy that this one no longer names.
    let keep: std::collections::HashSet<&str> =
        named.blobs.iter().map(|b| b.key.as_str()).collect();
    for key in placed.keys().filter(|k| !keep.contains(k.as_str())) {
        files::remove_blob(&key_path(&root, key)?)
            .with_context(|| format!("cannot remove blob {key} from the backup"))?;
    }
    placed.retain(|k, _| keep.contains(k.as_str()));

    verify(
        &root,
        &named.blobs,
        progress,
        "the installation's copy is damaged: `vaultplus fsck` reports it and `fsck --repair` \
         marks its variant removed; then back up again",
    )
    .await?;
    std::fs::create_dir_all(&root)?;
    files::sync_tree(out.path())?;
    let catalog_copy = copy.clone();
    let (bytes, sha256) = tokio::task::spawn_blocking(move || files::hash(&catalog_copy)).await??;
    let manifest = Manifest::new(
        format_iso_ms(copied_at),
        source.to_owned(),
        CatalogFile {
            file: CATALOG.to_owned(),
            bytes,
            sha256,
        },
        (named.variants, named.blobs.len() as u64, named.bytes),
    );
    manifest.save(out.path())?;
    out.keep();
    let linked = placed.values().filter(|p| **p == Placed::Linked).count() as u64;
    Ok(Taken {
        copied: placed.len() as u64 - linked,
        linked,
        rounds,
        manifest,
    })
}

/// Places `keys` from `live` into `root`, a few at a time.
pub(super) async fn place_all(
    placer: &Arc<Placer>,
    live: &Path,
    root: &Path,
    keys: &[&str],
    progress: &dyn Progress,
) -> anyhow::Result<Vec<(String, Placed)>> {
    futures::stream::iter(keys)
        .map(|key| {
            let placer = placer.clone();
            let paths: anyhow::Result<(PathBuf, PathBuf)> =
                key_path(live, key).and_then(|src| Ok((src, key_path(root, key)?)));
            let key = (*key).to_owned();
            async move {
                let (src, dst) = paths?;
                let how = tokio::task::spawn_blocking(move || placer.place(&src, &dst))
                    .await?
                    .with_context(|| format!("cannot place blob {key}"))?;
                progress.advance(1);
                anyhow::Ok((key, how))
            }
        })
        .buffer_unordered(PARALLEL_PLACES)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use bytes::Bytes;
    use futures::StreamExt;

    use super::*;
    use crate::backup::restore;
    use crate::blobs::{BlobStore, LocalBlobStore};
    use crate::catalog::sqlite::SqliteCatalog;
    use crate::catalog::{Accounts, Audit, Connections, NewStoredVariant, ScopeId, UploadStore};
    use crate::model::{ConnectionId, Label, MediaId, OrgName, VaultPlusSettings};
    use crate::progress::Quiet;

    const NOW: i64 = 1_800_000_000_000;

    /// A live installation in `dir` with `n` stored variants ("0".."n"),
    /// as a server leaves it; the blob key of each.
    async fn installation(dir: &Path, n: usize) -> (Arc<SqliteCatalog>, ScopeId, Vec<String>) {
        std::fs::create_dir(dir).unwrap();
        let c = Arc::new(SqliteCatalog::open(&dir.join(CATALOG)).await.unwrap());
        let blobs = LocalBlobStore::open(dir).await.unwrap();
        let settings = VaultPlusSettings::default();
        let org = c
            .ensure_org(&OrgName::parse("a").unwrap(), &settings, true, NOW)
            .await
            .unwrap()
            .0;
        let id = ConnectionId::parse("conn_a").unwrap();
        c.insert_connection(org.id, &id, true, NOW).await.unwrap();
        let scope = c.connection(org.id, &id).await.unwrap().unwrap().scope_id;
        let mut keys = Vec::new();
        for i in 0..n {
            let key = format!("{scope}/{}", uuid::Uuid::new_v4().simple());
            let body = Bytes::from(vec![i as u8; 100 + i]);
            let stream = futures::stream::iter([Ok(body)]).boxed();
            c.begin_upload(scope, &key, NOW).await.unwrap();
            let put = blobs.put(&key, stream, 1 << 20).await.unwrap();
            c.commit_upload(&NewStoredVariant {
                scope_id: scope,
                media_id: MediaId::parse(&i.to_string()).unwrap(),
                label: "full".into(),
                content_type: "image/jpeg".into(),
                size_bytes: put.size_bytes,
                checksum: put.sha256,
                blob_key: key.clone(),
                duration: None,
                now: NOW,
                limit: None,
            })
            .await
            .unwrap();
            keys.push(key);
        }
        (c, scope, keys)
    }

    /// Runs `act(round)` when the blobs of each catalog copy are about to
    /// be linked: the server's work between the copy and the links.
    struct Between<F: Fn(u32) + Sync> {
        act: F,
        rounds: AtomicU32,
    }

    impl<F: Fn(u32) + Sync> Progress for Between<F> {
        fn phase(&self, name: &str, _: u64) {
            if name == "linking blobs" {
                (self.act)(self.rounds.fetch_add(1, Ordering::SeqCst));
            }
        }
        fn advance(&self, _: u64) {}
        fn finish(&self, _: &str) {}
    }

    fn between<F: Fn(u32) + Sync>(act: F) -> Between<F> {
        Between {
            act,
            rounds: AtomicU32::new(0),
        }
    }

    /// What the server does when a variant is deleted: the record goes
    /// (its blob queued), then reclaim deletes the file.
    fn delete_variant(c: &SqliteCatalog, scope: ScopeId, dir: &Path, media: usize, key: &str) {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let media = MediaId::parse(&media.to_string()).unwrap();
                let label = Label::parse("full").unwrap();
                c.evict_variant(scope, &media, &label, NOW + 1)
                    .await
                    .unwrap();
            })
        });
        std::fs::remove_file(key_path(&dir.join("blobs"), key).unwrap()).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_blob_deleted_after_the_catalog_copy_makes_a_new_copy() {
        let t = tempfile::tempdir().unwrap();
        let live = t.path().join("live");
        let (c, scope, keys) = installation(&live, 5).await;
        let to = t.path().join("backup");
        let hook = between(|round| {
            if round == 0 {
                delete_variant(&c, scope, &live, 2, &keys[2]);
            }
        });
        let taken = backup(&live.join(CATALOG), &live, &to, "test", &hook)
            .await
            .unwrap();
        assert_eq!(taken.rounds, 2, "the first copy named a deleted blob");
        assert_eq!(
            (taken.manifest.variants, taken.manifest.blobs),
            (4, 4),
            "{taken:?}"
        );
        let held = named_blobs(&to.join(CATALOG)).await.unwrap();
        let mut expected: Vec<&String> = keys.iter().filter(|k| *k != &keys[2]).collect();
        expected.sort();
        let named: Vec<&String> = held.blobs.iter().map(|b| &b.key).collect();
        assert_eq!(named, expected);
        let files = LocalBlobStore::open(&to)
            .await
            .unwrap()
            .list()
            .await
            .unwrap();
        assert_eq!(files.len(), 4, "{files:?}");

        // Restored, it holds exactly that, every byte checked.
        let new = t.path().join("restored");
        let r = restore(&to, &new, &Quiet).await.unwrap();
        assert_eq!(r.manifest, taken.manifest);
        let restored = SqliteCatalog::open(&new.join(CATALOG)).await.unwrap();
        let blobs = LocalBlobStore::open(&new).await.unwrap();
        let report = crate::service::fsck::fsck(&restored, &blobs, false, &|_, _, _| {})
            .await
            .unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.variants_checked, 4);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_blob_the_installation_lost_fails_the_backup_and_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let live = t.path().join("live");
        let (_c, _, keys) = installation(&live, 3).await;
        let to = t.path().join("backup");
        let hook = between(|round| {
            if round == 0 {
                std::fs::remove_file(key_path(&live.join("blobs"), &keys[1]).unwrap()).unwrap();
            }
        });
        let e = backup(&live.join(CATALOG), &live, &to, "test", &hook)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&keys[1]) && e.contains("damaged") && e.contains("fsck"),
            "{e}"
        );
        assert_eq!(hook.rounds.load(Ordering::SeqCst), 2, "looked twice");
        assert!(!to.exists(), "a failed backup leaves no directory");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_server_deleting_faster_than_the_copies_fails_the_backup() {
        let t = tempfile::tempdir().unwrap();
        let live = t.path().join("live");
        let (c, scope, keys) = installation(&live, 1).await;
        let blobs = LocalBlobStore::open(&live).await.unwrap();
        let to = t.path().join("backup");
        // Between each copy and its links, the variant stored since the
        // last copy is deleted and another one stored.
        let newest = std::sync::Mutex::new((0usize, keys[0].clone()));
        let hook = between(|round| {
            let (media, key) = newest.lock().unwrap().clone();
            delete_variant(&c, scope, &live, media, &key);
            let next = 100 + round as usize;
            let key = format!("{scope}/{}", uuid::Uuid::new_v4().simple());
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let body = futures::stream::iter([Ok(Bytes::from_static(b"new"))]).boxed();
                    c.begin_upload(scope, &key, NOW).await.unwrap();
                    let put = blobs.put(&key, body, 100).await.unwrap();
                    c.commit_upload(&NewStoredVariant {
                        scope_id: scope,
                        media_id: MediaId::parse(&next.to_string()).unwrap(),
                        label: "full".into(),
                        content_type: "image/jpeg".into(),
                        size_bytes: put.size_bytes,
                        checksum: put.sha256,
                        blob_key: key.clone(),
                        duration: None,
                        now: NOW,
                        limit: None,
                    })
                    .await
                    .unwrap();
                })
            });
            *newest.lock().unwrap() = (next, key);
        });
        let e = backup(&live.join(CATALOG), &live, &to, "test", &hook)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("run the backup again"), "{e}");
        assert_eq!(hook.rounds.load(Ordering::SeqCst), ROUNDS);
        assert!(!to.exists());
    }
}
