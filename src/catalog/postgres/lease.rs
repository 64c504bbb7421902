//! A serving node's lease (docs/cluster-coherence.md): the row in
//! `node_leases` that revokers wait on, renewed every [`RENEW_EVERY`] while
//! the node has applied every revocation committed so far. The node
//! answers from memory only until a little before the lease ends.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::dialect::NOW_MS;
use super::memory::Memory;
use crate::catalog::Result;

/// How long a lease lasts past its last renewal: the longest a revoking
/// request waits for a node that stopped answering (frozen, cut off).
/// With the revoker's margin, the 2 s bound of a revocation.
pub const LEASE: Duration = Duration::from_millis(1_800);
pub const RENEW_EVERY: Duration = Duration::from_millis(400);
/// The node stops answering from memory this long before its lease ends
/// on the database's clock: room for the clocks of the node, the database
/// and a revoker running at slightly different rates (not for their
/// offsets, which do not matter: the node times its lease from before it
/// asked for it, a revoker from the time left the database answered).
pub const MARGIN: Duration = Duration::from_millis(200);
/// Renewals refused in a row (about 3 leases) after which the listener is
/// made to start over on a new connection.
const RELISTEN_AFTER_REFUSALS: u32 = 15;
/// Lease rows of nodes gone this long are deleted when a node joins.
const FORGET_AFTER_MS: i64 = 86_400_000;

pub struct Lease {
    pub pool: PgPool,
    pub node_id: String,
    pub memory: Weak<Memory>,
    pub stop: CancellationToken,
}

/// Registers the node (holding no lease yet) and forgets long-gone ones.
pub async fn join(pool: &PgPool, node_id: &str) -> Result<()> {
    // By the later of its lease and its start, both on the database's
    // clock: a node that joined but holds no lease yet is not gone.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM node_leases WHERE greatest(lease_until, started_at) < {NOW_MS} - $1"
    )))
    .bind(FORGET_AFTER_MS)
    .execute(pool)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO node_leases (node_id, lease_until, acked_seq, started_at) \
         VALUES ($1, 0, -1, {NOW_MS})"
    )))
    .bind(node_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Renews the lease until stopped (the catalog's close gives it up).
pub async fn hold(l: Lease) {
    let mut tick = tokio::time::interval(RENEW_EVERY);
    let mut refused = 0;
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = l.stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(memory) = l.memory.upgrade() else {
            break;
        };
        // A renewal that hangs (a half-open connection) is given up: the
        // lease then lapses, which is safe, and the next tick tries again.
        let renewed = tokio::time::timeout(LEASE, renew(&l.pool, &l.node_id, &memory))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the renewal took longer than a lease")));
        match renewed {
            Ok(Some(true)) | Ok(None) => refused = 0,
            // Behind the clock: a revocation is on its way, or this
            // listener's connection delivers nothing without failing.
            Ok(Some(false)) => {
                refused += 1;
                if refused >= RELISTEN_AFTER_REFUSALS {
                    tracing::warn!(
                        "lease renewals keep being refused; listening for revocations again"
                    );
                    memory.ask_relisten();
                    refused = 0;
                }
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot renew the node's lease"),
        }
    }
    if let Some(memory) = l.memory.upgrade() {
        memory.set_lease_deadline(None);
    }
}

/// One renewal: granted only if the node has applied the clock's latest
/// revocation; otherwise the lease runs on to its end and lapses. `None`
/// when not asked (the listener is down).
async fn renew(pool: &PgPool, node_id: &str, memory: &Arc<Memory>) -> Result<Option<bool>> {
    if !memory.listening() {
        return Ok(None);
    }
    // Timed from before asking: the database's lease ends LEASE after it
    // granted it, which is after this instant. The clock row is held
    // shared until this commits: a revoking commit (which updates it)
    // waits for this renewal to be visible, or this renewal waits for it
    // and sees its number (and is refused).
    let asked = Instant::now();
    let seen = memory.seen();
    let granted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE node_leases SET lease_until = {NOW_MS} + $1, \
         acked_seq = greatest(acked_seq, $2) \
         WHERE node_id = $3 AND $2 >= (SELECT seq FROM revocation_clock FOR SHARE)"
    )))
    .bind(LEASE.as_millis() as i64)
    .bind(seen)
    .bind(node_id)
    .execute(pool)
    .await?
    .rows_affected()
        == 1;
    if granted {
        memory.set_lease_deadline(Some(asked + LEASE - MARGIN));
    }
    Ok(Some(granted))
}

/// Gives the lease up: revokers stop waiting for this node at once.
pub async fn release(pool: &PgPool, node_id: &str) {
    let gone = sqlx::query("DELETE FROM node_leases WHERE node_id = $1")
        .bind(node_id)
        .execute(pool)
        .await;
    if let Err(e) = gone {
        tracing::warn!(error = %e, "cannot give up the node's lease; it lapses by itself");
    }
}
