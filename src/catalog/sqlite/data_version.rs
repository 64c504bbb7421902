//! Seeing commits made by other connections and processes (the CLI on the
//! same file while the server runs): `PRAGMA data_version` changes between
//! two reads on one connection if and only if another connection committed
//! in between. Its value means nothing across connections, so it is always
//! read on this one connection, which is never replaced.
//!
//! One poller reads it every [`POLL_EVERY`] and counts the changes it sees
//! (`ticks`). Media look-ups stamp their cache entries with that count
//! instead of reading the pragma themselves: a read per request would put
//! every media request in one queue on this one connection (serving small
//! objects fell to a third). Another process's change thus reaches a running
//! server within [`POLL_EVERY`], well inside the second the CLI's writes
//! (`signing-keys retire`, `connections remove`, ...) are promised.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::SqliteConnection;
use tokio::sync::{Mutex, watch};

use crate::catalog::{ChangeWatch, Result};

/// How often the poller looks for other processes' commits.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

struct Shared {
    conn: Mutex<SqliteConnection>,
    /// Changes seen so far.
    ticks: AtomicU64,
    changes: watch::Sender<u64>,
}

#[derive(Clone)]
pub struct DataVersion {
    shared: Arc<Shared>,
}

impl DataVersion {
    /// Starts the poller; it stops once the catalog is dropped.
    pub async fn new(conn: SqliteConnection) -> Result<Self> {
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            ticks: AtomicU64::new(0),
            changes: watch::channel(0).0,
        });
        let first = read(&shared).await?;
        tokio::spawn(poll(Arc::downgrade(&shared), first));
        Ok(Self { shared })
    }

    /// Changes by other connections seen so far (a stamp for caches).
    pub fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Acquire)
    }

    /// A watch that ticks after commits by any other connection, this
    /// process's writer included.
    pub fn watch(&self) -> ChangeWatch {
        self.shared.changes.subscribe()
    }
}

async fn read(shared: &Shared) -> Result<i64> {
    let mut conn = shared.conn.lock().await;
    Ok(sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(&mut *conn)
        .await?)
}

async fn poll(shared: Weak<Shared>, mut seen: i64) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match read(&shared).await {
            Ok(v) if v != seen => {
                seen = v;
                shared.ticks.fetch_add(1, Ordering::AcqRel);
                shared.changes.send_modify(|n| *n += 1);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the catalog's data version")
            }
        }
    }
}
