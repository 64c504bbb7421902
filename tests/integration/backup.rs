//! `vaultplus backup` and `restore`: a backup taken while the server takes
//! uploads and deletes restores to exactly the catalog it copied (fsck
//! clean, every stored variant serving the bytes uploaded, nothing from
//! after the copy), whether its blobs were hard-linked or copied; and every
//! wrong use is refused, changing nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use reqwest::Method;
use tokio::sync::Mutex;

use crate::backend::Backend;
use crate::demo::json;
use crate::file_modes::assert_private;
use crate::harness::{BIN, TestServer, bytes, sqlite};

/// Items stored before the backup starts: enough that the copy takes a
/// while, with deletions landing during it.
const BEFORE: usize = 400;

fn vaultplus(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("VAULTPLUS_DATA_DIR")
        .env_remove("VAULTPLUS_DATABASE_URL")
        .env_remove("VAULTPLUS_BLOBS")
        .output()
        .expect("run vaultplus")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Unique bytes of one item (never uploaded twice).
fn content(n: usize) -> Vec<u8> {
    let mut b = bytes((n % 251) as u8, 300 + (n * 37) % 7_000);
    b.extend_from_slice(format!("item {n}").as_bytes());
    b
}

/// (media ID, SHA-256) of each stored variant of current connections in a
/// catalog file, and the connection's counters, as the file says.
fn catalog_view(db: &Path) -> (BTreeMap<String, String>, String) {
    let rows = sqlite(
        db,
        "SELECT coalesce(group_concat(media_id || '=' || checksum, ','), '') FROM \
         (SELECT media_id, checksum FROM variants WHERE status = 'stored' \
          AND scope_id IN (SELECT scope_id FROM connections) ORDER BY media_id)",
    );
    let stored = rows
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| {
            let (m, sum) = r.split_once('=').unwrap();
            (m.to_owned(), sum.to_owned())
        })
        .collect();
    let counters = sqlite(
        db,
        "SELECT stored_count || ' ' || stored_bytes FROM scopes \
         WHERE id IN (SELECT scope_id FROM connections)",
    );
    (stored, counters)
}

/// Every stored item a server lists, with the bytes its URL serves.
async fn served(s: &TestServer, conn: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut p = "/v2/vault-plus/media?status=stored&limit=100".to_owned();
        if let Some(c) = &cursor {
            p.push_str(&format!("&cursor={c}"));
        }
        let (code, page) = json(s.conn(Method::GET, &p, conn)).await;
        assert_eq!(code, 200, "{page}");
        for it in page["items"].as_array().unwrap() {
            let url = it["media"]["full"]["url"].as_str().unwrap();
            let r = s.http.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
            let id = it["id"].as_str().unwrap().to_owned();
            out.insert(id, r.bytes().await.unwrap().to_vec());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// What the load did, each answer with the instant it came.
#[derive(Default)]
struct Load {
    uploaded: Vec<(usize, Instant)>,
    deleted: Vec<(usize, Instant)>,
}

#[tokio::test]
async fn a_backup_under_load_restores_to_exactly_its_catalog() {
    if crate::backend::embedded_only("a_backup_under_load_restores_to_exactly_its_catalog") {
        return;
    }
    let s = Arc::new(TestServer::start_with(&["--max-uploads-per-connection", "8"]).await);
    s.add_connection("default", "conn_a");
    for n in 0..BEFORE {
        s.put("conn_a", &n.to_string(), "full", "image/jpeg", content(n))
            .await;
    }
    let work = tempfile::tempdir().unwrap();
    let backup_dir = work.path().join("backup");

    // Until the backup ends: two tasks upload new items, one deletes old
    // ones, one deletes the new ones as they come.
    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Mutex::new(Load::default()));
    let mut workers = Vec::new();
    for w in 0..4usize {
        let (s, stop, load) = (s.clone(), stop.clone(), load.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let victim = match w {
                    0 | 2 => {
                        let n = 100_000 + w * 10_000 + i;
                        let r = s
                            .upload("conn_a", &n.to_string(), "full", "image/jpeg", content(n))
                            .await;
                        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
                        load.lock().await.uploaded.push((n, Instant::now()));
                        None
                    }
                    1 if i < BEFORE => Some(i),
                    1 => None,
                    _ => {
                        let l = load.lock().await;
                        l.uploaded.get(i).map(|(n, _)| *n)
                    }
                };
                match victim {
                    Some(n) => {
                        let path = format!("/v2/vault-plus/media/{n}");
                        let r = s
                            .conn(Method::DELETE, &path, "conn_a")
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 200);
                        load.lock().await.deleted.push((n, Instant::now()));
                        i += 1;
                    }
                    None if w == 0 || w == 2 => i += 1,
                    None => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                }
                // Old items go one in two: the others must all be there.
                if w == 1 {
                    i += 1;
                }
            }
        }));
    }
    // The load runs a little before the copy starts.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = Instant::now();
    let out = {
        let s = s.clone();
        let to = backup_dir.clone();
        tokio::task::spawn_blocking(move || s.cli(&["backup", "--to", path(&to)]))
            .await
            .unwrap()
    };
    let ended = Instant::now();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("linked, 0 copied"),
        "same filesystem: {report}"
    );
    assert!(report.contains("master key"), "{report}");
    let load = load.lock().await;
    assert!(
        load.deleted.iter().any(|(_, t)| *t > started && *t < ended),
        "no deletion landed during the backup: make the load heavier"
    );
    // After the backup, the installation moves on.
    s.put("conn_a", "999999", "full", "image/jpeg", content(999_999))
        .await;
    assert_private(&backup_dir);

    // What the backup's catalog holds: everything stored before the copy
    // and not deleted before it; nothing deleted before the backup began.
    let (stored, counters) = catalog_view(&backup_dir.join("catalog.sqlite"));
    let deleted_before: BTreeSet<String> = load
        .deleted
        .iter()
        .filter(|(_, t)| *t < started)
        .map(|(n, _)| n.to_string())
        .collect();
    let deleted: BTreeSet<String> = load.deleted.iter().map(|(n, _)| n.to_string()).collect();
    for n in 0..BEFORE {
        let id = n.to_string();
        if !deleted.contains(&id) {
            assert!(
                stored.contains_key(&id),
                "item {id} is missing from the backup"
            );
        }
        if deleted_before.contains(&id) {
            assert!(!stored.contains_key(&id), "item {id} was deleted before");
        }
    }
    for (n, t) in &load.uploaded {
        if *t < started && !deleted.contains(&n.to_string()) {
            assert!(stored.contains_key(&n.to_string()), "upload {n} is missing");
        }
    }
    assert!(!stored.contains_key("999999"));

    // Restored into a new directory: fsck clean before and after a server
    // ran on it, which lists exactly the backup's items and serves each
    // one's bytes, as uploaded.
    let restored = tempfile::tempdir().unwrap();
    let out = vaultplus(&[
        "restore",
        "--from",
        path(&backup_dir),
        "--data-dir",
        path(restored.path()),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_private(restored.path());
    let fsck = |dir: &Path| vaultplus(&["fsck", "--data-dir", path(dir)]);
    let out = fsck(restored.path());
    assert!(
        out.status.success() && text(&out).contains("consistent"),
        "{}",
        text(&out)
    );
    let mut r = TestServer::start_on(restored, Backend::default(), &[]).await;
    r.key = s.key.clone();
    let items = served(&r, "conn_a").await;
    assert_eq!(
        items.keys().collect::<Vec<_>>(),
        stored.keys().collect::<Vec<_>>(),
        "the restored server lists exactly the backup's items"
    );
    for (id, body) in &items {
        let n: usize = id.parse().unwrap();
        assert!(*body == content(n), "item {id} serves other bytes");
        assert_eq!(sha256_hex(body), stored[id], "item {id}");
    }
    let (_, st) = json(r.conn(Method::GET, "/v2/vault-plus/status", "conn_a")).await;
    assert_eq!(
        format!("{} {}", st["storedCount"], st["totalSizeBytes"]),
        counters,
        "{st}"
    );
    r.wait_reclaimed().await;
    let out = fsck(r.data_dir());
    assert!(out.status.success(), "{}", text(&out));
    // It is an installation of its own: the original did not change.
    r.put("conn_a", "777777", "full", "image/jpeg", content(777_777))
        .await;
    let (code, _) = json(s.conn(Method::GET, "/v2/vault-plus/media/777777", "conn_a")).await;
    assert_eq!(code, 404);
}

/// Another filesystem than the data directory's (tmpfs), if there is one.
fn other_filesystem(than: &Path) -> Option<tempfile::TempDir> {
    use std::os::unix::fs::MetadataExt;
    let shm = Path::new("/dev/shm");
    let dev = |p: &Path| std::fs::metadata(p).ok().map(|m| m.dev());
    if dev(shm).is_none() || dev(shm) == dev(than) {
        return None;
    }
    tempfile::tempdir_in(shm).ok()
}

#[tokio::test]
async fn a_backup_on_another_filesystem_is_copied_and_restores() {
    if crate::backend::embedded_only("a_backup_on_another_filesystem_is_copied_and_restores") {
        return;
    }
    let s = TestServer::start().await;
    let Some(elsewhere) = other_filesystem(s.data_dir()) else {
        eprintln!("SKIPPED: no second filesystem (/dev/shm) to copy to");
        return;
    };
    s.add_connection("default", "conn_a");
    for n in 0..20 {
        s.put("conn_a", &n.to_string(), "full", "image/png", content(n))
            .await;
    }
    let backup_dir = elsewhere.path().join("b");
    let out = s.cli(&["backup", "--to", path(&backup_dir)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 linked, 20 copied"), "{}", text(&out));
    assert_private(&backup_dir);
    let restored = tempfile::tempdir().unwrap();
    let out = vaultplus(&[
        "restore",
        "--from",
        path(&backup_dir),
        "--data-dir",
        path(restored.path()),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 linked, 20 copied"), "{}", text(&out));
    let mut r = TestServer::start_on(restored, Backend::default(), &[]).await;
    r.key = s.key.clone();
    let items = served(&r, "conn_a").await;
    assert_eq!(items.len(), 20);
    for (id, body) in items {
        assert!(body == content(id.parse().unwrap()), "item {id}");
    }
}

#[tokio::test]
async fn wrong_backups_and_restores_are_refused_and_change_nothing() {
    if crate::backend::embedded_only("wrong_backups_and_restores_are_refused_and_change_nothing") {
        return;
    }
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    for n in 0..5 {
        s.put("conn_a", &n.to_string(), "full", "image/png", content(n))
            .await;
    }
    let work = tempfile::tempdir().unwrap();
    let w = |name: &str| work.path().join(name);

    // Into a directory that is not empty.
    std::fs::create_dir(w("full")).unwrap();
    std::fs::write(w("full/keep"), b"mine").unwrap();
    let out = s.cli(&["backup", "--to", path(&w("full"))]);
    assert!(
        !out.status.success() && text(&out).contains("not empty"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_dir(w("full")).unwrap().count(), 1);
    assert_eq!(std::fs::read(w("full/keep")).unwrap(), b"mine");
    // Into the data directory itself.
    let inside = s.data_dir().join("backups");
    let out = s.cli(&["backup", "--to", path(&inside)]);
    assert!(
        !out.status.success() && text(&out).contains("inside"),
        "{}",
        text(&out)
    );
    assert!(!inside.exists());
    // Of an installation that is not there.
    let out = vaultplus(&[
        "backup",
        "--data-dir",
        path(&w("typo")),
        "--to",
        path(&w("b0")),
    ]);
    assert!(
        !out.status.success() && text(&out).contains("no vaultplus catalog"),
        "{}",
        text(&out)
    );
    assert!(!w("typo").exists() && !w("b0").exists());
    // Of a cluster: its own engines' tools, before anything is contacted.
    let b1 = w("b1");
    for stores in [
        [
            "--database",
            "postgres://vaultplus:secret@127.0.0.1:1/vaultplus",
        ],
        ["--blobs", "s3://bucket/prefix"],
    ] {
        let mut args = vec!["backup", "--data-dir", path(s.data_dir()), "--to"];
        args.push(path(&b1));
        args.extend(stores);
        let out = vaultplus(&args);
        let t = text(&out);
        assert!(!out.status.success(), "{t}");
        assert!(t.contains("pg_dump") && t.contains("versioning"), "{t}");
        assert!(!t.contains("secret"), "{t}");
        assert!(!b1.exists());
    }

    // A good backup, for the restores below.
    let good = w("good");
    let out = s.cli(&["backup", "--to", path(&good)]);
    assert!(out.status.success(), "{}", text(&out));

    // From a directory that is not a backup (a data directory).
    let out = vaultplus(&[
        "restore",
        "--from",
        path(s.data_dir()),
        "--data-dir",
        path(&w("r1")),
    ]);
    assert!(
        !out.status.success() && text(&out).contains("not a vaultplus backup"),
        "{}",
        text(&out)
    );
    assert!(!w("r1").exists());
    // Into a directory that is not empty.
    let out = vaultplus(&[
        "restore",
        "--from",
        path(&good),
        "--data-dir",
        path(&w("full")),
    ]);
    assert!(
        !out.status.success() && text(&out).contains("not empty"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_dir(w("full")).unwrap().count(), 1);

    // A damaged blob: the restore names it and leaves nothing behind. (The
    // backup's blobs are links to the live ones: the damage goes into a
    // new file put in its place.)
    let blobs = good.join("blobs");
    let victim = walk(&blobs).into_iter().next().unwrap();
    let key = victim
        .strip_prefix(&blobs)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let mut damaged = std::fs::read(&victim).unwrap();
    damaged[7] ^= 0x20;
    std::fs::write(w("damaged"), &damaged).unwrap();
    std::fs::rename(w("damaged"), &victim).unwrap();
    let out = vaultplus(&[
        "restore",
        "--from",
        path(&good),
        "--data-dir",
        path(&w("r2")),
    ]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains(&key) && t.contains("SHA-256") && t.contains("damaged"),
        "{t}"
    );
    assert!(!w("r2").exists(), "a failed restore leaves no directory");
    // A blob gone from the backup, likewise.
    std::fs::remove_file(&victim).unwrap();
    let out = vaultplus(&[
        "restore",
        "--from",
        path(&good),
        "--data-dir",
        path(&w("r3")),
    ]);
    let t = text(&out);
    assert!(
        !out.status.success() && t.contains(&key) && t.contains("missing"),
        "{t}"
    );
    assert!(!w("r3").exists());
    // A catalog changed after the backup.
    let other = w("other");
    assert!(s.cli(&["backup", "--to", path(&other)]).status.success());
    sqlite(
        &other.join("catalog.sqlite"),
        "UPDATE scopes SET stored_count = stored_count + 1",
    );
    let out = vaultplus(&[
        "restore",
        "--from",
        path(&other),
        "--data-dir",
        path(&w("r4")),
    ]);
    let t = text(&out);
    assert!(
        !out.status.success() && t.contains("catalog") && t.contains("damaged"),
        "{t}"
    );
    assert!(!w("r4").exists());

    // The live installation never noticed.
    let out = s.cli(&["fsck"]);
    assert!(out.status.success(), "{}", text(&out));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}
