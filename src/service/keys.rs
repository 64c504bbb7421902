//! API keys: `vpk_<id>_<secret>`. Only the SHA-256 of the secret is stored;
//! the ID finds the record and the hashes are compared in constant time.
//! The secret carries 256 random bits, so a fast hash is enough: there is
//! nothing to brute-force that a slow hash would protect.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::catalog::{ApiKeyRecord, OrgId};
use crate::model::KeyScope;

const PREFIX: &str = "vpk_";

/// A freshly minted key: the record to store and the text to show once.
pub struct MintedKey {
    pub record: ApiKeyRecord,
    pub plaintext: String,
}

pub fn mint(org: OrgId, scopes: Vec<KeyScope>, now: i64) -> MintedKey {
    let mut rng = rand::rng();
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    MintedKey {
        record: ApiKeyRecord {
            id: id.clone(),
            org_id: org,
            secret_hash: hash(&secret),
            scopes,
            created_at: now,
            revoked_at: None,
        },
        plaintext: format!("{PREFIX}{id}_{secret}"),
    }
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Splits a presented key into (id, secret) if it has our shape.
pub fn split(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || secret.is_empty() {
        return None;
    }
    Some((id, secret))
}

/// True when `secret` hashes to the stored hash (constant time).
pub fn secret_matches(record: &ApiKeyRecord, secret: &str) -> bool {
    let presented = hash(secret);
    presented.ct_eq(&record.secret_hash).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_key_verifies_and_stores_no_secret() {
        let k = mint(1, vec![KeyScope::Account], 0);
        let (id, secret) = split(&k.plaintext).unwrap();
        assert_eq!(id, k.record.id);
        assert!(secret_matches(&k.record, secret));
        assert!(!secret_matches(&k.record, "wrong"));
        assert!(
            !k.record
                .secret_hash
                .windows(8)
                .any(|w| secret.as_bytes().windows(8).any(|s| s == w))
        );
    }

    #[test]
    fn malformed_keys_do_not_split() {
        for bad in [
            "",
            "vpk_",
            "vpk_zz_x",
            "abc_0123456789abcdef_x",
            "vpk_0123456789abcdef_",
        ] {
            assert!(split(bad).is_none(), "{bad:?}");
        }
    }
}
