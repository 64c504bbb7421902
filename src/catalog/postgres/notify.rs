//! Telling running nodes that something they keep in memory changed: the
//! writing transaction sends a notification on [`CHANNEL`], which
//! PostgreSQL delivers at commit (and never for a rolled-back change);
//! every node listens on it.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::watch;

use crate::catalog::{ChangeWatch, Result};

type Tx = Transaction<'static, Postgres>;

pub const CHANNEL: &str = "vaultplus_changes";

/// Pause before listening again after the listener failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Sends `what` (for the log only; any notification means "re-read").
pub async fn notify(tx: &mut Tx, what: &str) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(what)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A watch that ticks on every notification, and also whenever the
/// listener lost its connection (notifications sent meanwhile are lost, so
/// the node re-reads to be safe); listens until the receiver is dropped.
pub async fn watch(pool: &PgPool) -> Result<ChangeWatch> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tx.closed() => return,
                got = listener.try_recv() => match got {
                    Ok(Some(n)) => {
                        tracing::debug!(what = n.payload(), "catalog change notified");
                    }
                    // The next try_recv reconnects and listens again.
                    Ok(None) => {
                        tracing::warn!("catalog change listener lost its connection; reconnecting");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "catalog change listener failed; retrying");
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                },
            }
            tx.send_modify(|n| *n += 1);
        }
    });
    Ok(rx)
}
