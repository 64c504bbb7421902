//! Requests whose framing is ambiguous or malformed are refused before any
//! route runs, each with a JSON error body and an `x-request-id`, and
//! change nothing.

use reqwest::Method;

use crate::harness::TestServer;
use crate::raw_http::{exchange, header, json_body, status};

const CONN: &str = "conn_framing";

fn upload_head(s: &TestServer, extra: &str) -> String {
    format!(
        "PUT /v2/vault-plus/media/77/variants/full HTTP/1.1\r\nHost: x\r\napiKey: {}\r\nx-connection-id: {CONN}\r\nContent-Type: image/png\r\n{extra}\r\n",
        s.key
    )
}

async fn assert_nothing_stored(s: &TestServer) {
    let r = s
        .conn(Method::GET, "/v2/vault-plus/media/77", CONN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the refused upload stored nothing");
}

fn assert_refused(answer: &str, code: u16, kind: &str, mentions: &str) {
    assert_eq!(status(answer), code, "{answer}");
    let id = header(answer, "x-request-id").expect("x-request-id");
    let body = json_body(answer);
    assert_eq!(body["type"], kind, "{body}");
    assert_eq!(body["requestId"], id);
    assert_eq!(body["message"], body["error"]);
    let text = body["error"].as_str().unwrap();
    assert!(text.contains(mentions), "{text:?} names {mentions:?}");
    assert_eq!(header(answer, "connection"), Some("close"));
}

#[tokio::test]
async fn content_length_with_chunked_is_refused_and_stores_nothing() {
    let s = TestServer::start().await;
    s.add_connection("default", CONN);
    for framing in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ] {
        let raw = upload_head(&s, framing) + "5\r\nhello\r\n0\r\n\r\n";
        let answer = exchange(&s.addr(), raw.as_bytes()).await;
        assert_refused(
            &answer,
            400,
            "BAD_REQUEST",
            "Content-Length together with Transfer-Encoding",
        );
    }
    assert_nothing_stored(&s).await;
}

#[tokio::test]
async fn transfer_codings_other_than_chunked_are_not_implemented() {
    let s = TestServer::start().await;
    s.add_connection("default", CONN);
    let raw = upload_head(&s, "Transfer-Encoding: gzip, chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n";
    let answer = exchange(&s.addr(), raw.as_bytes()).await;
    assert_refused(&answer, 501, "NOT_IMPLEMENTED", "gzip");
    assert_nothing_stored(&s).await;
    // Plain chunked still stores.
    let raw = upload_head(&s, "Transfer-Encoding: chunked\r\nConnection: close\r\n")
        + "5\r\nhello\r\n0\r\n\r\n";
    let answer = exchange(&s.addr(), raw.as_bytes()).await;
    assert_eq!(status(&answer), 201, "{answer}");
}

#[tokio::test]
async fn repeated_content_length_is_refused() {
    let s = TestServer::start().await;
    s.add_connection("default", CONN);
    let raw = upload_head(&s, "Content-Length: 5\r\nContent-Length: 5\r\n") + "hello";
    let answer = exchange(&s.addr(), raw.as_bytes()).await;
    assert_refused(
        &answer,
        400,
        "BAD_REQUEST",
        "Content-Length is given more than once",
    );
    assert_nothing_stored(&s).await;
}

#[tokio::test]
async fn what_hyper_used_to_refuse_bare_gets_a_json_body() {
    let s = TestServer::start().await;
    let addr = s.addr();
    let answer = exchange(&addr, b"GET /healthz HTTP/1.1\r\nBad Header Line\r\n\r\n").await;
    assert_refused(&answer, 400, "BAD_REQUEST", "malformed request head");

    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20 * 1024));
    let answer = exchange(&addr, long.as_bytes()).await;
    assert_refused(&answer, 414, "URI_TOO_LONG", "request line");

    let mut big = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    while big.len() < 70 * 1024 {
        big.push_str("X-Padding: 0123456789012345678901234567890123456789012345678901234567\r\n");
    }
    big.push_str("\r\n");
    let answer = exchange(&addr, big.as_bytes()).await;
    assert_refused(&answer, 431, "HEADERS_TOO_LARGE", "request head");

    let answer = exchange(&addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert_refused(&answer, 400, "BAD_REQUEST", "HTTP/1.1");
}

#[tokio::test]
async fn a_pipelined_request_is_checked_as_well_and_answered_in_order() {
    let s = TestServer::start().await;
    s.add_connection("default", CONN);
    let first = format!(
        "GET /v2/vault-plus/status HTTP/1.1\r\nHost: x\r\napiKey: {}\r\nx-connection-id: {CONN}\r\n\r\n",
        s.key
    );
    let second = upload_head(&s, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")
        + "5\r\nhello\r\n0\r\n\r\n";
    let answer = exchange(&s.addr(), (first + &second).as_bytes()).await;
    assert_eq!(status(&answer), 200, "{answer}");
    let rest = &answer[answer.find("HTTP/1.1 400").expect("then a 400")..];
    assert_refused(rest, 400, "BAD_REQUEST", "ambiguous");
    assert_nothing_stored(&s).await;
}

#[tokio::test]
async fn a_refusal_waits_for_the_whole_response_before_it() {
    let s = TestServer::start().await;
    s.add_connection("default", CONN);
    let size = 3 << 20;
    let v = s
        .put(
            CONN,
            "5",
            "full",
            "video/mp4",
            crate::harness::bytes(5, size),
        )
        .await;
    let path = v["url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&s.base)
        .to_owned();
    let bad = upload_head(&s, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n");
    let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n{bad}");
    let mut c = crate::raw_http::connect(&s.addr()).await;
    tokio::io::AsyncWriteExt::write_all(&mut c, raw.as_bytes())
        .await
        .unwrap();
    // Read slowly at first, so the media response is still being written
    // when the refused request is reached.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let out = crate::raw_http::read_to_close(&mut c, std::time::Duration::from_secs(20))
        .await
        .expect("both answers, then close");
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let first = String::from_utf8_lossy(&out[..head_end]).into_owned();
    assert_eq!(status(&first), 200, "{first}");
    let rest = &out[head_end + size..];
    let rest = String::from_utf8_lossy(rest);
    assert!(
        rest.starts_with("HTTP/1.1 400"),
        "the 400 follows the whole body: {rest:.200}"
    );
    assert_refused(&rest, 400, "BAD_REQUEST", "ambiguous");
}
