//! One tenant's slow or stalled uploads cannot make another's stores fail:
//! bytes in flight are reserved against the free-space floor (declared
//! lengths up front, chunked bodies as they arrive) and given back when
//! the upload ends, and one connection holds at most
//! `--max-uploads-per-connection` uploads at once. Stalled clients are real
//! sockets that send a request head and a few bytes, then nothing.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::harness::{TestServer, bytes};
use crate::small_disk::Mount;

const MIB: u64 = 1024 * 1024;

/// An upload whose client stopped sending: the head (declaring `len`
/// bytes, or chunked) and a few body bytes went out, then nothing.
/// Dropping it closes the socket, as a client that goes away.
pub struct StalledUpload {
    _socket: TcpStream,
}

impl StalledUpload {
    pub async fn start(
        s: &TestServer,
        connection: &str,
        media: &str,
        len: Option<u64>,
        sent: usize,
    ) -> Self {
        let addr = s.base.trim_start_matches("http://");
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        let framing = match len {
            Some(n) => format!("content-length: {n}"),
            None => "transfer-encoding: chunked".to_owned(),
        };
        let head = format!(
            "PUT /v2/vault-plus/media/{media}/variants/full HTTP/1.1\r\nhost: {addr}\r\n\
             apiKey: {}\r\nx-connection-id: {connection}\r\ncontent-type: video/mp4\r\n\
             {framing}\r\n\r\n",
            s.key
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        let body = bytes(9, sent);
        if len.is_some() {
            socket.write_all(&body).await.unwrap();
        } else {
            // One chunk, and the next never comes.
            socket
                .write_all(format!("{sent:x}\r\n").as_bytes())
                .await
                .unwrap();
            socket.write_all(&body).await.unwrap();
            socket.write_all(b"\r\n").await.unwrap();
        }
        socket.flush().await.unwrap();
        Self { _socket: socket }
    }
}

/// Waits (up to 10 s) until `n` writes are in progress in the local blob
/// store: each has passed its admission and holds its reservation.
async fn wait_writes(s: &TestServer, n: usize) {
    for _ in 0..200 {
        if s.tmp_files() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} uploads in progress, found {}", s.tmp_files());
}

async fn chunked_upload(s: &TestServer, connection: &str, media: &str, len: usize) -> u16 {
    let chunks = futures::stream::iter(
        (0..len / (64 * 1024)).map(|i| Ok::<_, std::io::Error>(bytes(i as u8, 64 * 1024))),
    );
    let r = s
        .conn(
            Method::PUT,
            &format!("/v2/vault-plus/media/{media}/variants/full"),
            connection,
        )
        .header("content-type", "video/mp4")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// A server on a tmpfs of `size` with an 8 MiB floor and two connections,
/// conn_a and conn_b; None (after saying SKIPPED) where mounting is not
/// allowed. The mount must outlive the server.
async fn tight_server(size: &str, extra: &[&str]) -> Option<(Mount, TestServer)> {
    let Some(mount) = Mount::tmpfs_of(size) else {
        eprintln!("SKIPPED: mounting a tmpfs is not permitted here (needs root)");
        return None;
    };
    let dir = tempfile::tempdir_in(&mount.0).unwrap();
    let floor = (8 * MIB).to_string();
    let mut args = vec!["--min-free-bytes", floor.as_str()];
    args.extend_from_slice(extra);
    let s = TestServer::start_in(dir, &args).await;
    s.add_connection("default", "conn_a");
    s.add_connection("default", "conn_b");
    Some((mount, s))
}

#[tokio::test]
async fn stalled_uploads_reserve_their_bytes_and_give_them_back_on_disconnect() {
    if crate::backend::embedded_only("stalled_uploads_reserve_their_bytes") {
        return;
    }
    let Some((_mount, s)) = tight_server("48m", &[]).await else {
        return;
    };

    // conn_a: three uploads of 10 MiB each, declared and stalled after 64
    // KiB (30 MiB reserved), the most a connection may hold being 4.
    let mut stalled = Vec::new();
    for media in ["1", "2", "3"] {
        stalled.push(StalledUpload::start(&s, "conn_a", media, Some(10 * MIB), 64 * 1024).await);
    }
    wait_writes(&s, 3).await;

    // About 47 MiB free less 30 reserved leaves 9 above the floor: conn_b
    // stores 3 MiB...
    s.put(
        "conn_b",
        "10",
        "full",
        "video/mp4",
        bytes(1, 3 * MIB as usize),
    )
    .await;
    // ...but not 9 more, neither declared (refused before any byte moves)
    // nor chunked (cut when its bytes reach the floor). Without the
    // reservations both would fit: the disk itself still has 44 MiB free.
    let r = s
        .upload(
            "conn_b",
            "11",
            "full",
            "video/mp4",
            bytes(2, 9 * MIB as usize),
        )
        .await;
    assert_eq!(r.status(), 507);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "INSUFFICIENT_STORAGE");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("reserved by uploads in progress"),
        "{body}"
    );
    assert_eq!(
        chunked_upload(&s, "conn_b", "12", 9 * MIB as usize).await,
        507
    );
    // Only the three stalled writes are left in progress.
    wait_writes(&s, 3).await;

    // The stalled client goes away: its reservations come back, and the
    // same 9 MiB store now succeeds.
    drop(stalled);
    let mut status = 0;
    for _ in 0..100 {
        let r = s
            .upload(
                "conn_b",
                "11",
                "full",
                "video/mp4",
                bytes(2, 9 * MIB as usize),
            )
            .await;
        status = r.status().as_u16();
        if status == 201 {
            break;
        }
        assert_eq!(status, 507);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 201, "the reservations were not given back");
    wait_writes(&s, 0).await;
    assert_eq!(
        chunked_upload(&s, "conn_b", "12", 9 * MIB as usize).await,
        201
    );
}

#[tokio::test]
async fn a_chunked_upload_stops_at_the_floor_and_leaves_reservations_alone() {
    if crate::backend::embedded_only("a_chunked_upload_stops_at_the_floor") {
        return;
    }
    let Some((_mount, s)) = tight_server("32m", &[]).await else {
        return;
    };
    // conn_a holds 10 MiB, declared; conn_a's second upload is chunked and
    // stalls after 1 MiB, which is written or reserved.
    let mut stalled = vec![StalledUpload::start(&s, "conn_a", "1", Some(10 * MIB), 1024).await];
    stalled.push(StalledUpload::start(&s, "conn_a", "2", None, MIB as usize).await);
    wait_writes(&s, 2).await;
    // conn_b streams 16 MiB with no length: about 31 MiB free, 11
    // reserved or written, 8 of floor. It is cut with 507 where its bytes
    // would cross the floor (without the reservations it was stored, and
    // the stalled upload, were it to go on, would take the disk below the
    // floor).
    assert_eq!(
        chunked_upload(&s, "conn_b", "10", 16 * MIB as usize).await,
        507
    );
    wait_writes(&s, 2).await;
    drop(stalled);
    let mut status = 0;
    for _ in 0..100 {
        status = chunked_upload(&s, "conn_b", "10", 16 * MIB as usize).await;
        if status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 201,
        "the stalled uploads' reservations were not given back"
    );
}

#[tokio::test]
async fn a_connection_holds_at_most_four_uploads_at_once() {
    // Embedded only: the uploads in progress are seen in the local store.
    if crate::backend::embedded_only("a_connection_holds_at_most_four_uploads_at_once") {
        return;
    }
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.add_connection("default", "conn_b");
    let mut stalled = Vec::new();
    for i in 1..=4 {
        stalled.push(StalledUpload::start(&s, "conn_a", &i.to_string(), Some(MIB), 1024).await);
    }
    wait_writes(&s, 4).await;
    // A fifth from the same connection is refused, and changes nothing.
    let r = s
        .upload("conn_a", "5", "full", "image/png", bytes(1, 1000))
        .await;
    assert_eq!(r.status(), 429);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "RATE_LIMIT_EXCEEDED");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-uploads-per-connection 4"),
        "{body}"
    );
    assert!(body["requestId"].is_string());

    // Another connection is not held back.
    s.put("conn_b", "1", "full", "image/png", bytes(2, 1000))
        .await;

    // One stalled client goes away: its slot comes back.
    stalled.pop();
    let mut status = 0;
    for _ in 0..100 {
        let r = s
            .upload("conn_a", "200", "full", "image/png", bytes(3, 1000))
            .await;
        status = r.status().as_u16();
        if status == 201 {
            break;
        }
        assert_eq!(status, 429);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 201, "the slot was not given back");
}

#[tokio::test]
async fn the_upload_cap_is_an_option() {
    if crate::backend::embedded_only("the_upload_cap_is_an_option") {
        return;
    }
    let s = TestServer::start_with(&["--max-uploads-per-connection", "1"]).await;
    s.add_connection("default", "conn_a");
    let _stalled = StalledUpload::start(&s, "conn_a", "1", Some(MIB), 1024).await;
    wait_writes(&s, 1).await;
    let r = s
        .upload("conn_a", "2", "full", "image/png", bytes(1, 1000))
        .await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-uploads-per-connection 1"),
        "{body}"
    );
}

#[tokio::test]
async fn upstream_fetches_wait_while_uploads_hold_the_room() {
    if crate::backend::embedded_only("upstream_fetches_wait_while_uploads_hold_the_room") {
        return;
    }
    let Some(mount) = Mount::tmpfs_of("32m") else {
        eprintln!("SKIPPED: mounting a tmpfs is not permitted here (needs root)");
        return;
    };
    let demo = crate::demo::Demo::start(&[]);
    let mut args = crate::demo::upstream_flags(&demo);
    args.extend(["--min-free-bytes".into(), (8 * MIB).to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir_in(&mount.0).unwrap();
    let s = TestServer::start_in(dir, &args).await;
    s.add_connection("default", "conn_a");
    s.add_connection("default", "conn_b");
    // conn_b holds 20 MiB of a 32 MiB disk with an 8 MiB floor: about 3
    // MiB are left, and the videos list (about 12 MiB, the largest 4.5 MB)
    // does not fit. Without reservations all of it would: the disk itself
    // is nearly empty.
    let _stalled = StalledUpload::start(&s, "conn_b", "1", Some(20 * MIB), 1024).await;
    wait_writes(&s, 1).await;
    let (status, _) = crate::demo::add(&s, crate::demo::VIDEOS).await;
    assert!(status == 200 || status == 202, "add answered {status}");
    // The fetches that do not fit wait (no try spent) and say why.
    let mut waiting = Vec::new();
    for _ in 0..200 {
        let (_, jobs) =
            crate::demo::json(s.conn(Method::GET, "/v2/vault-plus/jobs", "conn_a")).await;
        waiting = jobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| {
                j["lastError"]
                    .as_str()
                    .is_some_and(|e| e.contains("reserved by uploads in progress"))
            })
            .cloned()
            .collect();
        if !waiting.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !waiting.is_empty(),
        "no fetch was held back by the reservation"
    );
    assert!(
        waiting
            .iter()
            .all(|j| j["attempts"] == 0 && j["state"] != "failed"),
        "{waiting:?}"
    );
}

/// Stalled uploads that stay connected are cut by the body idle timeout,
/// and what they reserved comes back: another tenant's store that did not
/// fit while they were held fits once they are cut.
#[tokio::test]
async fn the_body_idle_timeout_gives_a_stalled_tenants_room_back() {
    if crate::backend::embedded_only("the_body_idle_timeout_gives_a_stalled_tenants_room_back") {
        return;
    }
    let Some((_mount, s)) = tight_server("48m", &["--body-idle-timeout-secs", "2"]).await else {
        return;
    };
    // conn_a holds 30 MiB of declared uploads open, sending nothing more.
    let mut held = Vec::new();
    for media in ["1", "2", "3"] {
        held.push(StalledUpload::start(&s, "conn_a", media, Some(10 * MIB), 64 * 1024).await);
    }
    wait_writes(&s, 3).await;
    let store = || {
        s.upload(
            "conn_b",
            "10",
            "full",
            "video/mp4",
            bytes(1, 12 * MIB as usize),
        )
    };
    assert_eq!(store().await.status(), 507, "no room while they are held");
    // Within the timeout (and some slack for a loaded machine) they are
    // cut, still connected, and conn_b's store fits.
    let mut status = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        status = store().await.status().as_u16();
        if status == 201 {
            break;
        }
    }
    assert_eq!(
        status, 201,
        "the room came back after the body idle timeout"
    );
    wait_writes(&s, 0).await;
    drop(held);
}
