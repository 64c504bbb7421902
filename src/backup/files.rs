//! The file work of backup and restore: a new private directory that goes
//! away again if the command fails, blobs placed by hard link or copy, and
//! their SHA-256.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;

use crate::private_files;

/// A directory this command fills from nothing: it must not exist or be
/// empty, and a failed command leaves it as it found it (so a half-made
/// backup or data directory is never mistaken for a whole one).
pub struct FreshDir {
    path: PathBuf,
    created: bool,
    keep: bool,
}

impl FreshDir {
    /// `what` names the option, for messages (`--to`, `--data-dir`).
    pub fn take(path: &Path, what: &str) -> anyhow::Result<Self> {
        let created = match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            Ok(m) if !m.is_dir() => {
                bail!("{what} {}: exists and is not a directory", path.display())
            }
            Ok(_) => {
                let mut entries = std::fs::read_dir(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if entries.next().is_some() {
                    bail!(
                        "{what} {}: the directory is not empty (give a new or empty one)",
                        path.display()
                    );
                }
                false
            }
        };
        if created {
            private_files::create_dir_all_blocking(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
        } else {
            // An empty directory made by someone else: ours alone from now.
            #[cfg(unix)]
            std::fs::set_permissions(
                path,
                std::fs::Permissions::from_mode(private_files::DIR_MODE),
            )
            .with_context(|| format!("cannot make {} private", path.display()))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            created,
            keep: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The command succeeded: the directory stays.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for FreshDir {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if self.created {
            let _ = std::fs::remove_dir_all(&self.path);
        } else if let Ok(entries) = std::fs::read_dir(&self.path) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
}

/// Whether `path` (which may not exist yet) is `dir` or lies inside it.
pub fn is_within(path: &Path, dir: &Path) -> bool {
    let (Ok(dir), Ok(path)) = (dir.canonicalize(), std::path::absolute(path)) else {
        return false;
    };
    // `..` taken lexically, then the nearest ancestor that exists resolved
    // (symbolic links), plus the rest.
    let mut lexical = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                lexical.pop();
            }
            std::path::Component::CurDir => {}
            c => lexical.push(c),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return false,
        }
    }
    let Ok(mut full) = existing.canonicalize() else {
        return false;
    };
    full.extend(rest.iter().rev());
    full.starts_with(dir)
}

/// How a blob got into place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    Linked,
    Copied,
    /// The source file does not exist.
    Missing,
}

/// Places files by hard link while the filesystem allows it, by copy
/// otherwise (another filesystem, no link support, too many links). A hard
/// link is a consistent copy because vaultplus never writes into a blob
/// file: each is written under `tmp/`, synced and renamed into place, and
/// only ever deleted after that (a deletion unlinks the name, not the
/// bytes the link holds).
pub struct Placer {
    links: AtomicBool,
}

impl Default for Placer {
    fn default() -> Self {
        Self {
            links: AtomicBool::new(true),
        }
    }
}

impl Placer {
    /// Puts `src` at `dst` (whose parent is created private if missing).
    pub fn place(&self, src: &Path, dst: &Path) -> anyhow::Result<Placed> {
        if let Some(parent) = dst.parent() {
            private_files::create_dir_all_blocking(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        if self.links.load(Ordering::Relaxed) {
            match std::fs::hard_link(src, dst) {
                Ok(()) if is_private(dst) => return Ok(Placed::Linked),
                // The link shares the source's mode: a blob others may read
                // (left by an older version) is copied, private, instead.
                Ok(()) => std::fs::remove_file(dst)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !src.exists() => {
                    return Ok(Placed::Missing);
                }
                // Another filesystem (EXDEV), or none that links: copy this
                // one and every one after.
                Err(_) => self.links.store(false, Ordering::Relaxed),
            }
        }
        copy(src, dst)
    }
}

fn is_private(path: &Path) -> bool {
    #[cfg(unix)]
    {
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 == 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        true
    }
}

/// Copies into a new private file, on disk before it returns.
fn copy(src: &Path, dst: &Path) -> anyhow::Result<Placed> {
    let mut from = match std::fs::File::open(src) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Placed::Missing),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", src.display())),
    };
    let mut to = private_files::file_options()
        .write(true)
        .create_new(true)
        .open(dst)
        .with_context(|| format!("cannot create {}", dst.display()))?;
    io::copy(&mut from, &mut to)
        .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
    to.sync_all()
        .with_context(|| format!("cannot sync {}", dst.display()))?;
    Ok(Placed::Copied)
}

/// Copies a file that must exist (the catalog: never linked, since SQLite
/// writes its file in place).
pub fn copy_file(src: &Path, dst: &Path) -> anyhow::Result<()> {
    match copy(src, dst)? {
        Placed::Missing => bail!("{} is missing", src.display()),
        _ => Ok(()),
    }
}

/// Size and hex SHA-256 of a file.
pub fn hash(path: &Path) -> io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((len, hex::encode(hasher.finalize())))
}

/// Makes the directory entries under `dir` durable (files were synced
/// when copied; links and new directories are entries of their parents).
pub fn sync_tree(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    std::fs::File::open(dir)?
        .sync_all()
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// Deletes a file placed in a blob directory, and its scope directory once
/// empty.
pub fn remove_blob(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    if let Some(parent) = path.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_dir_must_be_new_or_empty_and_goes_on_failure() {
        let t = tempfile::tempdir().unwrap();
        let new = t.path().join("new");
        let d = FreshDir::take(&new, "--to").unwrap();
        std::fs::write(new.join("x"), b"x").unwrap();
        let e = FreshDir::take(&new, "--to").err().unwrap().to_string();
        assert!(e.contains("not empty") && e.contains("--to"), "{e}");
        drop(d);
        assert!(!new.exists(), "made by the command, removed by its failure");

        // An empty directory given is emptied again, not removed.
        std::fs::create_dir(&new).unwrap();
        let d = FreshDir::take(&new, "--to").unwrap();
        std::fs::create_dir(new.join("sub")).unwrap();
        std::fs::write(new.join("sub/y"), b"y").unwrap();
        drop(d);
        assert!(new.is_dir() && std::fs::read_dir(&new).unwrap().next().is_none());

        let d = FreshDir::take(&new, "--to").unwrap();
        std::fs::write(new.join("z"), b"z").unwrap();
        d.keep();
        assert!(new.join("z").exists());

        std::fs::write(t.path().join("file"), b"").unwrap();
        assert!(FreshDir::take(&t.path().join("file"), "--to").is_err());
    }

    #[test]
    fn within_resolves_paths_that_do_not_exist_yet() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        std::fs::create_dir_all(data.join("blobs")).unwrap();
        assert!(is_within(&data.join("blobs/new/deeper"), &data));
        assert!(is_within(&data.join("x/../y"), &data));
        assert!(is_within(&data, &data));
        assert!(!is_within(&t.path().join("elsewhere"), &data));
        assert!(!is_within(&t.path().join("data2"), &data));
    }

    #[test]
    fn placing_links_private_files_and_copies_others() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::write(&src, b"bytes").unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o600)).unwrap();
        let p = Placer::default();
        let dst = t.path().join("out/a/b");
        assert_eq!(p.place(&src, &dst).unwrap(), Placed::Linked);
        assert_eq!(hash(&dst).unwrap(), hash(&src).unwrap());

        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o644)).unwrap();
        let dst2 = t.path().join("out/a/c");
        assert_eq!(p.place(&src, &dst2).unwrap(), Placed::Copied);
        let mode = std::fs::metadata(&dst2).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        assert_eq!(
            p.place(&t.path().join("gone"), &t.path().join("out/a/d"))
                .unwrap(),
            Placed::Missing
        );
    }
}
