//! Signed media URLs. A token names one variant of one scope (a scope is a
//! connection's current generation of media, so a token can never reach
//! another connection's media, nor media stored after a purge), the
//! variant's own generation (so it never serves bytes stored after a
//! delete, eviction or replace: `catalog::generation`) and its expiry; an
//! HMAC-SHA256 over all of it makes it unforgeable and impossible to
//! extend. An expiry further ahead than any setting can give is refused,
//! so even a token signed by mistake (or with a leaked key) for the far
//! future stops at the longest lifetime a URL can have. The newest signing key signs; every key still in
//! the catalog verifies, so rotation does not break URLs already handed out.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::catalog::{ScopeId, SigningKeyRecord};
use crate::model::settings::MAX_URL_TTL_SECONDS;
use crate::model::{Label, MediaId};

type HmacSha256 = Hmac<Sha256>;
/// 2: the payload carries the variant generation. Version 1 tokens (no
/// generation) are refused like any malformed token.
const VERSION: u8 = 2;

/// The longest a URL can be valid for, in seconds: the largest
/// `presignedUrlTtlSeconds` plus the rounding window of [`UrlSigner::expiry_for`]
/// at that TTL. Tokens expiring later are refused and `max-age` never
/// exceeds it.
/// Longest token looked at; longer ones are malformed, unread.
pub const MAX_TOKEN_LEN: usize = 512;
/// What every token looks like: payload and tag, unpadded base64url, joined
/// by a dot (what [`UrlSigner::sign`] writes), for the document.
pub const TOKEN_PATTERN: &str = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$";

pub const MAX_TOKEN_LIFETIME_SECS: u64 = MAX_URL_TTL_SECONDS + rounding_window(MAX_URL_TTL_SECONDS);

/// How far [`UrlSigner::expiry_for`] may round an expiry up at `ttl`.
const fn rounding_window(ttl: u64) -> u64 {
    let w = ttl / 10;
    if w == 0 { 1 } else { w }
}

/// What a valid token grants access to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub scope_id: ScopeId,
    pub media_id: MediaId,
    pub label: Label,
    /// The variant's generation when the URL was handed out.
    pub generation: i64,
    /// Unix seconds.
    pub expires_at: u64,
}

impl Grant {
    /// Seconds a cache may keep what this grant served, at `now_s`: until
    /// the expiry, and never longer than a URL can live.
    pub fn max_age(&self, now_s: u64) -> u64 {
        self.expires_at
            .saturating_sub(now_s)
            .min(MAX_TOKEN_LIFETIME_SECS)
    }
}

/// Signing keys as (key ID, secret), newest last.
type Keys = Vec<(u32, Vec<u8>)>;

/// The epoch of keys read without one: never the catalog's.
const UNCONFIRMED: u64 = u64::MAX;

/// Shared by every clone: a reload (after a rotation) reaches all of them.
#[derive(Clone)]
pub struct UrlSigner {
    keys: Arc<RwLock<Keys>>,
    /// When a token named a newer key than this signer holds, the last time
    /// (epoch ms) that made it reload: at most one such reload a second, so
    /// forged tokens cannot turn into catalog reads.
    last_forced_reload: Arc<AtomicI64>,
    /// The catalog's key epoch the keys held were read at (see
    /// `Catalog::keys_epoch`); written under the keys' lock.
    epoch: Arc<AtomicU64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    /// Signed with a key newer than any this signer holds (rotated by
    /// another process, not reloaded here yet).
    UnknownKey,
    BadSignature,
    Expired,
    /// Expires further ahead than [`MAX_TOKEN_LIFETIME_SECS`].
    TooFarAhead,
}

impl UrlSigner {
    pub fn new(records: &[SigningKeyRecord]) -> anyhow::Result<Self> {
        let signer = Self {
            keys: Arc::new(RwLock::new(Vec::new())),
            last_forced_reload: Arc::new(AtomicI64::new(0)),
            epoch: Arc::new(AtomicU64::new(UNCONFIRMED)),
        };
        signer.replace_keys(records)?;
        Ok(signer)
    }

    /// Takes the catalog's current keys (after a rotation or retirement),
    /// read at no known key epoch: they are confirmed before they are
    /// trusted again (a slow reload may hold keys read before a
    /// retirement that a confirmed reload already replaced).
    pub fn replace_keys(&self, records: &[SigningKeyRecord]) -> anyhow::Result<()> {
        self.replace_keys_at(records, None)
    }

    /// Takes keys read once the catalog's key epoch was `epoch` (`None`:
    /// no known epoch): they are trusted while the epoch stays (keys and
    /// epoch change together).
    pub fn replace_keys_at(
        &self,
        records: &[SigningKeyRecord],
        epoch: Option<u64>,
    ) -> anyhow::Result<()> {
        let mut keys: Keys = records
            .iter()
            .map(|r| (r.id as u32, r.secret.clone()))
            .collect();
        keys.sort_by_key(|(id, _)| *id);
        anyhow::ensure!(!keys.is_empty(), "no URL signing key in the catalog");
        let mut held = self.keys.write().expect("signing keys lock poisoned");
        *held = keys;
        self.epoch
            .store(epoch.unwrap_or(UNCONFIRMED), Ordering::SeqCst);
        Ok(())
    }

    /// The key epoch the keys held were read at, if known.
    pub fn epoch(&self) -> Option<u64> {
        Some(self.epoch.load(Ordering::SeqCst)).filter(|e| *e != UNCONFIRMED)
    }

    /// Whether a token naming an unknown newer key may make this signer
    /// reload now (at most once a second).
    pub fn may_reload(&self, now_ms: i64) -> bool {
        let last = self.last_forced_reload.load(Ordering::Relaxed);
        now_ms - last >= 1000
            && self
                .last_forced_reload
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// The expiry a URL gets when issued at `now_s` with `ttl` seconds:
    /// rounded up to a tenth of the TTL, so listings within one window hand
    /// out identical, cacheable URLs.
    pub fn expiry_for(now_s: u64, ttl: u64) -> u64 {
        let window = rounding_window(ttl);
        (now_s + ttl).div_ceil(window) * window
    }

    pub fn sign(&self, grant: &Grant) -> String {
        let keys = self.keys.read().expect("signing keys lock poisoned");
        let (kid, secret) = keys.last().expect("signer holds at least one key");
        let payload = encode_payload(*kid, grant);
        let tag = mac(secret, &payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Checks a token at time `now_s` (Unix seconds).
    pub fn verify(&self, token: &str, now_s: u64) -> Result<Grant, TokenError> {
        let (payload_b64, tag_b64) = token.split_once('.').ok_or(TokenError::Malformed)?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag_b64)
            .map_err(|_| TokenError::Malformed)?;
        let (kid, grant) = decode_payload(&payload).ok_or(TokenError::Malformed)?;
        {
            let keys = self.keys.read().expect("signing keys lock poisoned");
            let newest = keys.last().map_or(0, |(id, _)| *id);
            let (_, secret) = keys.iter().find(|(id, _)| *id == kid).ok_or(
                // A retired key is as good as a forged signature.
                if kid > newest {
                    TokenError::UnknownKey
                } else {
                    TokenError::BadSignature
                },
            )?;
            // verify_slice compares in constant time.
            mac(secret, &payload)
                .verify_slice(&tag)
                .map_err(|_| TokenError::BadSignature)?;
        }
        if grant.expires_at <= now_s {
            return Err(TokenError::Expired);
        }
        if grant.expires_at - now_s > MAX_TOKEN_LIFETIME_SECS {
            return Err(TokenError::TooFarAhead);
        }
        Ok(grant)
    }
}

fn mac(secret: &[u8], payload: &[u8]) -> HmacSha256 {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(b"vaultplus-media-url");
    m.update(payload);
    m
}

fn encode_payload(kid: u32, g: &Grant) -> Vec<u8> {
    let mut p = Vec::with_capacity(96);
    p.push(VERSION);
    p.extend_from_slice(&kid.to_be_bytes());
    p.extend_from_slice(&g.scope_id.to_be_bytes());
    p.extend_from_slice(&g.generation.to_be_bytes());
    p.extend_from_slice(&g.expires_at.to_be_bytes());
    for part in [g.media_id.as_str(), g.label.as_str()] {
        p.push(part.len() as u8);
        p.extend_from_slice(part.as_bytes());
    }
    p
}

fn decode_payload(p: &[u8]) -> Option<(u32, Grant)> {
    let (&version, rest) = p.split_first()?;
    if version != VERSION || rest.len() < 28 {
        return None;
    }
    let kid = u32::from_be_bytes(rest[0..4].try_into().ok()?);
    let scope_id = i64::from_be_bytes(rest[4..12].try_into().ok()?);
    let generation = i64::from_be_bytes(rest[12..20].try_into().ok()?);
    let expires_at = u64::from_be_bytes(rest[20..28].try_into().ok()?);
    let mut rest = &rest[28..];
    let mut parts = Vec::with_capacity(2);
    for _ in 0..2 {
        let (&len, tail) = rest.split_first()?;
        let len = len as usize;
        if tail.len() < len {
            return None;
        }
        parts.push(std::str::from_utf8(&tail[..len]).ok()?);
        rest = &tail[len..];
    }
    if !rest.is_empty() {
        return None;
    }
    Some((
        kid,
        Grant {
            scope_id,
            media_id: MediaId::parse(parts[0]).ok()?,
            label: Label::parse(parts[1]).ok()?,
            generation,
            expires_at,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(ids: &[i64]) -> UrlSigner {
        let recs: Vec<_> = ids
            .iter()
            .map(|&id| SigningKeyRecord {
                id,
                secret: vec![id as u8; 32],
                created_at: 0,
            })
            .collect();
        UrlSigner::new(&recs).unwrap()
    }

    fn grant() -> Grant {
        Grant {
            scope_id: 7,
            media_id: MediaId::parse("4492994399").unwrap(),
            label: Label::parse("full").unwrap(),
            generation: 42,
            expires_at: 10_000,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let s = signer(&[1]);
        let t = s.sign(&grant());
        assert_eq!(s.verify(&t, 9_999).unwrap(), grant());
        assert_eq!(s.verify(&t, 10_000), Err(TokenError::Expired));
    }

    /// The document's pattern and length describe every token signed,
    /// down to the longest grant.
    #[test]
    fn tokens_have_the_documented_shape() {
        let re = regex::Regex::new(TOKEN_PATTERN).unwrap();
        let mut long = grant();
        long.scope_id = i64::MAX;
        long.media_id = MediaId::parse(&"9".repeat(32)).unwrap();
        long.label = Label::parse(&"w".repeat(32)).unwrap();
        long.generation = i64::MAX;
        long.expires_at = u64::MAX;
        for g in [grant(), long] {
            let t = signer(&[i64::MAX]).sign(&g);
            assert!(re.is_match(&t), "{t}");
            assert!(t.len() <= MAX_TOKEN_LEN, "{} bytes", t.len());
        }
    }

    #[test]
    fn tampering_is_detected() {
        let s = signer(&[1]);
        let t = s.sign(&grant());
        let mut other = grant();
        other.expires_at = 99_999;
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(encode_payload(1, &other)),
            t.split_once('.').unwrap().1
        );
        assert_eq!(s.verify(&forged, 0), Err(TokenError::BadSignature));
        assert!(s.verify(&t[..t.len() - 2], 0).is_err());
        assert!(s.verify(&t[..t.len() - 3], 0).is_err());
        assert_eq!(s.verify("garbage", 0), Err(TokenError::Malformed));
    }

    #[test]
    fn rotation_keeps_old_urls_valid() {
        let old = signer(&[1]).sign(&grant());
        let rotated = signer(&[1, 2]);
        assert!(rotated.verify(&old, 0).is_ok());
        assert_ne!(rotated.sign(&grant()), old);
        assert_eq!(
            signer(&[2]).verify(&old, 0),
            Err(TokenError::BadSignature),
            "retired"
        );
        let newer = signer(&[3]).sign(&grant());
        assert_eq!(signer(&[2]).verify(&newer, 0), Err(TokenError::UnknownKey));
        // A reload reaches every clone.
        let shared = signer(&[1]);
        let clone = shared.clone();
        shared
            .replace_keys(&[SigningKeyRecord {
                id: 2,
                secret: vec![2; 32],
                created_at: 0,
            }])
            .unwrap();
        assert_eq!(clone.verify(&old, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn the_generation_is_signed() {
        let s = signer(&[1]);
        let t = s.sign(&grant());
        assert_eq!(s.verify(&t, 0).unwrap().generation, 42);
        let mut other = grant();
        other.generation = 43;
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(encode_payload(1, &other)),
            t.split_once('.').unwrap().1
        );
        assert_eq!(s.verify(&forged, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn old_version_tokens_are_refused() {
        let s = signer(&[1]);
        let t = s.sign(&grant());
        let mut payload = URL_SAFE_NO_PAD
            .decode(t.split_once('.').unwrap().0)
            .unwrap();
        payload[0] = 1;
        let tag = mac(&[1; 32], &payload).finalize().into_bytes();
        let v1 = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        );
        assert_eq!(s.verify(&v1, 0), Err(TokenError::Malformed));
    }

    #[test]
    fn far_future_tokens_are_refused() {
        let s = signer(&[1]);
        let now = 1_800_000_000;
        let at = |expires_at| Grant {
            expires_at,
            ..grant()
        };
        // The longest URL a setting can give verifies, to its last second.
        let longest = UrlSigner::expiry_for(now, MAX_URL_TTL_SECONDS);
        assert!(longest - now <= MAX_TOKEN_LIFETIME_SECS);
        assert!(s.verify(&s.sign(&at(longest)), now).is_ok());
        let edge = now + MAX_TOKEN_LIFETIME_SECS;
        assert!(s.verify(&s.sign(&at(edge)), now).is_ok());
        assert_eq!(
            s.verify(&s.sign(&at(edge + 1)), now),
            Err(TokenError::TooFarAhead)
        );
        assert_eq!(
            s.verify(&s.sign(&at(u64::MAX)), now),
            Err(TokenError::TooFarAhead)
        );
        // max-age never exceeds the lifetime either.
        assert_eq!(at(u64::MAX).max_age(now), MAX_TOKEN_LIFETIME_SECS);
        assert_eq!(at(now + 60).max_age(now), 60);
        assert_eq!(at(now - 1).max_age(now), 0);
    }

    #[test]
    fn expiry_rounds_up_to_window() {
        assert_eq!(UrlSigner::expiry_for(1000, 3600), 4680);
        assert_eq!(UrlSigner::expiry_for(1001, 3600), 4680);
        assert_eq!(UrlSigner::expiry_for(1081, 3600), 5040);
    }
}
