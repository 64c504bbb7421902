//! Directory syncs shared by concurrent writers. A renamed file is durable
//! only once its directory is synced, and one sync that starts after
//! several renames makes them all durable: writers placing files in the
//! same directory at once wait for one sync between them instead of one
//! each (their syncs would otherwise queue behind each other on the file
//! system). Called on blocking threads, right after the rename, so that a
//! blob is synced, renamed and its directory synced in one trip to the
//! blocking pool.

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
    covered: Mutex<u64>,
}

impl DirSyncs {
    /// Returns once `dir` was synced after the caller's rename into it
    /// (which must have completed before this call). Blocks.
    pub fn sync(&self, dir: &Path) -> std::io::Result<()> {
        let d = self
            .dirs
            .lock()
            .expect("no panics under this lock")
            .entry(dir.to_path_buf())
            .or_default()
            .clone();
        let ticket = d.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let result = {
            let mut covered = d.covered.lock().expect("no panics under this lock");
            if *covered >= ticket {
                Ok(())
            } else {
                // Every ticket issued so far belongs to a rename that is
                // done: this sync covers them all.
                let upto = d.issued.load(Ordering::SeqCst);
                let r = std::fs::File::open(dir).and_then(|f| f.sync_all());
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

    #[test]
    fn concurrent_syncs_of_a_directory_all_return_and_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let syncs = Arc::new(DirSyncs::default());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (syncs, path) = (syncs.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || syncs.sync(&path))
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert!(syncs.dirs.lock().unwrap().is_empty());
        assert!(syncs.sync(&dir.path().join("missing")).is_err());
    }
}
