//! URL signing keys: the first one, rotation, retirement, and reloading
//! them into a running server. The newest key signs; every key still in the
//! catalog verifies, so URLs handed out before a rotation keep working until
//! they expire.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

use rand::RngCore;

use crate::catalog::{Catalog, SigningKeyRecord};
use crate::model::settings::MAX_URL_TTL_SECONDS;
use crate::model::time::{DAY_MS, now_ms};

use super::VaultService;
use super::secret_box::{self, SECRET_LEN, SecretBox};
use super::signing::UrlSigner;

/// How often a server re-reads its signing keys even without a change
/// signal from the catalog, by default.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// A new key, its secret as stored (sealed when there is a master key).
fn fresh(id: i64, secrets: &SecretBox) -> anyhow::Result<SigningKeyRecord> {
    let mut secret = vec![0u8; SECRET_LEN];
    rand::rng().fill_bytes(&mut secret);
    secrets.sealed_record(&SigningKeyRecord {
        id,
        secret,
        created_at: now_ms(),
    })
}

/// The URL signer, creating the first signing key if there is none. With
/// a master key, secrets still in plaintext are sealed first; a secret that
/// cannot be opened (no master key, the wrong one) stops the start.
pub async fn signer(catalog: &dyn Catalog, secrets: &SecretBox) -> anyhow::Result<UrlSigner> {
    let sealed = secret_box::seal_plaintext(catalog, secrets).await?;
    if sealed > 0 {
        tracing::info!(
            sealed,
            "URL signing secrets stored in plaintext are now encrypted with the master key"
        );
    }
    let mut keys = secret_box::open_keys(catalog, secrets).await?;
    if keys.is_empty() {
        catalog.insert_signing_key(&fresh(1, secrets)?).await?;
        keys = secret_box::open_keys(catalog, secrets).await?;
    }
    UrlSigner::new(&keys)
}

/// Adds a new signing key (new URLs use it once servers reload, within a
/// second: the catalog signals the change) and drops keys that no unexpired URL can still use: a
/// key is dead once its successor has signed for longer than the longest
/// URL lifetime. Returns the new key's ID and the IDs dropped. With a
/// master key the new secret is sealed (and any still in plaintext); the
/// existing keys must open first, so a wrong master key or a missing one
/// (where secrets are sealed) changes nothing.
pub async fn rotate(catalog: &dyn Catalog, secrets: &SecretBox) -> anyhow::Result<(i64, Vec<i64>)> {
    secret_box::seal_plaintext(catalog, secrets).await?;
    let keys = secret_box::open_keys(catalog, secrets).await?;
    let next = keys.iter().map(|k| k.id).max().unwrap_or(0) + 1;
    catalog.insert_signing_key(&fresh(next, secrets)?).await?;
    let keys = catalog.signing_keys().await?;
    let horizon = now_ms() - (MAX_URL_TTL_SECONDS as i64 * 1000 + DAY_MS);
    let mut dropped = Vec::new();
    for pair in keys.windows(2) {
        if pair[1].created_at < horizon && catalog.delete_signing_key(pair[0].id).await? {
            dropped.push(pair[0].id);
        }
    }
    Ok((next, dropped))
}

/// Drops a key at once: every URL it signed stops working (a leaked key).
/// The newest key cannot be retired; rotate first.
pub async fn retire(catalog: &dyn Catalog, id: i64) -> anyhow::Result<()> {
    let keys = catalog.signing_keys().await?;
    anyhow::ensure!(keys.iter().any(|k| k.id == id), "no signing key {id}");
    anyhow::ensure!(
        keys.iter().any(|k| k.id > id),
        "key {id} is the newest; run `vaultplus signing-keys rotate` first"
    );
    catalog.delete_signing_key(id).await?;
    Ok(())
}

impl VaultService {
    /// Takes the catalog's current signing keys.
    pub async fn reload_signing_keys(&self) -> anyhow::Result<()> {
        let keys = secret_box::open_keys(self.catalog.as_ref(), &self.config.secrets).await?;
        self.signer.replace_keys(&keys)
    }

    /// Makes sure the keys that just verified a token may be trusted: as
    /// held, while the catalog's key epoch is the one they were read at;
    /// else read again (a key retired on another node, or this node
    /// without a lease: then before every use). Only called for tokens that
    /// verified, so forged ones never turn into catalog reads.
    pub(super) async fn confirm_signing_keys(&self) -> anyhow::Result<bool> {
        let epoch = self.catalog.keys_epoch();
        if epoch.is_some() && epoch == self.signer.epoch() {
            return Ok(false);
        }
        let keys = secret_box::open_keys(self.catalog.as_ref(), &self.config.secrets).await?;
        self.signer.replace_keys_at(&keys, epoch)?;
        Ok(true)
    }
}

/// Keeps a server's keys in step with the catalog: at once when the
/// catalog signals a change by another process or node (a retired key stops
/// verifying within a second), and every `every` in any case (the signal
/// can be missed while a PostgreSQL listener reconnects).
pub async fn run_reloader(service: VaultService, every: Duration, stop: CancellationToken) {
    let mut changes = match service.catalog().watch_changes().await {
        Ok(rx) => Some(rx),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot watch the catalog for key changes; reloading periodically only");
            None
        }
    };
    loop {
        let changed = async {
            match changes.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            alive = changed => if !alive { changes = None },
            () = stop.cancelled() => return,
        }
        if let Err(e) = service.reload_signing_keys().await {
            tracing::warn!(error = %format!("{e:#}"), "cannot reload URL signing keys");
        }
    }
}
