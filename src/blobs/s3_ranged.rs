//! Large S3 reads as ranged GETs in parallel, served strictly in order.
//!
//! One GET streams at the pace of one connection, and a remote object store
//! gives one connection far less than it has (its window over the round
//! trip: tens of MB/s), while many connections together get the store's
//! whole throughput. So a read larger than one part is split into parts of
//! [`RangedReads::part_bytes`]: the part being served streams straight
//! through (backpressure reaches the store as before), while up to
//! `parallelism - 1` parts after it are fetched at once into memory, ready
//! when the client gets to them.
//!
//! The promises, and why they hold:
//! - **Order and completeness.** Parts are launched and served in order;
//!   each must deliver exactly its length, and any failure (a part's GET, a
//!   short or long body, a task that died) ends the stream with an error,
//!   never with fewer, extra or shuffled bytes.
//! - **One version.** Every part after the first is asked for with
//!   `If-Match` on the first part's ETag (and its size checked), so a blob
//!   deleted or replaced mid-read ends the stream with an error (404 or 412
//!   from the store) rather than a mix of two objects' bytes.
//! - **Bounded memory.** A read holds at most `parallelism - 1` parts
//!   ahead, each within its size; and every part fetched ahead first takes
//!   its bytes from a budget shared by the whole node ([`READ_AHEAD_BUDGET`]).
//!   When the budget is spent (many large reads at once, or clients that stop
//!   reading), the next part is fetched when it is needed, streaming, as a
//!   single GET would: such a node is busy enough that the store's throughput
//!   is reached across reads instead of within one.
//! - **Nothing runs for a client that left.** Read-ahead runs in tasks of
//!   the read itself (not background tasks: they end with it),
//!   aborted when the stream is dropped; their GETs close with them.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult, ObjectStore};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::AbortOnDropHandle;

use super::ByteStream;

/// Bytes fetched ahead of their clients by all reads of one node together,
/// by default: what parallel reads may cost in memory, whatever the number
/// of reads or the size of the blobs. (Four reads' worth at the defaults;
/// a read gets the parts ahead that fit.)
pub const READ_AHEAD_BUDGET: u64 = 256 * 1024 * 1024;
/// The largest part: its bytes must fit one budget acquisition (a `u32`).
pub const MAX_PART_BYTES: u64 = 1 << 30;

/// How large reads are split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangedReads {
    /// Bytes of one ranged GET; a read of at most this much is one GET.
    pub part_bytes: u64,
    /// GETs one read keeps in flight, the part being served included; 1
    /// reads every blob with one GET, as a plain client would.
    pub parallelism: usize,
    /// Bytes all reads of the store may hold ahead of their clients
    /// together ([`READ_AHEAD_BUDGET`]; not an option: tests shrink it).
    pub budget_bytes: u64,
}

impl Default for RangedReads {
    /// 4 MiB parts, 16 at once: 60 MiB ahead per read at most (64 with the
    /// part being served). One read must keep as many connections busy as
    /// the store's throughput over one connection's: a remote S3 endpoint
    /// gives one connection tens of MB/s and a node several hundred, and
    /// through `bench/s3_stream.py`'s proxy (40 MB/s per connection) the
    /// former 8 MiB x 4 reached 0.3x-0.4x of the store, 4 MiB x 16
    /// 0.5x-0.9x (BENCHMARKS.md, issue 14).
    /// For the same memory per read, smaller parts mean more connections,
    /// so 16 of 4 MiB rather than 8 of 8 MiB (what AWS suggests): a part
    /// still takes 100 ms at 40 MB/s, ten round trips of 10 ms, so each
    /// request's own latency costs little. The price, where one connection
    /// already gets all the store has (a Garage on the same host):
    /// parallel parts only add work there, and `--s3-read-parallelism 1`
    /// saves it.
    fn default() -> Self {
        Self {
            part_bytes: 4 * 1024 * 1024,
            parallelism: 16,
            budget_bytes: READ_AHEAD_BUDGET,
        }
    }
}

impl RangedReads {
    /// Whether a read of `len` bytes (None: the whole blob, size unknown)
    /// may need more than one GET.
    pub fn splits(&self, len: Option<u64>) -> bool {
        self.parallelism > 1 && len.is_none_or(|l| l > self.part_bytes)
    }

    /// The first GET of a read from `offset`: one part.
    pub fn first_part(&self, offset: u64) -> Range<u64> {
        offset..offset.saturating_add(self.part_bytes)
    }

    /// The store-wide read-ahead budget.
    pub fn budget(&self) -> Arc<Semaphore> {
        let bytes = self.budget_bytes.min(Semaphore::MAX_PERMITS as u64);
        Arc::new(Semaphore::new(bytes as usize))
    }
}

/// The part of `start..end` that begins at `start`.
fn part_at(start: u64, end: u64, part_bytes: u64) -> Range<u64> {
    start..start.saturating_add(part_bytes).min(end)
}

/// What every part of one read asks for.
struct Source {
    store: Arc<AmazonS3>,
    path: Path,
    /// `s3://bucket/key`, for errors.
    name: String,
    /// The first part's ETag: later parts must be of the same object.
    etag: Option<String>,
    /// The object's size, as the first part saw it.
    size: u64,
    open_timeout: Duration,
}

fn error(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

impl Source {
    /// Opens one later part (`If-Match` on the first part's ETag).
    async fn open(&self, range: Range<u64>) -> std::io::Result<GetResult> {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            if_match: self.etag.clone(),
            ..Default::default()
        };
        let name = &self.name;
        let opened = tokio::time::timeout(self.open_timeout, self.store.get_opts(&self.path, opts))
            .await
            .map_err(|_| {
                error(format!(
                    "reading blob {name} (bytes {range:?}) got no answer within {:?}",
                    self.open_timeout
                ))
            })?;
        let got = opened.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                error(format!("blob {name} was deleted while being read"))
            }
            object_store::Error::Precondition { .. } => {
                error(format!("blob {name} was replaced while being read"))
            }
            e => error(format!("cannot read blob {name} (bytes {range:?}): {e}")),
        })?;
        if got.meta.size != self.size || got.range != range {
            return Err(error(format!(
                "blob {name} changed while being read (size {} then {}, bytes {range:?} answered with {:?})",
                self.size, got.meta.size, got.range
            )));
        }
        Ok(got)
    }

    /// Fetches one part whole, for later.
    async fn fetch(self: Arc<Self>, range: Range<u64>) -> std::io::Result<Vec<Bytes>> {
        let want = range.end - range.start;
        let mut body = self.open(range.clone()).await?.into_stream();
        let mut chunks = Vec::new();
        let mut have = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                error(format!(
                    "cannot read blob {} (bytes {range:?}): {e}",
                    self.name
                ))
            })?;
            have += chunk.len() as u64;
            if have > want {
                break;
            }
            chunks.push(chunk);
        }
        if have != want {
            return Err(self.wrong_length(&range, have));
        }
        Ok(chunks)
    }

    fn wrong_length(&self, range: &Range<u64>, have: u64) -> std::io::Error {
        error(format!(
            "blob {}: bytes {range:?} came as {have} bytes",
            self.name
        ))
    }
}

/// A part being fetched ahead, holding its share of the budget.
struct Ahead {
    task: AbortOnDropHandle<std::io::Result<Vec<Bytes>>>,
    permit: OwnedSemaphorePermit,
}

/// The part being served.
enum Current {
    /// Streaming from its GET; `left` bytes still due.
    Streaming {
        body: ByteStreamOf,
        left: u64,
        range: Range<u64>,
    },
    /// Fetched ahead: served from memory, its budget given back once done.
    Fetched {
        chunks: VecDeque<Bytes>,
        _permit: OwnedSemaphorePermit,
    },
}

type ByteStreamOf = futures::stream::BoxStream<'static, object_store::Result<Bytes>>;

struct Body {
    source: Arc<Source>,
    reads: RangedReads,
    budget: Arc<Semaphore>,
    current: Option<Current>,
    /// Launched parts after the current one, in order.
    ahead: VecDeque<Ahead>,
    /// Where the next part to launch begins.
    next: u64,
    end: u64,
    /// After an error, nothing more.
    done: bool,
}

/// A read of `first.range.start..end` whose first part's GET is `first`
/// (already answered, so a missing blob was told apart before). Its length
/// is `end - first.range.start`.
#[allow(clippy::too_many_arguments)]
pub fn stream(
    store: Arc<AmazonS3>,
    path: Path,
    name: String,
    first: GetResult,
    end: u64,
    reads: RangedReads,
    budget: Arc<Semaphore>,
    open_timeout: Duration,
) -> ByteStream {
    let first_range = first.range.clone();
    let source = Arc::new(Source {
        store,
        path,
        name,
        etag: first.meta.e_tag.clone(),
        size: first.meta.size,
        open_timeout,
    });
    let mut body = Body {
        source,
        reads,
        budget,
        current: Some(Current::Streaming {
            left: first_range.end - first_range.start,
            range: first_range.clone(),
            body: first.into_stream(),
        }),
        ahead: VecDeque::new(),
        next: first_range.end,
        end,
        done: false,
    };
    // At once: the next parts are on their way while the response's head
    // goes out.
    body.launch_ahead();
    futures::stream::unfold(body, |mut body| async move {
        let item = body.next_chunk().await?;
        Some((item, body))
    })
    .boxed()
}

impl Body {
    /// Launches parts ahead while the read has room for them and the node's
    /// budget has their bytes.
    fn launch_ahead(&mut self) {
        while self.ahead.len() + 1 < self.reads.parallelism && self.next < self.end {
            let range = part_at(self.next, self.end, self.reads.part_bytes);
            let Ok(bytes) = u32::try_from(range.end - range.start) else {
                return;
            };
            let Ok(permit) = self.budget.clone().try_acquire_many_owned(bytes) else {
                return;
            };
            self.next = range.end;
            let task = tokio::spawn(self.source.clone().fetch(range));
            self.ahead.push_back(Ahead {
                task: AbortOnDropHandle::new(task),
                permit,
            });
        }
    }

    /// The next chunk in order, an error (once, then the end), or the end.
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.done {
            return None;
        }
        let item = self.step().await;
        if let Some(Err(_)) = &item {
            // Stop every fetch at once; nothing more is served.
            self.done = true;
            self.ahead.clear();
            self.current = None;
        }
        item
    }

    async fn step(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            self.launch_ahead();
            match &mut self.current {
                Some(Current::Streaming { body, left, range }) => match body.next().await {
                    Some(Ok(chunk)) if chunk.len() as u64 <= *left => {
                        *left -= chunk.len() as u64;
                        if !chunk.is_empty() {
                            return Some(Ok(chunk));
                        }
                    }
                    Some(Ok(chunk)) => {
                        let have = range.end - range.start - *left + chunk.len() as u64;
                        return Some(Err(self.source.wrong_length(range, have)));
                    }
                    Some(Err(e)) => {
                        return Some(Err(error(format!(
                            "cannot read blob {} (bytes {range:?}): {e}",
                            self.source.name
                        ))));
                    }
                    None if *left == 0 => self.current = None,
                    None => {
                        let have = range.end - range.start - *left;
                        return Some(Err(self.source.wrong_length(range, have)));
                    }
                },
                Some(Current::Fetched { chunks, .. }) => match chunks.pop_front() {
                    Some(chunk) => return Some(Ok(chunk)),
                    None => self.current = None,
                },
                None => {
                    if let Some(ahead) = self.ahead.pop_front() {
                        let chunks = match ahead.task.await {
                            Ok(Ok(chunks)) => chunks,
                            Ok(Err(e)) => return Some(Err(e)),
                            Err(e) => {
                                return Some(Err(error(format!(
                                    "reading blob {}: a part's fetch failed: {e}",
                                    self.source.name
                                ))));
                            }
                        };
                        self.current = Some(Current::Fetched {
                            chunks: chunks.into(),
                            _permit: ahead.permit,
                        });
                    } else if self.next < self.end {
                        // No budget for read-ahead: this part now, streaming.
                        let range = part_at(self.next, self.end, self.reads.part_bytes);
                        self.next = range.end;
                        let got = match self.source.open(range.clone()).await {
                            Ok(got) => got,
                            Err(e) => return Some(Err(e)),
                        };
                        self.current = Some(Current::Streaming {
                            left: range.end - range.start,
                            range,
                            body: got.into_stream(),
                        });
                    } else {
                        return None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_over_one_part_split() {
        let r = RangedReads {
            part_bytes: 100,
            parallelism: 4,
            budget_bytes: 1000,
        };
        assert!(r.splits(None));
        assert!(r.splits(Some(101)));
        assert!(!r.splits(Some(100)));
        assert!(!r.splits(Some(1)));
        let one = RangedReads {
            parallelism: 1,
            ..r
        };
        assert!(!one.splits(None));
        assert!(!one.splits(Some(10_000)));
    }

    #[test]
    fn parts_cover_the_read_and_end_with_it() {
        assert_eq!(part_at(0, 250, 100), 0..100);
        assert_eq!(part_at(200, 250, 100), 200..250);
        assert_eq!(part_at(u64::MAX - 1, u64::MAX, 100), u64::MAX - 1..u64::MAX);
        let r = RangedReads {
            part_bytes: 100,
            ..RangedReads::default()
        };
        assert_eq!(r.first_part(7), 7..107);
        assert_eq!(r.first_part(u64::MAX - 3), u64::MAX - 3..u64::MAX);
    }
}
