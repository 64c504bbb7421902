//! Seeing commits made by other connections and processes (the CLI on the
//! same file while the server runs), exactly: `PRAGMA data_version` changes
//! between two reads on one connection if and only if another connection
//! committed in between. Its value means nothing across connections, so it
//! is always read on this one connection, which is never replaced.

use std::sync::Arc;
use std::time::Duration;

use sqlx::SqliteConnection;
use tokio::sync::{Mutex, watch};

use crate::catalog::{ChangeWatch, Result};

/// How often a watcher looks for other processes' commits: well within the
/// second in which a `signing-keys retire` must reach a running server.
const POLL_EVERY: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct DataVersion {
    conn: Arc<Mutex<SqliteConnection>>,
}

impl DataVersion {
    pub fn new(conn: SqliteConnection) -> Self {
        Self {
            conn: Arc::new(Mutex::new(conn)),
        }
    }

    pub async fn read(&self) -> Result<i64> {
        let mut conn = self.conn.lock().await;
        Ok(sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut *conn)
            .await?)
    }

    /// A watch that ticks after commits by any other connection, this
    /// process's writer included; polled until the receiver is dropped.
    pub async fn watch(&self) -> Result<ChangeWatch> {
        let mut seen = self.read().await?;
        let (tx, rx) = watch::channel(0u64);
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_EVERY);
            while !tx.is_closed() {
                tick.tick().await;
                match this.read().await {
                    Ok(v) if v != seen => {
                        seen = v;
                        tx.send_modify(|n| *n += 1);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "cannot read the catalog's data version")
                    }
                }
            }
        });
        Ok(rx)
    }
}
