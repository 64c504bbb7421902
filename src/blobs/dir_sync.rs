//! Directory syncs shared by concurrent writers. A renamed file is durable
//! only once its directory is synced, and one sync that starts after
//! several renames makes them all durable: writers placing files in the
//! same directory at once wait for one sync between them instead of one
//! each (their syncs would otherwise queue behind each other on the file
//! system's journal).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct DirSyncs {
    dirs: Mutex<HashMap<PathBuf, Arc<Dir>>>,
}

#[derive(Default)]
struct Dir {
    /// Tickets handed out: one per rename that wants to be durable.
    issued: AtomicU64,
    /// Held while a sync runs; the highest ticket a finished sync covers.
    covered: tokio::sync::Mutex<u64>,
}

impl DirSyncs {
    /// Returns once `dir` was synced after the caller's rename into it
    /// (which must have completed before this call).
    pub async fn sync(&self, dir: &Path) -> std::io::Result<()> {
        let d = self
            .dirs
            .lock()
            .expect("no panics under this lock")
            .entry(dir.to_path_buf())
            .or_default()
            .clone();
        let ticket = d.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let result = {
            let mut covered = d.covered.lock().await;
            if *covered >= ticket {
                Ok(())
            } else {
                // Every ticket issued so far belongs to a rename that is
                // done: this sync covers them all.
                let upto = d.issued.load(Ordering::SeqCst);
                let r = tokio::fs::File::open(dir).await?.sync_all().await;
                if r.is_ok() {
                    *covered = upto;
                }
                r
            }
        };
        // Forget directories no writer is waiting on (scopes come and go).
        let mut dirs = self.dirs.lock().expect("no panics under this lock");
        if Arc::strong_count(&d) == 2 {
            dirs.remove(dir);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_syncs_of_a_directory_all_return_and_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let syncs = Arc::new(DirSyncs::default());
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (syncs, path) = (syncs.clone(), dir.path().to_path_buf());
                tokio::spawn(async move { syncs.sync(&path).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(syncs.dirs.lock().unwrap().is_empty());
        assert!(syncs.sync(&dir.path().join("missing")).await.is_err());
    }
}
