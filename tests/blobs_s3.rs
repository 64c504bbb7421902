//! The blob store conformance suite against a real S3 server that checks
//! signatures (`scripts/s3-server.sh` starts one; `scripts/test.sh` does so
//! for the whole suite). Each test works under its own fresh prefix of one
//! bucket.

use std::sync::Arc;

use futures::StreamExt;
use vaultplus::blobs::s3_ranged::RangedReads;
use vaultplus::blobs::{BlobStore, S3BlobStore, S3Options};
use vaultplus_conformance::blobs::Fixture;

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: these tests need a real S3 server. Run them through \
             scripts/test.sh, or start one with `scripts/s3-server.sh start DIR` and \
             `source DIR/env` first."
        ),
    }
}

fn options(prefix: &str) -> S3Options {
    let endpoint = env("VAULTPLUS_TEST_S3_ENDPOINT");
    S3Options {
        url: format!("s3://{}/{prefix}", env("VAULTPLUS_TEST_S3_BUCKET")),
        allow_http: Some(endpoint.starts_with("http://")),
        endpoint: Some(endpoint),
        region: std::env::var("AWS_REGION").ok(),
        access_key_id: Some(env("AWS_ACCESS_KEY_ID")),
        secret_access_key: Some(env("AWS_SECRET_ACCESS_KEY")),
        reads: Default::default(),
    }
}

fn fresh_prefix() -> String {
    format!("conformance/{}", uuid::Uuid::new_v4().simple())
}

/// Deletes what a test left under its prefix.
struct Cleanup(Arc<S3BlobStore>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let store = self.0.clone();
        // Best effort, on a runtime of its own: the test's may be gone.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(left) = store.list().await {
                    let keys: Vec<String> = left.into_iter().map(|(k, _)| k).collect();
                    let _ = store.delete_many(&keys).await;
                }
            });
        })
        .join();
    }
}

async fn fresh() -> Fixture {
    let store = Arc::new(S3BlobStore::open(&options(&fresh_prefix())).unwrap());
    Fixture::new(store.clone(), Cleanup(store))
}

vaultplus_conformance::blob_conformance!(fresh());

/// Proves the server checks signatures: the right key id with a wrong
/// secret is refused for every operation, and a read is an error, not a
/// missing blob.
#[tokio::test]
async fn wrong_secret_key_is_refused() {
    let prefix = fresh_prefix();
    let good = S3BlobStore::open(&options(&prefix)).unwrap();
    good.put(
        "s/known",
        futures::StreamExt::boxed(futures::stream::iter([Ok(bytes::Bytes::from_static(
            b"hello",
        ))])),
        100,
    )
    .await
    .unwrap();

    let mut wrong = options(&prefix);
    let secret = wrong.secret_access_key.take().unwrap();
    wrong.secret_access_key = Some(format!("{}x", &secret[..secret.len() - 1]));
    let bad = S3BlobStore::open(&wrong).unwrap();
    assert!(bad.ping().await.is_err(), "ping with a wrong secret");
    let body =
        futures::StreamExt::boxed(futures::stream::iter([Ok(bytes::Bytes::from_static(b"x"))]));
    assert!(
        bad.put("s/other", body, 100).await.is_err(),
        "put with a wrong secret"
    );
    assert!(
        bad.get("s/known", None).await.is_err(),
        "get with a wrong secret"
    );
    assert!(
        bad.size("s/known").await.is_err(),
        "size with a wrong secret"
    );
    assert!(bad.list().await.is_err(), "list with a wrong secret");
    assert!(
        bad.delete("s/known").await.is_err(),
        "delete with a wrong secret"
    );

    // Nothing the refused client did took effect.
    assert_eq!(good.list().await.unwrap(), vec![("s/known".to_string(), 5)]);
    good.delete("s/known").await.unwrap();
}

/// A bucket that does not exist fails the health check.
#[tokio::test]
async fn missing_bucket_fails_ping() {
    let mut opts = options("p");
    opts.url = format!("s3://no-such-bucket-{}/p", uuid::Uuid::new_v4().simple());
    let store = S3BlobStore::open(&opts).unwrap();
    let err = format!("{:#}", store.ping().await.unwrap_err());
    assert!(err.contains("not reachable or not writable"), "{err}");
}

/// With only the URL given, everything else comes from the standard AWS
/// environment variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
/// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP), as
/// `scripts/s3-server.sh` exports them.
#[tokio::test]
async fn options_fall_back_to_aws_environment() {
    env("AWS_ENDPOINT_URL");
    env("AWS_ALLOW_HTTP");
    let store = S3BlobStore::open(&S3Options {
        url: format!(
            "s3://{}/{}",
            env("VAULTPLUS_TEST_S3_BUCKET"),
            fresh_prefix()
        ),
        ..Default::default()
    })
    .unwrap();
    store.ping().await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
}

/// Bodies over one part go up as a multipart upload of 8 MiB parts (S3
/// gives such objects an ETag ending in `-<parts>`); smaller ones in one
/// PUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_use_multipart_upload() {
    use object_store::ObjectStoreExt;

    let prefix = fresh_prefix();
    let store = S3BlobStore::open(&options(&prefix)).unwrap();
    let body = |len: usize| {
        futures::StreamExt::boxed(futures::stream::iter((0..len.div_ceil(1 << 20)).map(
            move |i| {
                Ok(bytes::Bytes::from(vec![
                    i as u8;
                    (len - (i << 20)).min(1 << 20)
                ]))
            },
        )))
    };
    const MIB: usize = 1 << 20;
    store.put("s/small", body(MIB), u64::MAX).await.unwrap();
    store.put("s/exact", body(8 * MIB), u64::MAX).await.unwrap();
    store
        .put("s/large", body(17 * MIB), u64::MAX)
        .await
        .unwrap();

    let raw = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(env("VAULTPLUS_TEST_S3_ENDPOINT"))
        .with_allow_http(true)
        .with_bucket_name(env("VAULTPLUS_TEST_S3_BUCKET"))
        .with_region(std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()))
        .with_access_key_id(env("AWS_ACCESS_KEY_ID"))
        .with_secret_access_key(env("AWS_SECRET_ACCESS_KEY"))
        .build()
        .unwrap();
    let etag = |key: &'static str| {
        let raw = &raw;
        let path = object_store::path::Path::from(format!("{prefix}/{key}"));
        async move { raw.head(&path).await.unwrap().e_tag.unwrap() }
    };
    assert!(!etag("s/small").await.contains('-'));
    assert!(!etag("s/exact").await.contains('-'));
    let large = etag("s/large").await;
    assert!(large.trim_matches('"').ends_with("-3"), "{large}");
    store
        .delete_many(&["s/small".into(), "s/exact".into(), "s/large".into()])
        .await
        .unwrap();
}

/// A store under a fresh prefix whose large reads are split as `reads`
/// says, and what removes its blobs afterwards.
fn split_store(reads: RangedReads) -> (Arc<S3BlobStore>, Cleanup) {
    let store = Arc::new(
        S3BlobStore::open(&S3Options {
            reads,
            ..options(&fresh_prefix())
        })
        .unwrap(),
    );
    (store.clone(), Cleanup(store))
}

/// Position-dependent bytes, never periodic at a part size.
fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (i >> 12) as u8)
        .collect()
}

async fn put_bytes(store: &S3BlobStore, key: &str, data: &[u8]) {
    let chunks: Vec<std::io::Result<bytes::Bytes>> = data
        .chunks(256 * 1024)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    store
        .put(key, futures::stream::iter(chunks).boxed(), u64::MAX)
        .await
        .unwrap();
}

/// Reads until the end or the first error: the bytes served, the length
/// announced, and the error if one ended the stream.
async fn read_all(
    store: &S3BlobStore,
    key: &str,
    range: Option<(u64, u64)>,
) -> (Vec<u8>, u64, Option<std::io::Error>) {
    let read = store.get(key, range).await.unwrap().expect("blob present");
    let mut body = read.body;
    let mut got = Vec::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => got.extend_from_slice(&c),
            Err(e) => return (got, read.len, Some(e)),
        }
    }
    (got, read.len, None)
}

/// Whole and ranged reads split into many small parts, with many of them in
/// flight, serve exactly the bytes written: ranges from one byte inside a
/// part to across many part boundaries, at the very end, and past it (cut
/// at the end, as a single GET would be). With no read-ahead budget at all,
/// or room for only one part ahead among several reads at once, every part
/// is still served, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_reads_split_into_parts_serve_the_bytes_written() {
    const P: u64 = 100_000;
    let len = 25 * P + 12_345;
    let data = pattern(len as usize);
    let ranges = [
        (0, len),
        (0, P),
        (0, P + 1),
        (P - 10, 20),
        (P - 10, 2 * P + 20),
        (5 * P + 3, 50),
        (7 * P, 3 * P),
        (len - 1, 1),
        (len - P - 5, P + 5),
        (10, len - 10),
        (len - 3 * P - 17, 10 * P),
    ];
    for (parallelism, budget_bytes) in [(8, 1 << 30), (3, 0), (4, P + P / 2)] {
        let (store, _cleanup) = split_store(RangedReads {
            part_bytes: P,
            parallelism,
            budget_bytes,
        });
        put_bytes(&store, "s/large", &data).await;
        let what = format!("parallelism {parallelism}, budget {budget_bytes}");
        // Several reads at once, so that they share (and contend for) the
        // budget.
        let reads = futures::future::join_all(
            std::iter::once(None)
                .chain(ranges.iter().copied().map(Some))
                .map(|range| {
                    let store = store.clone();
                    async move { (range, read_all(&store, "s/large", range).await) }
                }),
        )
        .await;
        for (range, (got, announced, err)) in reads {
            assert!(err.is_none(), "{what} {range:?}: {err:?}");
            let (offset, n) = range.unwrap_or((0, len));
            let end = (offset + n).min(len);
            assert_eq!(
                announced,
                end - offset,
                "{what} {range:?}: announced length"
            );
            assert!(
                got == data[offset as usize..end as usize],
                "{what} {range:?}: {} bytes read, want {}",
                got.len(),
                end - offset
            );
        }
    }
}

/// A blob deleted while a split read streams it ends that stream with an
/// error after a correct prefix, never with a short or mixed body: every
/// part asked for after the delete is refused. Likewise a blob replaced by
/// other bytes of the same length (parts after the first must match its
/// ETag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_deleted_or_replaced_mid_read_ends_the_stream_with_an_error() {
    const P: u64 = 64 * 1024;
    let len = 64 * P + 1;
    let data = pattern(len as usize);
    let (store, _cleanup) = split_store(RangedReads {
        part_bytes: P,
        parallelism: 2,
        ..RangedReads::default()
    });
    for replace in [false, true] {
        put_bytes(&store, "s/going", &data).await;
        let read = store.get("s/going", None).await.unwrap().unwrap();
        assert_eq!(read.len, len);
        let mut body = read.body;
        let mut got = body.next().await.unwrap().unwrap().to_vec();
        if replace {
            let other: Vec<u8> = data.iter().map(|b| !b).collect();
            put_bytes(&store, "s/going", &other).await;
        } else {
            store.delete("s/going").await.unwrap();
        }
        // At most two parts were asked for before the change; 64 follow.
        let mut failed = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => got.extend_from_slice(&c),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let what = if replace { "replaced" } else { "deleted" };
        let err = failed.unwrap_or_else(|| panic!("{what}: the stream ended without an error"));
        assert!(err.to_string().contains(what), "{what}: {err}");
        assert!(got.len() < len as usize, "{what}: {} bytes", got.len());
        assert!(
            got == data[..got.len()],
            "{what}: the bytes served are not a prefix"
        );
        assert!(
            body.next().await.is_none(),
            "{what}: nothing after the error"
        );
    }
}
