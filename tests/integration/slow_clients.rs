//! Clients that are slow, idle or hostile on the socket: each wait on a
//! client is bounded, the connection cap keeps room for new clients, and
//! memory stays bounded by design.

use std::time::Duration;

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::{TestServer, bytes};
use crate::raw_http::{connect, json_body, read_response, read_to_close, status};

const CONN: &str = "conn_slow";

/// Stores `len` bytes as media 1 and answers its signed URL's path.
async fn stored_url(s: &TestServer, len: usize) -> String {
    s.add_connection("default", CONN);
    let v = s.put(CONN, "1", "full", "video/mp4", bytes(3, len)).await;
    let url = v["url"].as_str().unwrap();
    url.trim_start_matches(&s.base).to_owned()
}

/// A socket that takes little into its receive buffer, so the server's
/// writes to it back up quickly.
async fn slow_reader(addr: &str) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(addr.parse().unwrap()).await.unwrap()
}

#[tokio::test]
async fn half_sent_heads_get_408_and_silent_sockets_are_closed() {
    let s = TestServer::start_with(&["--header-timeout-secs", "1"]).await;
    let mut half = connect(&s.addr()).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let out = read_to_close(&mut half, Duration::from_secs(10))
        .await
        .expect("closed after the header timeout");
    let answer = String::from_utf8_lossy(&out);
    assert_eq!(status(&answer), 408, "{answer}");
    assert_eq!(json_body(&answer)["type"], "REQUEST_TIMEOUT");

    // A head dribbled a byte at a time is timed from its first byte, not
    // from the last one.
    let mut drip = connect(&s.addr()).await;
    let dripping = async {
        for b in b"GET /healthz HTTP/1.1\r\nHost: somewhere.example\r\n"
            .iter()
            .cycle()
        {
            if drip.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(10), dripping)
            .await
            .is_ok(),
        "a dribbled head is cut"
    );

    let mut silent = connect(&s.addr()).await;
    let out = read_to_close(&mut silent, Duration::from_secs(10))
        .await
        .expect("a socket that sends nothing is closed");
    assert!(out.is_empty(), "closed quietly");
}

#[tokio::test]
async fn keep_alive_outlasts_the_header_timeout_and_ends_at_its_own() {
    let s = TestServer::start_with(&["--header-timeout-secs", "1", "--keep-alive-idle-secs", "4"])
        .await;
    let mut c = connect(&s.addr()).await;
    let get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    c.write_all(get).await.unwrap();
    assert_eq!(
        status(&read_response(&mut c, Duration::from_secs(5)).await),
        200
    );
    // Idle for longer than the header timeout: still open.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    c.write_all(get).await.unwrap();
    assert_eq!(
        status(&read_response(&mut c, Duration::from_secs(5)).await),
        200
    );
    let rest = read_to_close(&mut c, Duration::from_secs(15))
        .await
        .expect("closed once idle for the keep-alive time");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn a_stalled_upload_is_cut_and_leaves_nothing() {
    let s = TestServer::start_with(&["--body-idle-timeout-secs", "1"]).await;
    s.add_connection("default", CONN);
    let mut c = connect(&s.addr()).await;
    let head = format!(
        "PUT /v2/vault-plus/media/5/variants/full HTTP/1.1\r\nHost: x\r\napiKey: {}\r\nx-connection-id: {CONN}\r\nContent-Type: video/mp4\r\nContent-Length: 1000000\r\n\r\n",
        s.key
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&bytes(1, 20_000)).await.unwrap();
    read_to_close(&mut c, Duration::from_secs(15))
        .await
        .expect("the stalled upload is cut");
    let r = s
        .conn(Method::GET, "/v2/vault-plus/media/5", CONN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    for _ in 0..100 {
        if s.tmp_files() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.tmp_files(), 0, "the partial file is gone");
    // An upload that keeps sending slowly, but never for as long as the
    // timeout without a byte, completes.
    let mut c = connect(&s.addr()).await;
    let head = head
        .replace("/media/5/", "/media/6/")
        .replace("1000000", "30000")
        .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    c.write_all(head.as_bytes()).await.unwrap();
    for part in bytes(2, 30_000).chunks(10_000) {
        tokio::time::sleep(Duration::from_millis(600)).await;
        c.write_all(part).await.unwrap();
    }
    let out = read_to_close(&mut c, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(status(&String::from_utf8_lossy(&out)), 201);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped() {
    let s = TestServer::start_with(&["--write-idle-timeout-secs", "1"]).await;
    let size = 16 << 20;
    let path = stored_url(&s, size).await;
    let mut c = slow_reader(&s.addr()).await;
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = read_to_close(&mut c, Duration::from_secs(20))
        .await
        .expect("the connection ends");
    assert!(
        got.len() < size,
        "the server gave up on the stalled reader ({} of {size} bytes sent)",
        got.len()
    );
    // And it still serves everyone else.
    let r = s.http.get(s.url(&path)).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), size);
}

#[tokio::test]
async fn idle_sockets_beyond_the_cap_do_not_lock_clients_out() {
    // An open-file limit of 256 gives a cap of 96 connections.
    let s = TestServer::start_with_nofile(256, &["--header-timeout-secs", "60"]).await;
    s.add_connection("default", CONN);
    let addr = s.addr();
    let mut idle = Vec::new();
    for _ in 0..400 {
        idle.push(connect(&addr).await);
    }
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for i in 0..30 {
        let r = fresh
            .get(s.url("/v2/vault-plus/status"))
            .header("apiKey", &s.key)
            .header("x-connection-id", CONN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} failed: {e}"));
        assert_eq!(r.status(), 200);
        // More idle sockets keep coming in between.
        for _ in 0..10 {
            idle.push(connect(&addr).await);
        }
    }
    // An established keep-alive client keeps being served as well.
    s.put(CONN, "9", "full", "image/png", bytes(9, 1000)).await;
    let mut closed = 0;
    for sock in &mut idle {
        let mut b = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(5), sock.read(&mut b)).await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= idle.len() - 96,
        "idle sockets past the cap were closed: {closed} of {}",
        idle.len()
    );
}

/// On the local blob store (an object store's HTTP client adds its own
/// receive buffer per stalled reader: README, "Limits").
#[tokio::test]
async fn big_heads_and_slow_readers_hold_bounded_memory() {
    if crate::backend::embedded_only("big_heads_and_slow_readers_hold_bounded_memory") {
        return;
    }
    let s = TestServer::start_with(&[
        "--header-timeout-secs",
        "60",
        "--write-idle-timeout-secs",
        "3",
    ])
    .await;
    let path = stored_url(&s, 8 << 20).await;
    let addr = s.addr();
    let before = s.rss_kib();

    // 200 heads of 380 KB each: refused past 64 KiB, none held whole.
    let mut line = String::from("X-Padding: ");
    line.push_str(&"p".repeat(1000));
    line.push_str("\r\n");
    let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    while head.len() < 380_000 {
        head.push_str(&line);
    }
    let mut heads = Vec::new();
    for _ in 0..200 {
        let mut c = connect(&addr).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), c.write_all(head.as_bytes())).await;
        heads.push(c);
    }
    let with_heads = s.rss_kib();
    assert!(
        with_heads.saturating_sub(before) < 200 * 100,
        "200 oversized heads cost {} KiB",
        with_heads.saturating_sub(before)
    );

    // 200 readers of an 8 MiB blob that never read: each holds at most one
    // body chunk and hyper's buffer (README: memory per connection).
    let mut readers = Vec::new();
    for _ in 0..200 {
        let mut c = slow_reader(&addr).await;
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        readers.push(c);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let with_readers = s.rss_kib();
    let per_reader = with_readers.saturating_sub(with_heads) / 200;
    assert!(
        per_reader < 256,
        "a stalled reader holds {per_reader} KiB (bound: one 128 KiB chunk and an 80 KiB buffer)"
    );
    // The write timeout then drops them (their bytes could not all fit
    // in the kernel's buffers). Reading before a reader is dropped would
    // let its download go on, so the wait is well past the 3 s timeout:
    // on two busy cores the timers of 200 connections can run late.
    tokio::time::sleep(Duration::from_secs(12)).await;
    for c in &mut readers {
        let got = read_to_close(c, Duration::from_secs(20))
            .await
            .expect("dropped");
        assert!(got.len() < 8 << 20);
    }
}
