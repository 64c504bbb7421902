//! Revocations between nodes (docs/cluster-coherence.md): a revoking
//! transaction records what it revoked ([`revoke`]); its commit numbers
//! and publishes it (the trigger of migration 0008); every process listens,
//! applies each revocation to its memory and, if it holds a lease,
//! acknowledges it; the revoking call returns only once every node holding
//! a live lease has acknowledged, or that lease has run out ([`Acks::wait`]).

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::lease;
use super::memory::Memory;
use crate::catalog::Result;
use crate::catalog::Revoked;

type Tx = Transaction<'static, Postgres>;

pub const REVOCATIONS: &str = "vaultplus_revocations";
pub const ACKS: &str = "vaultplus_acks";

/// How often a waiting revoker reads the acknowledgements recorded in the
/// table, besides those it hears.
const REREAD_EVERY: Duration = Duration::from_millis(100);

/// Pause before listening again after the listener failed.
const RETRY_AFTER: Duration = Duration::from_millis(500);

tokio::task_local! {
    /// Set when the running transaction revoked something (see `in_tx!`).
    static REVOKED: Cell<bool>;
}

/// Runs one transaction attempt, answering whether it revoked anything.
pub async fn tracking<F: Future>(attempt: F) -> (F::Output, bool) {
    REVOKED
        .scope(Cell::new(false), async {
            let out = attempt.await;
            (out, REVOKED.with(Cell::get))
        })
        .await
}

/// Records in the transaction that it revokes `what`; published at commit.
/// Written every time, even twice in one transaction: a savepoint rolled
/// back may have undone the first record.
pub async fn revoke(tx: &mut Tx, what: &Revoked) -> Result<()> {
    sqlx::query(
        "INSERT INTO revocations_pending (txid, what) VALUES (pg_current_xact_id(), $1) \
         ON CONFLICT DO NOTHING",
    )
    .bind(what.tag())
    .execute(&mut **tx)
    .await?;
    let _ = REVOKED.try_with(|r| r.set(true));
    Ok(())
}

/// The current value of the revocation clock.
pub async fn clock(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT seq FROM revocation_clock")
        .fetch_one(pool)
        .await?)
}

/// The acknowledgements other nodes sent, as heard by this process (while
/// its listener is down none are heard, and waits end by leases running
/// out).
#[derive(Default)]
pub struct Acks {
    latest: Mutex<HashMap<String, i64>>,
    heard: Notify,
}

impl Acks {
    fn heard(&self, node: &str, seq: i64) {
        let mut latest = self.latest.lock().expect("acks lock poisoned");
        let e = latest.entry(node.to_owned()).or_insert(seq);
        *e = (*e).max(seq);
        drop(latest);
        self.heard.notify_waiters();
    }

    fn acked(&self, node: &str) -> i64 {
        let latest = self.latest.lock().expect("acks lock poisoned");
        latest.get(node).copied().unwrap_or(i64::MIN)
    }

    /// Waits until every node holding a live lease has acknowledged the
    /// revocations committed so far, or its lease has run out. Called after
    /// the revoking commit, so the clock read here is at least its number,
    /// and no lease read here can be renewed without acknowledging it (a
    /// renewal holds the clock row shared while it commits, so none still
    /// committing can be missed by this read).
    pub async fn wait(&self, pool: &PgPool) -> Result<()> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT seq FROM revocation_clock) AS seq, node_id, acked_seq, \
             lease_until - {now} AS left_ms FROM node_leases WHERE lease_until > {now}",
            now = super::dialect::NOW_MS
        )))
        .fetch_all(pool)
        .await?;
        let started = Instant::now();
        let mut waiting: Vec<(String, Instant, i64)> = Vec::new();
        for r in &rows {
            let seq: i64 = r.try_get("seq")?;
            if r.try_get::<i64, _>("acked_seq")? >= seq {
                continue;
            }
            // At most a lease (a database clock stepped back must not make
            // a revoker wait longer), plus the margin by which the node
            // itself stops early: defence in depth, not needed by the proof.
            let left = Duration::from_millis(r.try_get::<i64, _>("left_ms")?.max(0) as u64);
            let until = started + left.min(lease::LEASE) + lease::MARGIN;
            waiting.push((r.try_get("node_id")?, until, seq));
        }
        let mut reread_at = started + REREAD_EVERY;
        loop {
            // Registered before checking, so an ack heard in between wakes us.
            let heard = self.heard.notified();
            tokio::pin!(heard);
            heard.as_mut().enable();
            let now = Instant::now();
            waiting.retain(|(node, until, seq)| *until > now && self.acked(node) < *seq);
            if waiting.is_empty() {
                return Ok(());
            }
            if now >= reread_at {
                // Acks also land in the table: seen here even when this
                // process's listener is down and heard none.
                let nodes: Vec<String> = waiting.iter().map(|w| w.0.clone()).collect();
                let acked: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT node_id, acked_seq FROM node_leases WHERE node_id = ANY($1)",
                )
                .bind(&nodes)
                .fetch_all(pool)
                .await?;
                for (node, seq) in acked {
                    self.heard(&node, seq);
                }
                reread_at = now + REREAD_EVERY;
                continue;
            }
            let next = waiting
                .iter()
                .map(|w| w.1)
                .min()
                .unwrap_or(now)
                .min(reread_at);
            tokio::select! {
                () = heard => {}
                () = tokio::time::sleep_until(next.into()) => {}
            }
        }
    }
}

/// What the listener task works with.
pub struct Listening {
    pub pool: PgPool,
    pub node_id: String,
    pub memory: Weak<Memory>,
    pub acks: Weak<Acks>,
    /// Whether this process holds a lease (then it acknowledges).
    pub leased: watch::Receiver<bool>,
    pub stop: CancellationToken,
}

/// Listens for revocations and acknowledgements until stopped; starts over
/// (dropping everything held) whenever its connection is lost.
pub async fn listen(l: Listening) {
    let (seen_tx, seen_rx) = watch::channel(0i64);
    tokio::spawn(acknowledge(
        l.pool.clone(),
        l.node_id.clone(),
        seen_rx,
        l.leased.clone(),
        l.stop.clone(),
    ));
    while !l.stop.is_cancelled() {
        let outcome = tokio::select! {
            () = l.stop.cancelled() => return,
            r = listen_once(&l, &seen_tx) => r,
        };
        if let Some(m) = l.memory.upgrade() {
            m.deafened();
        }
        if let Err(e) = outcome {
            tracing::warn!(error = %format!("{e:#}"), "revocation listener failed; listening again");
        }
        tokio::select! {
            () = l.stop.cancelled() => return,
            () = tokio::time::sleep(RETRY_AFTER) => {}
        }
    }
}

/// One connection's worth of listening; returns when it is lost, or when
/// the lease asks for a fresh start (renewals kept being refused: this
/// connection delivers nothing, though it has not failed).
async fn listen_once(l: &Listening, seen: &watch::Sender<i64>) -> Result<()> {
    let mut listener = PgListener::connect_with(&l.pool).await?;
    listener.listen_all([REVOCATIONS, ACKS]).await?;
    // Read after LISTEN: every revocation numbered above it will arrive.
    let from = clock(&l.pool).await?;
    let (Some(memory), Some(acks)) = (l.memory.upgrade(), l.acks.upgrade()) else {
        return Ok(());
    };
    memory.listening_from(from);
    seen.send_replace(from);
    loop {
        let n = tokio::select! {
            n = listener.try_recv() => n?,
            () = memory.relisten_asked() => anyhow::bail!("lease renewals kept being refused"),
        };
        let Some(n) = n else {
            anyhow::bail!("the revocation listener lost its connection");
        };
        let (head, rest) = n.payload().split_once(' ').unwrap_or((n.payload(), ""));
        match n.channel() {
            REVOCATIONS => {
                let Ok(seq) = head.parse::<i64>() else {
                    anyhow::bail!("unreadable revocation {:?}", n.payload());
                };
                if memory.revoked(seq, &Revoked::parse_list(rest)) {
                    seen.send_replace(seq);
                }
            }
            ACKS => {
                if let Ok(seq) = rest.parse::<i64>() {
                    acks.heard(head, seq);
                }
            }
            _ => {}
        }
    }
}

/// Sends this node's acknowledgement of the latest revocation it applied,
/// coalescing bursts (one notification for many revocations).
async fn acknowledge(
    pool: PgPool,
    node_id: String,
    mut seen: watch::Receiver<i64>,
    leased: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = seen.changed() => if changed.is_err() { return },
        }
        if !*leased.borrow() {
            continue;
        }
        let seq = *seen.borrow_and_update();
        // Recorded and heard at once: revokers listening wake at the
        // notification, others find it in the table.
        let sent = sqlx::query(
            "UPDATE node_leases SET acked_seq = greatest(acked_seq, $1) WHERE node_id = $2 \
             RETURNING pg_notify($3, $4)",
        )
        .bind(seq)
        .bind(&node_id)
        .bind(ACKS)
        .bind(format!("{node_id} {seq}"))
        .execute(&pool)
        .await;
        if let Err(e) = sent {
            // Revokers then wait for this node's lease to run out instead.
            tracing::warn!(error = %e, "cannot acknowledge a revocation");
        }
    }
}
