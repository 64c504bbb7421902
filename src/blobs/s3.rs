//! Blobs as objects in an S3-compatible bucket (AWS S3, Garage, MinIO, ...),
//! through the `object_store` crate.
//!
//! Durability and atomicity come from the object store itself: a single PUT
//! and a completed multipart upload both become visible whole, or not at
//! all. Bodies up to one part go up in one PUT; larger ones as a multipart
//! upload of [`PART_SIZE`] parts with at most [`PARTS_IN_FLIGHT`] parts in
//! memory, aborted on any error (too large, body error, store error, or the
//! write being dropped) so that nothing shows under the key. Reads larger
//! than one read part are ranged GETs in parallel ([`super::s3_ranged`]).
//!
//! Configuration: [`S3Options`], whose fields left `None` fall back to the
//! standard AWS environment variables. `object_store`'s
//! [`AmazonS3Builder::from_env`] reads every `AWS_*` variable it knows,
//! which covers `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` (and `AWS_DEFAULT_REGION`),
//! `AWS_SESSION_TOKEN` and `AWS_ALLOW_HTTP`; explicit options override them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{
    ClientConfigKey, GetOptions, GetRange, GetResult, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig, WriteMultipart,
};
use tokio::sync::Semaphore;

use super::intake::Intake;
use super::probe_cache::ProbeCache;
use super::s3_ranged::{self, MAX_PART_BYTES, RangedReads};
use super::{BlobRead, BlobStore, ByteStream, PutError, PutOutcome};

/// Size of one multipart part, and the largest body sent as a single PUT.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploading at once for one body: bounds a write's memory to about
/// `(PARTS_IN_FLIGHT + 1) * PART_SIZE`.
pub const PARTS_IN_FLIGHT: usize = 2;
/// Where [`BlobStore::ping`] writes its probes, under the prefix. No blob
/// key can start with a dot, and `list` skips this directory.
const PING_DIR: &str = ".vaultplus-ping";
/// The whole-request timeout of the client that reads blobs. object_store's
/// default (30 s, from connecting until the body's last byte) would cut a
/// media stream that a slow or paused client takes longer to read; its
/// resumed requests run out after 3 minutes. Opening a read is bounded by
/// [`OPEN_TIMEOUT`] instead.
const STREAM_TIMEOUT: &str = "1day";
/// Time for a read to be answered (headers, retries included).
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how to reach the bucket. Fields left `None` fall back to the
/// standard AWS environment variables (see the module docs).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// `s3://bucket` or `s3://bucket/optional/prefix`.
    pub url: String,
    /// e.g. `http://127.0.0.1:3900` for a self-hosted server; requests are
    /// then path-style (`endpoint/bucket/key`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow a plain `http://` endpoint.
    pub allow_http: Option<bool>,
    /// How large reads are split into parallel ranged GETs.
    pub reads: RangedReads,
}

/// Never shows the secret key, whoever prints the options.
impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("allow_http", &self.allow_http)
            .field("reads", &self.reads)
            .finish()
    }
}

pub struct S3BlobStore {
    /// For everything but reads: object_store's default timeouts.
    store: Arc<AmazonS3>,
    /// For reads, whose bodies stream at the pace of the client.
    reader: Arc<AmazonS3>,
    bucket: String,
    /// Empty for the whole bucket.
    prefix: Path,
    /// For health probes (and the HEAD that tells an empty blob from a
    /// failed read): at most [`PROBE_RETRIES`] retry and a short timeout, so
    /// that during an outage a probe fails fast instead of costing the ten
    /// retries real uploads get.
    prober: Arc<AmazonS3>,
    /// Health checks share recent probes.
    probes: ProbeCache,
    reads: RangedReads,
    /// Bytes that reads of this store may hold ahead of their clients.
    read_budget: Arc<Semaphore>,
}

/// Retries of one probe request (real uploads keep object_store's default).
const PROBE_RETRIES: usize = 1;
/// Time for each probe request (the write, then the delete).
const PROBE_TIMEOUT: &str = "5s";

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3BlobStore(s3://{}/{})", self.bucket, self.prefix)
    }
}

/// Splits `s3://bucket/prefix` into the bucket and a clean prefix.
fn parse_url(url: &str) -> anyhow::Result<(String, Path)> {
    let rest = url.strip_prefix("s3://").with_context(|| {
        format!("blob store URL {url:?} must look like s3://bucket or s3://bucket/prefix")
    })?;
    if rest.contains(['?', '#']) {
        bail!("blob store URL {url:?} must not have a query or fragment");
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !bucket_ok {
        bail!(
            "blob store URL {url:?}: {bucket:?} is not a valid bucket name \
             (3-63 lowercase letters, digits, '-' or '.')"
        );
    }
    let prefix = prefix.trim_end_matches('/');
    let prefix = Path::parse(prefix)
        .with_context(|| format!("blob store URL {url:?}: {prefix:?} is not a valid prefix"))?;
    if prefix.parts().any(|p| p.as_ref().starts_with('.')) {
        bail!("blob store URL {url:?}: prefix parts must not start with '.'");
    }
    Ok((bucket.to_owned(), prefix))
}

impl S3BlobStore {
    /// Configures the client; does not contact the server (see
    /// [`BlobStore::ping`]).
    pub fn open(opts: &S3Options) -> anyhow::Result<Self> {
        let (bucket, prefix) = parse_url(&opts.url)?;
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        if let Some(e) = &opts.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(r) = &opts.region {
            b = b.with_region(r);
        }
        if let Some(k) = &opts.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &opts.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        if let Some(h) = opts.allow_http {
            b = b.with_allow_http(h);
        }
        if let Some(endpoint) = b.get_config_value(&AmazonS3ConfigKey::Endpoint) {
            // Self-hosted servers (Garage, MinIO) want path-style requests.
            b = b.with_virtual_hosted_style_request(false);
            let allow_http = b
                .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            if endpoint.starts_with("http://") && !allow_http {
                bail!(
                    "S3 endpoint {endpoint} is plain HTTP: allow it explicitly \
                     (allow_http, or AWS_ALLOW_HTTP=true)"
                );
            }
        }
        let reader = b
            .clone()
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                STREAM_TIMEOUT,
            )
            .build()
            .with_context(|| format!("cannot configure the S3 blob store for {}", opts.url))?;
        let prober = b
            .clone()
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                PROBE_TIMEOUT,
            )
            .with_retry(RetryConfig {
                max_retries: PROBE_RETRIES,
                ..RetryConfig::default()
            })
            .build()
            .with_context(|| format!("cannot configure the S3 blob store for {}", opts.url))?;
        let store = b
            .build()
            .with_context(|| format!("cannot configure the S3 blob store for {}", opts.url))?;
        let reads = RangedReads {
            part_bytes: opts.reads.part_bytes.clamp(1, MAX_PART_BYTES),
            parallelism: opts.reads.parallelism.max(1),
            budget_bytes: opts.reads.budget_bytes,
        };
        Ok(Self {
            store: Arc::new(store),
            reader: Arc::new(reader),
            prober: Arc::new(prober),
            bucket,
            prefix,
            probes: ProbeCache::default(),
            read_budget: reads.budget(),
            reads,
        })
    }

    /// Sends one GET and waits for its answer's head; None for a missing
    /// blob.
    async fn open_read(
        &self,
        key: &str,
        path: &Path,
        range: Option<std::ops::Range<u64>>,
    ) -> anyhow::Result<Option<GetResult>> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let opened = tokio::time::timeout(OPEN_TIMEOUT, self.reader.get_opts(path, opts))
            .await
            .with_context(|| {
                format!(
                    "reading blob {} got no answer within {OPEN_TIMEOUT:?}",
                    self.describe(key)
                )
            })?;
        match opened {
            Ok(g) => Ok(Some(g)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read blob {}", self.describe(key))),
        }
    }

    /// A whole read whose first GET (one part's range) the store refused.
    /// A store answers such a range of an empty object with 416 (it has no
    /// byte to give), so a HEAD tells an empty blob from a failed read.
    async fn empty_or(
        &self,
        path: &Path,
        failed: anyhow::Error,
    ) -> anyhow::Result<Option<BlobRead>> {
        match self.prober.head(path).await {
            Ok(meta) if meta.size == 0 => Ok(Some(BlobRead {
                len: 0,
                body: futures::stream::empty().boxed(),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            _ => Err(failed),
        }
    }

    /// Writes and deletes a small object under the ping prefix.
    async fn probe(&self) -> anyhow::Result<()> {
        let probe = self.join(&format!("{PING_DIR}/{}", uuid::Uuid::new_v4().simple()));
        self.prober
            .put(&probe, PutPayload::from_static(b"ok"))
            .await
            .with_context(|| {
                format!(
                    "bucket s3://{} is not reachable or not writable",
                    self.bucket
                )
            })?;
        self.prober
            .delete(&probe)
            .await
            .with_context(|| format!("cannot delete the probe {probe} in s3://{}", self.bucket))?;
        Ok(())
    }

    fn path_of(&self, key: &str) -> anyhow::Result<Path> {
        // Keys are generated by vaultplus; still refuse anything that is not
        // a clean relative path, so no key can escape the prefix.
        let ok = !key.is_empty()
            && key.len() <= 256
            && key.split('/').all(|p| {
                !p.is_empty()
                    && !p.starts_with('.')
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !ok {
            bail!("invalid blob key {key:?}");
        }
        Ok(self.join(key))
    }

    fn join(&self, rel: &str) -> Path {
        rel.split('/')
            .fold(self.prefix.clone(), |p, part| p.join(part))
    }

    fn describe(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.join(key))
    }

    /// Streams the rest of a body that outgrew one part as a multipart
    /// upload. The caller aborts the upload on error.
    async fn put_large(
        &self,
        upload: &mut WriteMultipart,
        first: Vec<Bytes>,
        mut body: ByteStream,
        intake: &mut Intake,
    ) -> Result<(), PutError> {
        for chunk in first {
            upload.put(chunk);
        }
        while let Some(chunk) = intake.next(&mut body).await? {
            upload
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .context("cannot upload a part")?;
            upload.put(chunk);
        }
        Ok(())
    }
}

/// Aborts a multipart upload that is dropped unfinished (the request was
/// cancelled mid-body), so its parts do not linger.
struct AbortOnDrop(Option<WriteMultipart>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(upload) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(error = %e, "cannot abort an abandoned multipart upload");
                }
            });
        }
    }
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// A GET's answer, served as it streams.
fn whole(got: GetResult) -> BlobRead {
    BlobRead {
        len: got.range.end - got.range.start,
        body: got.into_stream().map_err(std::io::Error::other).boxed(),
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn ping(&self) -> anyhow::Result<()> {
        self.probes.check(|| self.probe()).await
    }

    async fn put(
        &self,
        key: &str,
        mut body: ByteStream,
        limit: u64,
    ) -> Result<PutOutcome, PutError> {
        let path = self.path_of(key)?;
        let mut intake = Intake::new(limit);
        // Gather up to one part: a body that ends within it is one PUT.
        let mut first = Vec::new();
        let mut first_len = 0usize;
        let mut overflow = None;
        while let Some(chunk) = intake.next(&mut body).await? {
            if first_len + chunk.len() > PART_SIZE {
                overflow = Some(chunk);
                break;
            }
            first_len += chunk.len();
            first.push(chunk);
        }
        match overflow {
            None => {
                self.store
                    .put(&path, first.into_iter().collect::<PutPayload>())
                    .await
                    .with_context(|| format!("cannot write blob {}", self.describe(key)))?;
            }
            Some(chunk) => {
                first.push(chunk);
                let upload =
                    self.store.put_multipart(&path).await.with_context(|| {
                        format!("cannot start uploading {}", self.describe(key))
                    })?;
                let mut guard =
                    AbortOnDrop(Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)));
                let upload = guard.0.as_mut().expect("just set");
                let streamed = self.put_large(upload, first, body, &mut intake).await;
                let upload = guard.0.take().expect("still there");
                if let Err(e) = streamed {
                    if let Err(abort) = upload.abort().await {
                        tracing::warn!(blob = key, error = %abort, "cannot abort a multipart upload");
                    }
                    return Err(e);
                }
                // finish() aborts the upload itself when a part or the
                // completion fails.
                upload
                    .finish()
                    .await
                    .with_context(|| format!("cannot complete blob {}", self.describe(key)))?;
            }
        }
        Ok(intake.outcome())
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> anyhow::Result<Option<BlobRead>> {
        let path = self.path_of(key)?;
        if let Some((_, 0)) = range {
            // HTTP cannot ask for zero bytes; answer from a HEAD.
            return Ok(self.size(key).await?.map(|_| BlobRead {
                len: 0,
                body: futures::stream::empty().boxed(),
            }));
        }
        let want = range.map(|(_, len)| len);
        if !self.reads.splits(want) {
            // At most one part: one GET, streamed.
            let range = range.map(|(offset, len)| offset..offset.saturating_add(len));
            return Ok(self.open_read(key, &path, range).await?.map(whole));
        }
        // The first part's GET also tells the blob's size (and ETag): a
        // blob within one part is read by it alone, with no extra request.
        let offset = range.map_or(0, |(offset, _)| offset);
        let first = self.reads.first_part(offset);
        let got = match self.open_read(key, &path, Some(first)).await {
            Ok(Some(got)) => got,
            Ok(None) => return Ok(None),
            // The store answered (no timeout): perhaps an empty blob.
            Err(e) if range.is_none() && e.downcast_ref::<object_store::Error>().is_some() => {
                return self.empty_or(&path, e).await;
            }
            Err(e) => return Err(e),
        };
        let size = got.meta.size;
        let end = want.map_or(size, |len| offset.saturating_add(len).min(size));
        if got.range.end >= end {
            return Ok(Some(whole(got)));
        }
        let len = end - got.range.start;
        let body = s3_ranged::stream(
            self.reader.clone(),
            path,
            self.describe(key),
            got,
            end,
            self.reads,
            self.read_budget.clone(),
            OPEN_TIMEOUT,
        );
        Ok(Some(BlobRead { len, body }))
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let path = self.path_of(key)?;
        match self.store.delete(&path).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot delete blob {}", self.describe(key))),
        }
    }

    /// DeleteObjects requests of up to 1,000 keys each (`object_store`'s
    /// `delete_stream` batches them so).
    async fn delete_many(&self, keys: &[String]) -> anyhow::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let paths = keys
            .iter()
            .map(|k| self.path_of(k))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let results: Vec<_> = self
            .store
            .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed())
            .collect()
            .await;
        let mut failed = 0usize;
        let mut first = None;
        for r in results {
            match r {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    failed += 1;
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            None => Ok(()),
            Some(e) => Err(anyhow::Error::new(e).context(format!(
                "cannot delete {failed} of {} blobs in s3://{}",
                keys.len(),
                self.bucket
            ))),
        }
    }

    async fn free_bytes(&self) -> anyhow::Result<Option<u64>> {
        Ok(None)
    }

    async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        let path = self.path_of(key)?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot stat blob {}", self.describe(key))),
        }
    }

    async fn list(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let mut listing = self.store.list(prefix);
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.with_context(|| format!("cannot list s3://{}", self.bucket))?;
            let Some(parts) = meta.location.prefix_match(&self.prefix) else {
                continue;
            };
            let rel: Vec<String> = parts.map(|p| p.as_ref().to_owned()).collect();
            if rel.first().is_some_and(|p| p == PING_DIR) || rel.is_empty() {
                continue;
            }
            keys.push((rel.join("/"), meta.size));
        }
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_bucket_and_prefix() {
        let (b, p) = parse_url("s3://media").unwrap();
        assert_eq!((b.as_str(), p.as_ref()), ("media", ""));
        let (b, p) = parse_url("s3://media-1/a/b/").unwrap();
        assert_eq!((b.as_str(), p.as_ref()), ("media-1", "a/b"));
    }

    #[test]
    fn malformed_urls_are_refused_clearly() {
        for (url, says) in [
            ("media", "must look like s3://bucket"),
            ("http://media/x", "must look like s3://bucket"),
            ("s3://", "not a valid bucket name"),
            ("s3://Media", "not a valid bucket name"),
            ("s3://a", "not a valid bucket name"),
            ("s3://media/a//b", "not a valid prefix"),
            ("s3://media/../b", "not a valid prefix"),
            ("s3://media/.x", "must not start with '.'"),
            ("s3://media/x?y=1", "query or fragment"),
        ] {
            let err = format!("{:#}", parse_url(url).unwrap_err());
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn plain_http_endpoint_needs_allow_http() {
        let opts = S3Options {
            url: "s3://media/p".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("us-east-1".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            allow_http: Some(false),
            reads: RangedReads::default(),
        };
        let err = format!("{:#}", S3BlobStore::open(&opts).unwrap_err());
        assert!(err.contains("plain HTTP"), "{err}");
        let ok = S3BlobStore::open(&S3Options {
            allow_http: Some(true),
            ..opts
        })
        .unwrap();
        assert_eq!(ok.path_of("s/abc-1").unwrap().as_ref(), "p/s/abc-1");
        assert!(ok.path_of("../x").is_err());
        assert!(ok.path_of("a//b").is_err());
        assert!(ok.path_of("").is_err());
    }

    /// A stand-in S3 endpoint that answers every request 503 and counts
    /// them.
    async fn failing_endpoint() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        (format!("http://{addr}"), count)
    }

    #[tokio::test]
    async fn a_failed_probe_retries_once_and_is_reused() {
        use std::sync::atomic::Ordering;
        let (endpoint, requests) = failing_endpoint().await;
        let store = S3BlobStore::open(&S3Options {
            url: "s3://media/p".into(),
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            allow_http: Some(true),
            reads: RangedReads::default(),
        })
        .unwrap();
        let err = format!("{:#}", store.ping().await.unwrap_err());
        assert!(err.contains("not reachable or not writable"), "{err}");
        // The PUT and its one retry (real uploads would try 11 times).
        assert_eq!(requests.load(Ordering::SeqCst), 1 + PROBE_RETRIES);
        // Checks right after share the failure instead of probing again.
        for _ in 0..5 {
            assert!(store.ping().await.is_err());
        }
        assert_eq!(requests.load(Ordering::SeqCst), 1 + PROBE_RETRIES);
    }
}
