//! What every blob store does with a body as it arrives: counts it against
//! the size limit and hashes it, so that each store writes the same answer
//! (`PutOutcome`) and refuses an oversized body at the same byte.

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::{ByteStream, PutError, PutOutcome};

pub struct Intake {
    size: u64,
    limit: u64,
    hasher: Sha256,
}

impl Intake {
    pub fn new(limit: u64) -> Self {
        Self {
            size: 0,
            limit,
            hasher: Sha256::new(),
        }
    }

    /// The body's next chunk, counted and hashed; `None` at its end. The
    /// chunk that takes the body past the limit is an error.
    pub async fn next(&mut self, body: &mut ByteStream) -> Result<Option<Bytes>, PutError> {
        let Some(chunk) = body.next().await else {
            return Ok(None);
        };
        let chunk = chunk.map_err(PutError::from_body)?;
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(PutError::TooLarge { limit: self.limit });
        }
        self.hasher.update(&chunk);
        Ok(Some(chunk))
    }

    /// The size and SHA-256 of what was taken in.
    pub fn outcome(self) -> PutOutcome {
        PutOutcome {
            size_bytes: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        }
    }
}
