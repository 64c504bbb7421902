//! URL signing secrets encrypted at rest under a master key.
//!
//! Whoever reads a signing secret can forge media URLs for every tenant,
//! and the secrets live in the catalog (a file on disk, or a shared
//! database with its backups). With a master key (`--master-key-file`,
//! `VAULTPLUS_MASTER_KEY_FILE`) each secret is stored sealed:
//! XChaCha20-Poly1305 under a key derived from the master key, with a
//! random nonce, and the signing key's ID as associated data, so a sealed
//! secret copied onto another key's row does not open. Without a master key
//! secrets are stored as they are, and read access to the catalog equals
//! URL forgery.
//!
//! The rule is written once, here, for every catalog: a catalog stores the
//! bytes it is given. A stored secret is sealed when it starts with
//! [`MAGIC`] and is long enough to hold a nonce and a tag; a plaintext
//! secret is always [`SECRET_LEN`] bytes (shorter than any sealed one), so
//! the two never look alike and no schema change is needed.
//!
//! The master key file holds 32 random bytes in base64 (`openssl rand
//! -base64 32 > master.key`, or `vaultplus master-key generate`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::catalog::{Catalog, SigningKeyRecord};

/// Bytes of a signing secret.
pub const SECRET_LEN: usize = 32;
/// Bytes of a master key.
pub const MASTER_KEY_LEN: usize = 32;
/// Marks a sealed secret (format version 1).
const MAGIC: &[u8; 4] = b"VPS1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// The master key is never used as is: this names what the derived key is
/// for, so another use of the same master key gets another key.
const PURPOSE: &[u8] = b"vaultplus url signing secrets v1";

/// The environment variable that names the master key file.
pub const MASTER_KEY_ENV: &str = "VAULTPLUS_MASTER_KEY_FILE";

/// Seals and opens signing secrets; without a master key it passes
/// plaintext through and refuses sealed secrets.
#[derive(Clone, Default)]
pub struct SecretBox {
    key: Option<Arc<SealingKey>>,
}

struct SealingKey {
    cipher: XChaCha20Poly1305,
    /// Where the master key came from, for messages.
    source: PathBuf,
}

/// Never shows the key.
impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(k) => write!(f, "SecretBox(master key from {})", k.source.display()),
            None => f.write_str("SecretBox(no master key)"),
        }
    }
}

/// Whether a stored secret is sealed (see the module doc).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.len() >= MAGIC.len() + NONCE_LEN + TAG_LEN && stored.starts_with(MAGIC)
}

fn associated_data(key_id: i64) -> Vec<u8> {
    let mut aad = b"vaultplus signing key ".to_vec();
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad
}

/// A webhook secret's associated data: another domain than the signing
/// keys', so neither kind of sealed secret opens as the other.
fn webhook_associated_data(endpoint_id: &str) -> Vec<u8> {
    let mut aad = b"vaultplus webhook endpoint ".to_vec();
    aad.extend_from_slice(endpoint_id.as_bytes());
    aad
}

fn receipt_associated_data(key_id: &str) -> Vec<u8> {
    let mut aad = b"vaultplus receipt key ".to_vec();
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

/// A new master key, as the text a master key file holds.
pub fn generate_master_key() -> String {
    let mut key = [0u8; MASTER_KEY_LEN];
    rand::rng().fill_bytes(&mut key);
    format!("{}\n", STANDARD.encode(key))
}

impl SecretBox {
    /// No master key: secrets are stored as they are.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Reads a master key file (32 bytes in base64), warning when other
    /// users may read it.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the master key file {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format!("{mode:04o}"),
                    "the master key file can be read by other users: chmod 600 it"
                );
            }
        }
        Self::from_text(&text, path)
    }

    fn from_text(text: &str, source: &Path) -> anyhow::Result<Self> {
        let wrong = || {
            format!(
                "the master key file {} must hold {MASTER_KEY_LEN} random bytes in base64 \
                 (make one with `openssl rand -base64 32 > master.key` or \
                 `vaultplus master-key generate master.key`)",
                source.display()
            )
        };
        let raw = STANDARD
            .decode(text.trim())
            .ok()
            .filter(|k| k.len() == MASTER_KEY_LEN)
            .ok_or_else(|| anyhow::anyhow!(wrong()))?;
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&raw)
            .map_err(|_| anyhow::anyhow!(wrong()))?;
        mac.update(PURPOSE);
        let derived = mac.finalize().into_bytes();
        Ok(Self {
            key: Some(Arc::new(SealingKey {
                cipher: XChaCha20Poly1305::new(&derived),
                source: source.to_owned(),
            })),
        })
    }

    /// The bytes to store for key `key_id`'s secret: sealed with a master
    /// key, else the secret itself.
    pub fn seal(&self, key_id: i64, secret: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.seal_bound(
            &associated_data(key_id),
            &format!("signing key {key_id}"),
            secret,
        )
    }

    /// The secret of key `key_id` from its stored bytes. A sealed secret
    /// without a master key, or one the master key does not open, is an
    /// error: never a reason to make a new key, which would break every
    /// URL handed out.
    pub fn open(&self, key_id: i64, stored: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.open_bound(
            &associated_data(key_id),
            &format!("URL signing key {key_id}"),
            stored,
        )
    }

    /// The bytes to store for a webhook endpoint's signing secret, bound to
    /// the endpoint's ID the way a URL signing secret is bound to its key's.
    pub fn seal_webhook_secret(&self, endpoint_id: &str, secret: &[u8]) -> anyhow::Result<Vec<u8>> {
        let what = format!("the secret of webhook endpoint {endpoint_id}");
        self.seal_bound(&webhook_associated_data(endpoint_id), &what, secret)
    }

    /// A webhook endpoint's signing secret from its stored bytes.
    pub fn open_webhook_secret(&self, endpoint_id: &str, stored: &[u8]) -> anyhow::Result<Vec<u8>> {
        let what = format!("the secret of webhook endpoint {endpoint_id}");
        self.open_bound(&webhook_associated_data(endpoint_id), &what, stored)
    }

    /// The bytes to store for a receipt signing key's seed, bound to the
    /// key's ID (a third domain of associated data).
    pub fn seal_receipt_key(&self, key_id: &str, seed: &[u8]) -> anyhow::Result<Vec<u8>> {
        let what = format!("receipt signing key {key_id}");
        self.seal_bound(&receipt_associated_data(key_id), &what, seed)
    }

    /// A receipt signing key's seed from its stored bytes.
    pub fn open_receipt_key(&self, key_id: &str, stored: &[u8]) -> anyhow::Result<Vec<u8>> {
        let what = format!("receipt signing key {key_id}");
        self.open_bound(&receipt_associated_data(key_id), &what, stored)
    }

    fn seal_bound(&self, aad: &[u8], what: &str, secret: &[u8]) -> anyhow::Result<Vec<u8>> {
        let Some(k) = &self.key else {
            return Ok(secret.to_vec());
        };
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = k
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: secret, aad })
            .map_err(|_| anyhow::anyhow!("cannot encrypt {what}"))?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open_bound(&self, aad: &[u8], what: &str, stored: &[u8]) -> anyhow::Result<Vec<u8>> {
        if !is_sealed(stored) {
            return Ok(stored.to_vec());
        }
        let Some(k) = &self.key else {
            bail!(
                "{what} in the catalog is encrypted and no master key was given: set \
                 {MASTER_KEY_ENV} (or --master-key-file) to the master key file it was \
                 encrypted with"
            );
        };
        let (nonce, sealed) = stored[MAGIC.len()..].split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).context("a sealed secret's nonce")?;
        k.cipher
            .decrypt(&nonce, Payload { msg: sealed, aad })
            .map_err(|_| {
                anyhow::anyhow!(
                    "the master key from {} does not open {what}: it is not the master key \
                     the secrets were encrypted with (or the catalog row was altered); give \
                     the right one in {MASTER_KEY_ENV}",
                    k.source.display()
                )
            })
    }

    /// A key record whose secret is ready to store.
    pub fn sealed_record(&self, key: &SigningKeyRecord) -> anyhow::Result<SigningKeyRecord> {
        Ok(SigningKeyRecord {
            secret: self.seal(key.id, &key.secret)?,
            ..key.clone()
        })
    }
}

/// The catalog's signing keys with their secrets opened. Fails, naming the
/// problem, when one cannot be opened (no master key, or the wrong one).
pub async fn open_keys(
    catalog: &dyn Catalog,
    secrets: &SecretBox,
) -> anyhow::Result<Vec<SigningKeyRecord>> {
    catalog
        .signing_keys()
        .await?
        .into_iter()
        .map(|k| {
            Ok(SigningKeyRecord {
                secret: secrets.open(k.id, &k.secret)?,
                ..k
            })
        })
        .collect()
}

/// With a master key, seals the secrets still stored in plaintext (written
/// before there was one). Each row is replaced only if it still holds what
/// was read, so a concurrent rotation or retirement is never undone.
/// Answers how many were sealed; checks first that every sealed secret
/// opens, so a wrong master key changes nothing.
pub async fn seal_plaintext(catalog: &dyn Catalog, secrets: &SecretBox) -> anyhow::Result<u64> {
    if !secrets.has_key() {
        return Ok(0);
    }
    let stored = catalog.signing_keys().await?;
    for k in &stored {
        secrets.open(k.id, &k.secret)?;
    }
    let mut sealed = 0;
    for k in stored.iter().filter(|k| !is_sealed(&k.secret)) {
        let new = secrets.seal(k.id, &k.secret)?;
        if catalog
            .replace_signing_secret(k.id, &k.secret, &new)
            .await?
        {
            sealed += 1;
        }
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(text: &str) -> SecretBox {
        SecretBox::from_text(text, Path::new("test.key")).unwrap()
    }

    fn a_key() -> SecretBox {
        keyed(&generate_master_key())
    }

    #[test]
    fn sealed_secrets_open_and_do_not_show_the_secret() {
        let b = a_key();
        let secret = [9u8; SECRET_LEN];
        let stored = b.seal(3, &secret).unwrap();
        assert!(is_sealed(&stored));
        assert!(
            !stored.windows(8).any(|w| secret.windows(8).any(|s| s == w)),
            "no run of the secret shows in what is stored"
        );
        assert_eq!(b.open(3, &stored).unwrap(), secret);
        // A fresh nonce each time.
        assert_ne!(b.seal(3, &secret).unwrap(), stored);
    }

    #[test]
    fn a_sealed_secret_is_bound_to_its_key_id() {
        let b = a_key();
        let stored = b.seal(1, &[1u8; SECRET_LEN]).unwrap();
        let err = b.open(2, &stored).unwrap_err().to_string();
        assert!(err.contains("does not open URL signing key 2"), "{err}");
    }

    #[test]
    fn another_master_key_or_a_changed_byte_does_not_open() {
        let stored = a_key().seal(1, &[1u8; SECRET_LEN]).unwrap();
        let err = a_key().open(1, &stored).unwrap_err().to_string();
        assert!(err.contains(MASTER_KEY_ENV), "{err}");
        let b = a_key();
        let mut stored = b.seal(1, &[1u8; SECRET_LEN]).unwrap();
        let last = stored.len() - 1;
        stored[last] ^= 1;
        assert!(b.open(1, &stored).is_err());
    }

    #[test]
    fn without_a_master_key_plaintext_passes_and_sealed_is_refused() {
        let none = SecretBox::none();
        let secret = [5u8; SECRET_LEN];
        assert_eq!(none.seal(1, &secret).unwrap(), secret);
        assert_eq!(none.open(1, &secret).unwrap(), secret);
        let sealed = a_key().seal(1, &secret).unwrap();
        let err = none.open(1, &sealed).unwrap_err().to_string();
        assert!(err.contains(MASTER_KEY_ENV), "{err}");
    }

    #[test]
    fn a_sealed_webhook_secret_is_bound_to_its_endpoint() {
        let b = a_key();
        let stored = b.seal_webhook_secret("whk_a", &[3u8; SECRET_LEN]).unwrap();
        assert!(is_sealed(&stored));
        assert_eq!(
            b.open_webhook_secret("whk_a", &stored).unwrap(),
            [3u8; SECRET_LEN]
        );
        let err = b
            .open_webhook_secret("whk_b", &stored)
            .unwrap_err()
            .to_string();
        assert!(err.contains("webhook endpoint whk_b"), "{err}");
        // Not a signing key's secret either.
        assert!(b.open(1, &stored).is_err());
    }

    #[test]
    fn plaintext_secrets_never_look_sealed() {
        // Even one that happens to start with the marker.
        let mut secret = [0u8; SECRET_LEN];
        secret[..4].copy_from_slice(MAGIC);
        assert!(!is_sealed(&secret));
        assert_eq!(a_key().open(1, &secret).unwrap(), secret);
    }

    #[test]
    fn the_same_master_key_text_opens_what_it_sealed() {
        let text = generate_master_key();
        let stored = keyed(&text).seal(7, b"the secret").unwrap();
        // With surrounding whitespace, as an editor may leave it.
        let again = keyed(&format!("  {}\n\n", text.trim()));
        assert_eq!(again.open(7, &stored).unwrap(), b"the secret");
    }

    #[test]
    fn master_key_files_must_hold_32_bytes_of_base64() {
        for bad in [
            "",
            "not base64!",
            &STANDARD.encode([1u8; 16]),
            &hex::encode([1u8; 32]),
        ] {
            let err = SecretBox::from_text(bad, Path::new("m.key"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("m.key") && err.contains("openssl rand"),
                "{err}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let text = generate_master_key();
        let shown = format!("{:?}", keyed(&text));
        assert!(!shown.contains(text.trim()), "{shown}");
        assert!(shown.contains("test.key"));
    }
}
