//! Signed media URLs made with the catalog's own key, for tests that must
//! present a token the server could have issued (expired, far-future,
//! another generation) without waiting for one to age.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Sha256;

use crate::harness::TestServer;

/// Byte offset of the expiry in a token's payload.
pub const EXPIRY_AT: usize = 21;
/// Byte offset of the variant generation in a token's payload.
pub const GENERATION_AT: usize = 13;

/// Re-signs altered payloads of a real URL with the catalog's own key (read
/// from the SQLite file), as only someone holding the key could.
pub struct Resigner {
    base: String,
    pub payload: Vec<u8>,
    secret: Vec<u8>,
}

impl Resigner {
    pub fn of(s: &TestServer, url: &str) -> Resigner {
        let db = s.data_dir().join("catalog.sqlite");
        let secret = hex::decode(crate::harness::sqlite(
            &db,
            "SELECT hex(secret) FROM signing_keys ORDER BY id DESC",
        ))
        .unwrap();
        let (base, token) = url.rsplit_once('/').unwrap();
        let payload = URL_SAFE_NO_PAD
            .decode(token.split_once('.').unwrap().0)
            .unwrap();
        Resigner {
            base: base.to_owned(),
            payload,
            secret,
        }
    }

    /// The URL with `bytes` written at `at` in the payload (layout:
    /// version 1, key ID 4, scope 8, generation 8, expiry 8, ...).
    pub fn with(&self, at: usize, bytes: [u8; 8]) -> String {
        use hmac::{Hmac, KeyInit, Mac};
        let mut p = self.payload.clone();
        p[at..at + 8].copy_from_slice(&bytes);
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret).unwrap();
        m.update(b"vaultplus-media-url");
        m.update(&p);
        format!(
            "{}/{}.{}",
            self.base,
            URL_SAFE_NO_PAD.encode(&p),
            URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
        )
    }
}
