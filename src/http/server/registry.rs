//! The connections a server holds, and its cap on them.
//!
//! At the cap, a new connection first makes room by closing an idle one (no
//! request being answered): the oldest that has never been answered (a
//! client that connected and sent nothing, or is dribbling a head), else the
//! oldest keep-alive connection between requests, so the pools of real
//! clients go last. Only when every connection is serving a request is the
//! new one closed at once. So a flood of idle sockets cannot lock out new
//! clients, and responses in progress are never cut to make room.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::conn::ConnShared;

pub struct Registry {
    cap: usize,
    live: Mutex<BTreeMap<u64, Arc<ConnShared>>>,
    next_id: AtomicU64,
    refused: AtomicU64,
    evicted: AtomicU64,
}

/// What the registry decided for a new connection.
pub enum Admission {
    Admitted(Arc<ConnShared>),
    Refused,
}

impl Registry {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            live: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    pub fn admit(&self) -> Admission {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= self.cap {
            // One pass over at most the cap (in accept order), only while
            // the server is full.
            let idle = || live.iter().filter(|(_, c)| c.is_idle());
            let victim = idle()
                .find(|(_, c)| c.served() == 0)
                .or_else(|| idle().next())
                .map(|(id, _)| *id);
            match victim.and_then(|id| live.remove(&id)) {
                Some(c) => {
                    c.evict();
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    return Admission::Refused;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = ConnShared::new(id);
        live.insert(id, conn.clone());
        Admission::Admitted(conn)
    }

    /// Forgets a connection that ended.
    pub fn remove(&self, id: u64) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    pub fn open(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(r: &Registry) -> Arc<ConnShared> {
        match r.admit() {
            Admission::Admitted(c) => c,
            Admission::Refused => panic!("refused"),
        }
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let r = Registry::new(2);
        let a = admitted(&r);
        let b = admitted(&r);
        let _serving = a.begin();
        let c = admitted(&r);
        assert_eq!(r.open(), 2);
        assert_eq!(r.evicted(), 1);
        // b was idle: it was told to close; a is serving and stays.
        let evicted = futures::FutureExt::now_or_never(b.evicted());
        assert!(evicted.is_some());
        assert!(futures::FutureExt::now_or_never(a.evicted()).is_none());
        drop(c);
    }

    #[test]
    fn connections_never_answered_go_before_keep_alive_ones() {
        let r = Registry::new(2);
        let pooled = admitted(&r);
        drop(pooled.begin()); // answered once, now between requests
        let silent = admitted(&r);
        let _new = admitted(&r);
        assert!(futures::FutureExt::now_or_never(silent.evicted()).is_some());
        assert!(futures::FutureExt::now_or_never(pooled.evicted()).is_none());
    }

    #[test]
    fn when_every_connection_is_serving_a_new_one_is_refused() {
        let r = Registry::new(1);
        let a = admitted(&r);
        let _serving = a.begin();
        assert!(matches!(r.admit(), Admission::Refused));
        assert_eq!(r.refused(), 1);
        r.remove(a.id);
        assert!(matches!(r.admit(), Admission::Admitted(_)));
    }
}
