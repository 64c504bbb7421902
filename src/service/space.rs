//! The free-space floor (`--min-free-bytes`), with bytes in flight counted.
//!
//! Checking the floor once per write is not enough: a write that has not
//! sent its bytes yet does not show in the blob store's free space, so
//! many slow writes pass the check together and then take the store below
//! the floor (and every other tenant gets 507 while they are held open).
//! So each write reserves its bytes here first: the declared length up
//! front when it is known, else the bytes as they arrive. A write is
//! admitted only while the free space, less everything reserved and not
//! yet written, stays at or above the floor. Bytes handed to the store move
//! from the reservation to the store's own free-space figure; what is left
//! of a reservation goes back when the write ends, however it ends (the
//! [`Reservation`] is a drop guard).
//!
//! Only new stores reserve: reads, deletes and purges keep working on a
//! full disk. One ledger per process, shared by uploads and upstream
//! fetches. It is
//! exact up to the bytes a store buffers before they reach its free-space
//! figure (one write buffer per write in flight).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;

use crate::blobs::{BlobStore, ByteStream};

use super::{ServiceError, ServiceResult};

/// A body of unknown length reserves this much at a time, so the store's
/// free space is not read for every chunk.
const GROW_STEP: u64 = 1024 * 1024;
/// After a body is cut at the floor, this much more of it is read and
/// thrown away, for at most [`DRAIN_TIME`]: a client still sending when
/// the 507 goes out and the socket closes gets a reset, and many clients
/// then report a broken pipe instead of the answer. Past these bounds the
/// client gets the reset.
const DRAIN_BYTES: u64 = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone)]
pub struct SpaceLedger {
    blobs: Arc<dyn BlobStore>,
    floor: u64,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Bytes reserved by writes in progress and not handed to the store yet.
    outstanding: AtomicU64,
    /// One admission decision at a time: two writes that each read the
    /// same free space must not both take the last bytes above the floor.
    deciding: tokio::sync::Mutex<()>,
}

/// Space held for one write. Dropping it gives back what the write did not
/// use.
pub struct Reservation {
    ledger: SpaceLedger,
    /// Reserved and not yet handed to the store.
    left: u64,
    /// False when the store cannot tell its free space (an object store):
    /// there is no floor to keep, so nothing is counted.
    bounded: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.ledger
            .shared
            .outstanding
            .fetch_sub(self.left, Ordering::AcqRel);
    }
}

/// Why a reservation was refused, in words for the client.
#[derive(Debug)]
pub struct NoRoom(pub String);

impl From<NoRoom> for ServiceError {
    fn from(e: NoRoom) -> Self {
        ServiceError::InsufficientStorage(e.0)
    }
}

impl SpaceLedger {
    pub fn new(blobs: Arc<dyn BlobStore>, floor: u64) -> Self {
        Self {
            blobs,
            floor,
            shared: Arc::default(),
        }
    }

    /// Bytes reserved by writes in progress and not yet written.
    pub fn outstanding(&self) -> u64 {
        self.shared.outstanding.load(Ordering::Acquire)
    }

    /// Reserves `bytes` for a write about to start (0 when its length is
    /// unknown: it then reserves as its bytes arrive, through [`meter`]).
    /// Refused with 507 when the store would be left below the floor.
    ///
    /// [`meter`]: Reservation::meter
    pub async fn reserve(&self, bytes: u64) -> ServiceResult<Reservation> {
        let mut r = Reservation {
            ledger: self.clone(),
            left: 0,
            bounded: true,
        };
        match self.admit(bytes).await? {
            Admission::Unbounded => r.bounded = false,
            Admission::Granted => r.left = bytes,
            Admission::Refused(e) => return Err(e.into()),
        }
        Ok(r)
    }

    /// Adds `bytes` to the outstanding total if the floor allows.
    async fn admit(&self, bytes: u64) -> anyhow::Result<Admission> {
        let _one_at_a_time = self.shared.deciding.lock().await;
        // Outstanding is read before the free space: a write that hands
        // bytes to the store in between then counts twice (refusing a
        // little early), never not at all.
        let outstanding = self.outstanding();
        let Some(free) = self.blobs.free_bytes().await? else {
            return Ok(Admission::Unbounded);
        };
        if !fits(free, outstanding, bytes, self.floor) {
            return Ok(Admission::Refused(NoRoom(format!(
                "the blob store has no room for {bytes} more bytes above its free-space floor \
                 ({free} bytes free, {outstanding} reserved by uploads in progress, floor {} \
                 bytes, --min-free-bytes); new media is refused until space is freed",
                self.floor
            ))));
        }
        self.shared.outstanding.fetch_add(bytes, Ordering::AcqRel);
        Ok(Admission::Granted)
    }
}

enum Admission {
    Granted,
    Unbounded,
    Refused(NoRoom),
}

/// Whether `bytes` more can be written while keeping `floor` free.
fn fits(free: u64, outstanding: u64, bytes: u64, floor: u64) -> bool {
    free.saturating_sub(outstanding) >= floor.saturating_add(bytes) && free >= outstanding
}

impl Reservation {
    /// Counts `n` bytes as handed to the store, reserving more first when
    /// the reservation does not cover them.
    async fn take(&mut self, n: u64) -> Result<(), NoRoom> {
        if !self.bounded {
            return Ok(());
        }
        if n > self.left {
            let need = n - self.left;
            // A step ahead spares a free-space read per chunk; when the
            // step does not fit, exactly what this chunk needs may.
            let step = need.max(GROW_STEP);
            let (ask, answer) = match self.ledger.admit(step).await {
                Ok(Admission::Refused(_)) if step > need => (need, self.ledger.admit(need).await),
                other => (step, other),
            };
            match answer {
                Ok(Admission::Granted) => self.left += ask,
                Ok(Admission::Unbounded) => {
                    self.bounded = false;
                    return Ok(());
                }
                Ok(Admission::Refused(e)) => return Err(e),
                Err(e) => {
                    return Err(NoRoom(format!(
                        "cannot read the blob store's free space: {e:#}"
                    )));
                }
            }
        }
        self.left -= n;
        self.ledger
            .shared
            .outstanding
            .fetch_sub(n, Ordering::AcqRel);
        Ok(())
    }

    /// The body, counted against this reservation as it passes. A chunk
    /// the floor has no room for ends the body with an
    /// [`std::io::ErrorKind::StorageFull`] error, which a blob store
    /// reports as [`crate::blobs::PutError::NoSpace`]. The reservation
    /// lives as long as the body: whoever drops the body gives it back.
    pub fn meter(self, body: ByteStream) -> ByteStream {
        futures::stream::unfold(Some((self, body)), |state| async move {
            let (mut reservation, mut body) = state?;
            match body.next().await? {
                Ok(chunk) => match reservation.take(chunk.len() as u64).await {
                    Ok(()) => Some((Ok(chunk), Some((reservation, body)))),
                    Err(NoRoom(msg)) => {
                        drop(reservation);
                        tokio::spawn(drain(body));
                        Some((
                            Err(std::io::Error::new(std::io::ErrorKind::StorageFull, msg)),
                            None,
                        ))
                    }
                },
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed()
    }
}

/// Reads and discards the rest of a refused body, within bounds (see
/// [`DRAIN_BYTES`]).
async fn drain(mut body: ByteStream) {
    let mut left = DRAIN_BYTES;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = body.next().await {
            let Some(rest) = left.checked_sub(chunk.len() as u64) else {
                return;
            };
            left = rest;
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::{BlobRead, PutError, PutOutcome};
    use async_trait::async_trait;
    use bytes::Bytes;
    use std::sync::Mutex;

    /// A store whose free space the test sets.
    struct Disk(Mutex<Option<u64>>);

    impl Disk {
        fn with(free: Option<u64>) -> Arc<Self> {
            Arc::new(Self(Mutex::new(free)))
        }

        fn set(&self, free: u64) {
            *self.0.lock().unwrap() = Some(free);
        }
    }

    #[async_trait]
    impl BlobStore for Disk {
        async fn ping(&self) -> anyhow::Result<()> {
            Ok(())
        }
        async fn put(&self, _: &str, _: ByteStream, _: u64) -> Result<PutOutcome, PutError> {
            unimplemented!("not used by the ledger")
        }
        async fn get(&self, _: &str, _: Option<(u64, u64)>) -> anyhow::Result<Option<BlobRead>> {
            Ok(None)
        }
        async fn delete(&self, _: &str) -> anyhow::Result<()> {
            Ok(())
        }
        async fn free_bytes(&self) -> anyhow::Result<Option<u64>> {
            Ok(*self.0.lock().unwrap())
        }
        async fn size(&self, _: &str) -> anyhow::Result<Option<u64>> {
            Ok(None)
        }
        async fn list(&self) -> anyhow::Result<Vec<(String, u64)>> {
            Ok(Vec::new())
        }
    }

    fn body(chunks: &[usize]) -> ByteStream {
        let chunks: Vec<_> = chunks
            .iter()
            .map(|n| Ok(Bytes::from(vec![7u8; *n])))
            .collect();
        futures::stream::iter(chunks).boxed()
    }

    async fn drain(mut s: ByteStream) -> Result<u64, std::io::Error> {
        let mut n = 0;
        while let Some(c) = s.next().await {
            n += c?.len() as u64;
        }
        Ok(n)
    }

    #[tokio::test]
    async fn declared_lengths_add_up_against_the_floor() {
        let disk = Disk::with(Some(100));
        let ledger = SpaceLedger::new(disk.clone(), 20);
        let a = ledger.reserve(50).await.unwrap();
        assert_eq!(ledger.outstanding(), 50);
        // 100 free - 50 reserved - 40 = 10 < 20.
        assert!(ledger.reserve(40).await.is_err());
        // Exactly at the floor is allowed.
        let b = ledger.reserve(30).await.unwrap();
        assert!(ledger.reserve(1).await.is_err());
        drop(a);
        assert_eq!(ledger.outstanding(), 30);
        let c = ledger.reserve(40).await.unwrap();
        drop((b, c));
        assert_eq!(ledger.outstanding(), 0);
    }

    #[tokio::test]
    async fn written_bytes_move_from_the_reservation_to_the_store() {
        let disk = Disk::with(Some(100));
        let ledger = SpaceLedger::new(disk.clone(), 0);
        let r = ledger.reserve(60).await.unwrap();
        let mut s = r.meter(body(&[10, 10]));
        s.next().await.unwrap().unwrap();
        s.next().await.unwrap().unwrap();
        // 20 bytes are in the store now: its free space shows them, and
        // the reservation holds only the 40 not yet written.
        disk.set(80);
        assert_eq!(ledger.outstanding(), 40);
        assert!(ledger.reserve(41).await.is_err());
        let other = ledger.reserve(40).await.unwrap();
        assert!(s.next().await.is_none());
        drop(s);
        assert_eq!(ledger.outstanding(), 40);
        drop(other);
        assert_eq!(ledger.outstanding(), 0);
    }

    #[tokio::test]
    async fn unknown_lengths_reserve_as_bytes_arrive_and_stop_at_the_floor() {
        let disk = Disk::with(Some(10 * GROW_STEP));
        let ledger = SpaceLedger::new(disk.clone(), 4 * GROW_STEP);
        let held = ledger.reserve(5 * GROW_STEP).await.unwrap();
        // One step fits (10 - 5 - 1 = 4), the next chunk does not.
        let step = GROW_STEP as usize;
        let r = ledger.reserve(0).await.unwrap();
        let mut s = r.meter(body(&[step / 2, step / 2, 1]));
        s.next().await.unwrap().unwrap();
        s.next().await.unwrap().unwrap();
        // That step is written now.
        disk.set(9 * GROW_STEP);
        let err = s.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        assert!(err.to_string().contains("--min-free-bytes"), "{err}");
        assert!(s.next().await.is_none(), "the body ends after a refusal");
        drop(s);
        drop(held);
        assert_eq!(ledger.outstanding(), 0);
    }

    #[tokio::test]
    async fn a_step_that_does_not_fit_falls_back_to_the_chunk() {
        let disk = Disk::with(Some(GROW_STEP));
        let ledger = SpaceLedger::new(disk.clone(), 0);
        let r = ledger.reserve(0).await.unwrap();
        let n = drain(r.meter(body(&[100, 200]))).await.unwrap();
        assert_eq!(n, 300);
        assert_eq!(ledger.outstanding(), 0);
    }

    #[tokio::test]
    async fn a_body_dropped_midway_gives_its_reservation_back() {
        let disk = Disk::with(Some(1000));
        let ledger = SpaceLedger::new(disk.clone(), 0);
        let r = ledger.reserve(900).await.unwrap();
        let mut s = r.meter(body(&[100, 100]));
        s.next().await.unwrap().unwrap();
        assert_eq!(ledger.outstanding(), 800);
        drop(s);
        assert_eq!(ledger.outstanding(), 0);
    }

    #[tokio::test]
    async fn a_store_without_a_free_space_figure_has_no_floor() {
        let disk = Disk::with(None);
        let ledger = SpaceLedger::new(disk.clone(), u64::MAX);
        let r = ledger.reserve(u64::MAX / 2).await.unwrap();
        assert_eq!(ledger.outstanding(), 0);
        assert_eq!(drain(r.meter(body(&[10]))).await.unwrap(), 10);
        assert_eq!(ledger.outstanding(), 0);
    }

    #[test]
    fn fits_never_overflows() {
        assert!(fits(u64::MAX, 0, u64::MAX - 1, 1));
        assert!(!fits(u64::MAX, 1, u64::MAX, 1));
        assert!(!fits(10, 20, 0, 0));
        assert!(fits(10, 10, 0, 0));
    }
}
