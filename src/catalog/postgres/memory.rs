//! What a cluster node answers from memory: the media look-ups (is this
//! variant still stored in a current scope?) and the epoch of its signing
//! keys, used only while the node holds a live lease (see
//! `docs/cluster-coherence.md`). Revocations arrive from the listener
//! (`revocations.rs`) and are applied here before they are acknowledged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use crate::catalog::{Revoked, ScopeId, VariantRecord};
use crate::model::VariantStatus;

/// Entries kept at most; the cache is dropped whole when full (a miss only
/// costs the query the cache saves).
const MAX_ENTRIES: usize = 100_000;

pub type LookupKey = (ScopeId, String, String);

#[derive(Default)]
struct Entries {
    /// Bumped by every invalidation: a look-up that started before one
    /// may have read what it revoked, so it is not kept.
    epoch: u64,
    /// Scope, media ID, label: nested so that a look-up borrows its key
    /// and a revocation drops a scope at once.
    by_scope: HashMap<ScopeId, HashMap<String, HashMap<String, VariantRecord>>>,
    len: usize,
}

pub struct Memory {
    entries: Mutex<Entries>,
    /// The listener is connected and has processed every revocation up to
    /// `seen` (cleared at once when it loses its connection).
    listening: AtomicBool,
    seen: AtomicI64,
    keys_epoch: AtomicU64,
    /// Until when this node may answer from memory: a little before its
    /// lease ends on the database's clock.
    lease_deadline: Mutex<Option<Instant>>,
    /// The lease asking the listener to start over (see `lease::hold`).
    relisten: tokio::sync::Notify,
}

impl Memory {
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            listening: AtomicBool::new(false),
            seen: AtomicI64::new(0),
            keys_epoch: AtomicU64::new(0),
            lease_deadline: Mutex::new(None),
            relisten: tokio::sync::Notify::new(),
        }
    }

    /// Whether memory may answer now: listening, and within the lease.
    pub fn serving(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
            && self
                .lease_deadline
                .lock()
                .expect("lease lock poisoned")
                .is_some_and(|d| Instant::now() < d)
    }

    pub fn set_lease_deadline(&self, deadline: Option<Instant>) {
        *self.lease_deadline.lock().expect("lease lock poisoned") = deadline;
    }

    pub fn ask_relisten(&self) {
        self.relisten.notify_one();
    }

    pub async fn relisten_asked(&self) {
        self.relisten.notified().await;
    }

    /// The last revocation processed.
    pub fn seen(&self) -> i64 {
        self.seen.load(Ordering::SeqCst)
    }

    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    /// The listener lost its connection: nothing is answered from memory
    /// until it is back and has started over.
    pub fn deafened(&self) {
        self.listening.store(false, Ordering::SeqCst);
        self.apply(&[Revoked::All]);
    }

    /// The listener listens again; revocations up to `clock` (the clock
    /// read after listening started) may have been missed, so everything
    /// held is dropped.
    pub fn listening_from(&self, clock: i64) {
        self.apply(&[Revoked::All]);
        self.seen.store(clock, Ordering::SeqCst);
        self.listening.store(true, Ordering::SeqCst);
    }

    /// Applies revocation `seq`; a gap in the numbers (notifications lost)
    /// drops everything. Answers whether `seq` was new.
    pub fn revoked(&self, seq: i64, what: &[Revoked]) -> bool {
        let seen = self.seen();
        if seq <= seen {
            return false;
        }
        if seq == seen + 1 {
            self.apply(what);
        } else {
            self.apply(&[Revoked::All]);
        }
        self.seen.store(seq, Ordering::SeqCst);
        true
    }

    fn apply(&self, what: &[Revoked]) {
        let mut e = self.entries.lock().expect("lookup cache lock poisoned");
        e.epoch += 1;
        for w in what {
            match w {
                Revoked::Scope(s) => {
                    if let Some(gone) = e.by_scope.remove(s) {
                        e.len -= gone.values().map(HashMap::len).sum::<usize>();
                    }
                }
                Revoked::Keys => {
                    self.keys_epoch.fetch_add(1, Ordering::SeqCst);
                }
                Revoked::All => {
                    e.by_scope.clear();
                    e.len = 0;
                    self.keys_epoch.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// The epoch the signing keys held in memory must have been loaded at,
    /// or `None` when memory may not answer at all (no lease).
    pub fn keys_epoch(&self) -> Option<u64> {
        self.serving()
            .then(|| self.keys_epoch.load(Ordering::SeqCst))
    }

    /// Take before reading the catalog: see [`Memory::put`].
    pub fn stamp(&self) -> u64 {
        self.entries
            .lock()
            .expect("lookup cache lock poisoned")
            .epoch
    }

    pub fn get(&self, key: &LookupKey) -> Option<VariantRecord> {
        if !self.serving() {
            return None;
        }
        let e = self.entries.lock().expect("lookup cache lock poisoned");
        e.by_scope
            .get(&key.0)
            .and_then(|m| m.get(&key.1))
            .and_then(|m| m.get(&key.2))
            .cloned()
    }

    /// Keeps a look-up read after `stamp` was taken, unless a revocation
    /// was applied since (it may have revoked what was read). Only stored
    /// variants are kept: a variant becoming stored is no revocation, so a
    /// kept "not stored" would outlive the change.
    pub fn put(&self, key: LookupKey, stamp: u64, found: &Option<VariantRecord>) {
        let Some(v) = found.as_ref().filter(|v| v.status == VariantStatus::Stored) else {
            return;
        };
        let mut e = self.entries.lock().expect("lookup cache lock poisoned");
        if e.epoch != stamp || !self.listening() {
            return;
        }
        if e.len >= MAX_ENTRIES {
            e.by_scope.clear();
            e.len = 0;
        }
        let (scope, media, label) = key;
        if e.by_scope
            .entry(scope)
            .or_default()
            .entry(media)
            .or_default()
            .insert(label, v.clone())
            .is_none()
        {
            e.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::observed::Origin;

    fn variant(status: VariantStatus) -> Option<VariantRecord> {
        Some(VariantRecord {
            label: "full".into(),
            status,
            size_bytes: 1,
            content_type: "image/png".into(),
            access_count: 0,
            created_at: 0,
            stored_at: Some(0),
            last_accessed_at: 0,
            blob_key: Some("b".into()),
            checksum: None,
            origin: Origin::Upload,
            upstream_url: None,
            upstream_size: None,
            last_error: None,
            generation: 1,
        })
    }

    fn key(scope: ScopeId) -> LookupKey {
        (scope, "m".into(), "full".into())
    }

    /// Listening from revocation 10, with a lease for a minute.
    fn leased() -> Memory {
        let m = Memory::new();
        m.listening_from(10);
        m.set_lease_deadline(Some(Instant::now() + Duration::from_secs(60)));
        m
    }

    fn filled(m: &Memory, scope: ScopeId) {
        let stamp = m.stamp();
        m.put(key(scope), stamp, &variant(VariantStatus::Stored));
        assert!(m.get(&key(scope)).is_some());
    }

    #[test]
    fn answers_only_while_listening_within_the_lease() {
        let m = leased();
        filled(&m, 1);
        m.set_lease_deadline(Some(Instant::now() - Duration::from_millis(1)));
        assert!(m.get(&key(1)).is_none(), "lease over");
        assert_eq!(m.keys_epoch(), None);
        let m = leased();
        filled(&m, 1);
        m.deafened();
        assert!(m.get(&key(1)).is_none(), "listener lost");
        m.listening_from(20);
        assert!(m.get(&key(1)).is_none(), "dropped when listening again");
        assert_eq!(m.seen(), 20);
    }

    #[test]
    fn a_revocation_drops_its_scope_and_a_gap_drops_everything() {
        let m = leased();
        filled(&m, 1);
        filled(&m, 2);
        assert!(m.revoked(11, &[Revoked::Scope(1)]));
        assert!(m.get(&key(1)).is_none());
        assert!(m.get(&key(2)).is_some());
        assert!(!m.revoked(11, &[Revoked::Scope(2)]), "already applied");
        assert!(m.get(&key(2)).is_some());
        assert!(m.revoked(13, &[Revoked::Scope(3)]), "12 was missed");
        assert!(m.get(&key(2)).is_none());
        assert_eq!(m.seen(), 13);
    }

    #[test]
    fn a_look_up_across_a_revocation_or_not_stored_is_not_kept() {
        let m = leased();
        let stamp = m.stamp();
        m.revoked(11, &[Revoked::Scope(7)]);
        m.put(key(1), stamp, &variant(VariantStatus::Stored));
        assert!(m.get(&key(1)).is_none(), "read may predate the revocation");
        let stamp = m.stamp();
        m.put(key(1), stamp, &variant(VariantStatus::Pending));
        m.put(key(2), stamp, &None);
        assert!(m.get(&key(1)).is_none() && m.get(&key(2)).is_none());
    }

    #[test]
    fn keys_revocations_move_the_key_epoch() {
        let m = leased();
        let before = m.keys_epoch().unwrap();
        m.revoked(11, &[Revoked::Scope(1)]);
        assert_eq!(m.keys_epoch(), Some(before));
        m.revoked(12, &[Revoked::Keys]);
        assert_eq!(m.keys_epoch(), Some(before + 1));
        assert_eq!(
            Revoked::parse_list("12,keys,*"),
            vec![Revoked::Scope(12), Revoked::Keys, Revoked::All]
        );
    }
}
