//! Short-lived signed CDN URLs, like the upstream's: the path names the
//! media, its revision and the rendition file; `exp` (Unix seconds) and
//! `sig` (hex HMAC-SHA256 over path and expiry) ride in the query string.
//! The key is random per process, so URLs never outlive a restart.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, PartialEq, Eq)]
pub enum UrlError {
    BadSignature,
    Expired,
}

#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl Signer {
    pub fn random() -> Self {
        Self {
            key: rand::random(),
        }
    }

    #[cfg(test)]
    pub fn with_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// `{base}/cdn/{path}?exp=..&sig=..` where `path` is
    /// `{mediaId}/{revision}/{label}.{ext}`.
    pub fn url(&self, base: &str, path: &str, exp: u64) -> String {
        format!("{base}/cdn/{path}?exp={exp}&sig={}", self.sign(path, exp))
    }

    fn sign(&self, path: &str, exp: u64) -> String {
        hex::encode(self.mac(path, exp).finalize().into_bytes())
    }

    /// Checks `sig` for `path` (as it appears after `/cdn/`) and `exp` at
    /// time `now` (Unix seconds). The signature is checked first so an
    /// expired URL is only ever reported for a genuine one.
    pub fn verify(&self, path: &str, exp: u64, sig: &str, now: u64) -> Result<(), UrlError> {
        let tag = hex::decode(sig).map_err(|_| UrlError::BadSignature)?;
        // verify_slice compares in constant time.
        self.mac(path, exp)
            .verify_slice(&tag)
            .map_err(|_| UrlError::BadSignature)?;
        if exp <= now {
            return Err(UrlError::Expired);
        }
        Ok(())
    }

    fn mac(&self, path: &str, exp: u64) -> HmacSha256 {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC-SHA256 takes a 32-byte key");
        m.update(path.as_bytes());
        m.update(b"\n");
        m.update(exp.to_string().as_bytes());
        m
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, u64, String) {
        let rest = url.strip_prefix("http://h/cdn/").expect("prefix");
        let (path, query) = rest.split_once('?').expect("query");
        let (exp, sig) = query.split_once("&sig=").expect("sig");
        let exp = exp.strip_prefix("exp=").expect("exp").parse().expect("num");
        (path.to_owned(), exp, sig.to_owned())
    }

    #[test]
    fn a_fresh_url_verifies() {
        let s = Signer::with_key([7; 32]);
        let (path, exp, sig) = parts(&s.url("http://h", "1/0/full.jpg", 1_000));
        assert_eq!(path, "1/0/full.jpg");
        assert_eq!(s.verify(&path, exp, &sig, 999), Ok(()));
    }

    #[test]
    fn an_old_url_is_expired() {
        let s = Signer::with_key([7; 32]);
        let (path, exp, sig) = parts(&s.url("http://h", "1/0/full.jpg", 1_000));
        assert_eq!(s.verify(&path, exp, &sig, 1_000), Err(UrlError::Expired));
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let s = Signer::with_key([7; 32]);
        let (path, exp, sig) = parts(&s.url("http://h", "1/0/full.jpg", 1_000));
        let bad = UrlError::BadSignature;
        assert_eq!(s.verify("2/0/full.jpg", exp, &sig, 0), Err(bad));
        assert_eq!(
            s.verify(&path, exp + 1, &sig, 0),
            Err(UrlError::BadSignature)
        );
        assert_eq!(s.verify(&path, exp, "zz", 0), Err(UrlError::BadSignature));
        assert_eq!(s.verify(&path, exp, "", 0), Err(UrlError::BadSignature));
        let other = Signer::with_key([8; 32]);
        assert_eq!(
            other.verify(&path, exp, &sig, 0),
            Err(UrlError::BadSignature)
        );
    }
}
