//! Everything vaultplus keeps on local disk is for its own user alone:
//! directories 0700, files 0600, whatever the umask. The catalog holds the
//! URL signing secrets (whoever reads them forges URLs for any tenant) and
//! the blobs are the tenants' media. Modes are set when a file or directory
//! is created, never by a chmod afterwards, which would leave a window in
//! which others could open it. A data directory left by an older version
//! (0644 files in 0755 directories) is fixed at start by [`tighten`].

use std::io;
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Options that create a file readable and writable by its owner only
/// (the caller adds read/write/create flags).
pub fn file_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    #[cfg(unix)]
    o.mode(FILE_MODE);
    o
}

/// [`file_options`] for tokio.
pub fn async_file_options() -> tokio::fs::OpenOptions {
    let mut o = tokio::fs::OpenOptions::new();
    #[cfg(unix)]
    o.mode(FILE_MODE);
    o
}

/// Creates a new file (truncating an existing one) for writing, private.
pub fn create_file(path: &Path) -> io::Result<std::fs::File> {
    file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// [`create_file`] for tokio.
pub async fn create_file_async(path: &Path) -> io::Result<tokio::fs::File> {
    async_file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .await
}

/// Creates a directory and any missing parents, each private. Existing
/// directories are left as they are (see [`tighten`]).
pub async fn create_dir_all(path: &Path) -> io::Result<()> {
    let mut b = tokio::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(DIR_MODE);
    b.create(path).await
}

/// [`create_dir_all`], blocking.
pub fn create_dir_all_blocking(path: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(DIR_MODE);
    b.create(path)
}

/// What [`tighten`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tightened {
    /// Files and directories whose mode was changed.
    pub fixed: u64,
    /// Entries whose mode could not be changed (not ours), with the first
    /// error.
    pub failed: u64,
    pub first_error: Option<String>,
}

/// Takes away every group and other permission under `dir` (directories
/// to 0700, files to at most 0600), `dir` itself last, so that nothing is
/// ever reachable while something inside is still open to others. Symbolic
/// links are not followed. A directory already 0700 was made by this
/// version (or fixed by it): nothing below it can be reached by others, so
/// it is not walked again, which keeps a start on millions of blobs fast.
#[cfg(unix)]
pub fn tighten(dir: &Path) -> io::Result<Tightened> {
    let mut out = Tightened::default();
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() || meta.permissions().mode() & 0o777 == DIR_MODE {
        return Ok(out);
    }
    walk(dir, &mut out);
    Ok(out)
}

#[cfg(unix)]
fn walk(dir: &Path, out: &mut Tightened) {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if meta.is_dir() {
                    walk(&path, out);
                } else if meta.is_file() {
                    let mode = meta.permissions().mode() & 0o777;
                    if mode & 0o077 != 0 {
                        set_mode(&path, mode & 0o700, out);
                    }
                }
            }
        }
        Err(e) => note_failure(out, dir, &e),
    }
    if let Ok(meta) = std::fs::symlink_metadata(dir)
        && meta.permissions().mode() & 0o777 != DIR_MODE
    {
        set_mode(dir, DIR_MODE, out);
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32, out: &mut Tightened) {
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => out.fixed += 1,
        Err(e) => note_failure(out, path, &e),
    }
}

fn note_failure(out: &mut Tightened, path: &Path, e: &io::Error) {
    out.failed += 1;
    if out.first_error.is_none() {
        out.first_error = Some(format!("{}: {e}", path.display()));
    }
}

#[cfg(not(unix))]
pub fn tighten(_dir: &Path) -> io::Result<Tightened> {
    Ok(Tightened::default())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn chmod(p: &Path, m: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }

    #[test]
    fn new_files_and_dirs_are_private_whatever_the_umask() {
        // The umask only takes bits away: 0600/0700 stay as they are under
        // 022 (the usual one) and 002.
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_all_blocking(&nested).unwrap();
        assert_eq!(mode(&dir.path().join("a")), DIR_MODE);
        assert_eq!(mode(&nested), DIR_MODE);
        let f = nested.join("f");
        create_file(&f).unwrap();
        assert_eq!(mode(&f), FILE_MODE);
    }

    #[test]
    fn an_old_data_dir_is_tightened_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("blobs/7")).unwrap();
        for f in ["catalog.sqlite", "blobs/7/abc"] {
            std::fs::write(root.join(f), b"x").unwrap();
            chmod(&root.join(f), 0o644);
        }
        std::fs::write(root.join("owner-only"), b"x").unwrap();
        chmod(&root.join("owner-only"), 0o400);
        for d in ["", "blobs", "blobs/7"] {
            chmod(&root.join(d), 0o755);
        }
        // A link out of the directory is not followed.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        chmod(&outside, 0o644);
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();

        let t = tighten(&root).unwrap();
        assert_eq!(t.failed, 0, "{t:?}");
        assert_eq!(t.fixed, 5, "two files and three directories");
        for f in ["catalog.sqlite", "blobs/7/abc"] {
            assert_eq!(mode(&root.join(f)), FILE_MODE, "{f}");
        }
        assert_eq!(mode(&root.join("owner-only")), 0o400);
        for d in ["", "blobs", "blobs/7"] {
            assert_eq!(mode(&root.join(d)), DIR_MODE, "{d:?}");
        }
        assert_eq!(mode(&outside), 0o644);
        // Fixed once: the next start has nothing to do.
        assert_eq!(tighten(&root).unwrap(), Tightened::default());
    }

    #[test]
    fn a_missing_dir_needs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            tighten(&dir.path().join("nope")).unwrap(),
            Tightened::default()
        );
    }
}
