//! Erasure receipts (`docs/receipts.md`): what the API answers about them,
//! how they are signed, and the last step that makes one `bytes_gone`.
//!
//! The catalog writes a receipt with its purge, removal or delete, and
//! writes its digest lines as the variants' records go; the reclaimer
//! deletes the blobs. Once none of its blobs is left queued,
//! [`finish_done`] hashes the lines in bytewise order and marks it
//! `bytes_gone`. A receipt is signed when it is read, over its JSON
//! without `signature` in RFC 8785 (JCS) form, with the first receipt key:
//! Ed25519 signatures are deterministic, so a receipt in one state always
//! carries the same signature, and a state change is a new one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use rand::RngCore;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::secret_box::SecretBox;
use super::{PageParams, Principal, ServiceError, ServiceResult, VaultService, cursor, paging};
use crate::catalog::{
    Catalog, PageRequest, ReceiptId, ReceiptKey, ReceiptKeyRecord, ReceiptRecord,
};
use crate::model::ConnectionId;
use crate::model::time::{format_iso_ms, now_ms};

/// Receipts made `bytes_gone` per round of [`finish_done`], and lines read
/// per statement while hashing one: memory stays flat in the receipt's size.
const RECEIPTS_PER_ROUND: u64 = 50;
const LINES_PER_READ: u64 = 5_000;

/// An answer that an erasure receipt covers: the body as it always was,
/// and the receipt to name in the `x-vaultplus-receipt` header.
#[derive(Clone, Debug)]
pub struct Receipted<T> {
    pub body: T,
    pub receipt: Option<ReceiptId>,
}

/// The receipt keys, opened; signs with the first (slot 1: nodes racing to
/// make it insert one between them, so every node signs with the same).
/// Kept for the life of the process: no key is added after the first
/// (rotation is not offered), so the list cannot go stale.
pub struct ReceiptSigner {
    keys: Vec<(String, SigningKey)>,
}

/// A key's ID names its public key: `rk_` and the first 16 hex digits of
/// its SHA-256.
fn key_id(key: &SigningKey) -> String {
    let digest = Sha256::digest(key.verifying_key().as_bytes());
    format!("rk_{}", hex::encode(&digest[..8]))
}

impl ReceiptSigner {
    /// Opens the catalog's receipt keys, making the first one if there is
    /// none.
    pub async fn load(catalog: &dyn Catalog, secrets: &SecretBox) -> anyhow::Result<Self> {
        let mut stored = catalog.receipt_keys().await?;
        if stored.is_empty() {
            let mut seed = [0u8; 32];
            rand::rng().fill_bytes(&mut seed);
            let key = SigningKey::from_bytes(&seed);
            let id = key_id(&key);
            let record = ReceiptKeyRecord {
                secret: secrets.seal_receipt_key(&id, &seed)?,
                id,
                slot: 1,
                created_at: now_ms(),
            };
            catalog.insert_receipt_key(&record).await?;
            stored = catalog.receipt_keys().await?;
        }
        let mut keys = Vec::with_capacity(stored.len());
        for k in &stored {
            let seed = secrets.open_receipt_key(&k.id, &k.secret)?;
            let seed: [u8; 32] = seed
                .try_into()
                .map_err(|_| anyhow::anyhow!("receipt key {} is not 32 bytes", k.id))?;
            let key = SigningKey::from_bytes(&seed);
            anyhow::ensure!(
                key_id(&key) == k.id,
                "receipt key {} does not hold the key its ID names",
                k.id
            );
            keys.push((k.id.clone(), key));
        }
        anyhow::ensure!(!keys.is_empty(), "no receipt signing key");
        Ok(Self { keys })
    }

    /// `GET /v2/vault-plus/receipts/keys`.
    pub fn public_keys(&self) -> ReceiptKeysView {
        ReceiptKeysView {
            keys: self
                .keys
                .iter()
                .map(|(id, k)| ReceiptKeyView {
                    key_id: id.clone(),
                    public_key: URL_SAFE_NO_PAD.encode(k.verifying_key().as_bytes()),
                })
                .collect(),
        }
    }

    /// The receipt's answer, signed.
    pub fn view(&self, r: &ReceiptRecord) -> ReceiptView {
        let (key_id, key) = &self.keys[0];
        let mut view = ReceiptView {
            id: r.id.clone(),
            kind: r.kind.clone(),
            connection_id: r.connection_id.clone(),
            requested_at: format_iso_ms(r.requested_at),
            purged_count: r.purged_count,
            freed_bytes: r.freed_bytes,
            state: match r.bytes_gone_at {
                Some(_) => "bytes_gone",
                None => "committed",
            },
            bytes_gone_at: r.bytes_gone_at.map(format_iso_ms),
            digest: r.digest.clone(),
            key_id: key_id.clone(),
            signature: None,
        };
        let unsigned = serde_json::to_value(&view).expect("a receipt serializes");
        let signature = key.sign(canonical(&unsigned).as_bytes());
        view.signature = Some(URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        view
    }
}

/// An erasure receipt as the API answers it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptView {
    /// `rcpt_` and 32 hex digits.
    pub id: String,
    /// `purge`, `connection_removal`, `delete` or `eviction`.
    pub kind: String,
    pub connection_id: String,
    /// When the change was committed (ISO 8601, UTC).
    pub requested_at: String,
    /// Variants removed, as the answer of the change said.
    pub purged_count: u64,
    /// Bytes freed, as the answer of the change said.
    pub freed_bytes: u64,
    /// `committed` (the change is committed; its bytes are being deleted)
    /// or `bytes_gone` (every blob it names is deleted from the blob store).
    #[schema(value_type = String, example = "bytes_gone")]
    pub state: &'static str,
    pub bytes_gone_at: Option<String>,
    /// Lowercase hex SHA-256 over the lines
    /// `{mediaId}\t{label}\t{sha256}\t{sizeBytes}\n` of every stored
    /// variant removed, sorted bytewise; null until `bytes_gone`.
    pub digest: Option<String>,
    /// The receipt key that signed it (`GET /v2/vault-plus/receipts/keys`).
    pub key_id: String,
    /// Ed25519 over the RFC 8785 (JCS) form of this object without
    /// `signature`, base64url without padding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// RFC 8785 (JCS) for the values a receipt holds: object keys sorted
/// (serde_json's map is a BTreeMap: bytewise, which for ASCII keys is the
/// UTF-16 order JCS asks for), no white space, strings escaped as JCS
/// escapes them (serde_json writes `\"`, `\\`, the short escapes and
/// `\u00xx` in lowercase hex, the rest as is), and integers in plain
/// decimal. A receipt holds no float, whose JCS form would differ.
pub fn canonical(value: &Value) -> String {
    value.to_string()
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptKeyView {
    pub key_id: String,
    /// The raw 32-byte Ed25519 public key, base64url without padding.
    pub public_key: String,
}

/// One page of a connection's receipts, newest first.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptsView {
    pub items: Vec<ReceiptView>,
    /// Present only when more receipts follow: pass it as `cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ReceiptKeysView {
    pub keys: Vec<ReceiptKeyView>,
}

impl VaultService {
    async fn receipt_signer(&self) -> ServiceResult<&ReceiptSigner> {
        let signer = self
            .receipt_signer
            .get_or_try_init(|| ReceiptSigner::load(self.catalog.as_ref(), &self.config.secrets))
            .await?;
        Ok(signer)
    }

    /// `GET /v2/vault-plus/receipts/{id}`: the caller's org's receipt.
    pub async fn receipt(&self, who: &Principal, raw_id: &str) -> ServiceResult<ReceiptView> {
        let missing = || ServiceError::NotFound("Receipt not found".into());
        let id = ReceiptId::parse(raw_id).ok_or_else(missing)?;
        let record = self
            .catalog
            .receipt(who.org_id, &id)
            .await?
            .ok_or_else(missing)?;
        Ok(self.receipt_signer().await?.view(&record))
    }

    /// `GET /v2/vault-plus/receipts`: the connection's receipts, newest
    /// first, whether or not the connection still exists (a removal's
    /// receipt outlives it), so that those no answer named (evictions by
    /// retention) can be found.
    pub async fn connection_receipts(
        &self,
        who: &Principal,
        connection: &str,
        params: &PageParams,
    ) -> ServiceResult<ReceiptsView> {
        let id = ConnectionId::parse(connection).map_err(|_| ServiceError::ConnectionNotFound)?;
        let limit = paging::limit(params.limit.as_deref())?;
        let shape = cursor::receipts_shape(id.as_str());
        let after: Option<ReceiptKey> = paging::after(params.cursor.as_deref(), &shape)?;
        let page = self
            .catalog
            .connection_receipts(who.org_id, id.as_str(), &PageRequest { limit, after })
            .await?;
        let signer = self.receipt_signer().await?;
        Ok(ReceiptsView {
            items: page.items.iter().map(|r| signer.view(r)).collect(),
            next_cursor: paging::next_cursor(page.next, &shape),
        })
    }

    pub async fn receipt_keys(&self) -> ServiceResult<ReceiptKeysView> {
        Ok(self.receipt_signer().await?.public_keys())
    }
}

/// Makes every receipt whose blobs are all deleted `bytes_gone`, with the
/// digest of its lines. Called by the reclaimer after its rounds; safe on
/// several nodes at once (the first to finish a receipt wins, the same
/// digest either way). Returns how many it finished.
pub async fn finish_done(catalog: &dyn Catalog) -> anyhow::Result<u64> {
    let mut finished = 0;
    loop {
        let done = catalog.receipts_done(RECEIPTS_PER_ROUND).await?;
        for id in &done {
            let digest = digest_of(catalog, id).await?;
            if catalog.finish_receipt(id, &digest, now_ms()).await? {
                finished += 1;
            }
        }
        if (done.len() as u64) < RECEIPTS_PER_ROUND {
            break;
        }
    }
    // The lines of finished receipts, a batch per transaction.
    while catalog.prune_receipt_lines(LINES_PER_READ).await? {}
    Ok(finished)
}

/// Lowercase hex SHA-256 over the receipt's lines, each ended by a
/// newline, in bytewise order.
async fn digest_of(catalog: &dyn Catalog, id: &ReceiptId) -> anyhow::Result<String> {
    let mut hash = Sha256::new();
    let mut after: Option<String> = None;
    loop {
        let lines = catalog
            .receipt_lines(id, after.as_deref(), LINES_PER_READ)
            .await?;
        for line in &lines {
            hash.update(line.as_bytes());
            hash.update(b"\n");
        }
        if (lines.len() as u64) < LINES_PER_READ {
            return Ok(hex::encode(hash.finalize()));
        }
        after = lines.into_iter().next_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_ids_parse_only_as_written() {
        let id = ReceiptId::random();
        assert_eq!(ReceiptId::parse(&id.to_string()), Some(id));
        for bad in [
            "",
            "rcpt_",
            "rcpt_0123",
            "RCPT_0123456789abcdef0123456789abcdef",
            "rcpt_0123456789ABCDEF0123456789abcdef",
            "rcpt_0123456789abcdef0123456789abcdeg",
            "rcpt_01234567-89ab-cdef-0123-456789abcdef",
        ] {
            assert_eq!(ReceiptId::parse(bad), None, "{bad}");
        }
    }

    /// The JCS examples that apply to a receipt's values (RFC 8785 3.2.2
    /// and 3.2.3: sorted keys, no white space, string escapes).
    #[test]
    fn canonical_form_is_jcs_for_receipt_values() {
        let v: Value = serde_json::from_str(
            "{\"b\": 2, \"a\": \"x\\u000f\\n\\\"é\", \"c\": null, \"d\": 18446744073}",
        )
        .unwrap();
        assert_eq!(
            canonical(&v),
            "{\"a\":\"x\\u000f\\n\\\"é\",\"b\":2,\"c\":null,\"d\":18446744073}"
        );
    }
}
