//! Black-box tests written against the reference contract (docs/reference),
//! not against the implementation.
//!
//! Sources cited in the tests:
//! - SEED: `docs/reference/000_ab7af7969c1ee0d9.txt` (purge operation, exact);
//! - API: `docs/reference/vaultplus-api.md` (section numbers);
//! - DEC: `docs/reference/DECISIONS.md` (section names);
//! - DESIGN: `docs/DESIGN.md`, "Invariants" (numbered there).
//!
//! Every test starts its own server. Helpers here only send requests and
//! check shapes; they assume nothing about the implementation.

mod account;
mod batch;
mod delivery;
mod errors;
mod isolation;
mod legacy;
mod lists;
mod media;
mod openapi;
mod purge;
mod query;

use std::collections::BTreeSet;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::TestServer;

pub const DAY_MS: i64 = 86_400_000;

/// The ten keys of a variant object, API 3.1.
pub const VARIANT_KEYS: [&str; 10] = [
    "status",
    "quality",
    "sizeBytes",
    "contentType",
    "accessCount",
    "createdAt",
    "expiresAt",
    "storedAt",
    "lastAccessedAt",
    "url",
];

/// A response, read completely.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The error text, lower-cased, for "names the problem" checks.
    pub fn error_lc(&self) -> String {
        self.body["error"].as_str().unwrap_or("").to_lowercase()
    }

    /// Asserts an exact status and a JSON 200-family body, returns the body.
    pub fn ok(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }
}

pub async fn send(rb: RequestBuilder) -> Resp {
    let r = rb.send().await.expect("request sent");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let raw = r.bytes().await.expect("body read").to_vec();
    let body = parse_body(&raw);
    Resp {
        status,
        headers,
        body,
        raw,
    }
}

fn parse_body(raw: &[u8]) -> Value {
    if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into_owned()))
    }
}

/// Checks the error contract (DEC "Wire conventions"): status, `type`,
/// `error` (non-empty), `message` equal to `error`, `requestId` equal to
/// the `x-request-id` header, and no keys beyond the documented ones.
pub fn assert_error(r: &Resp, status: u16, kind: &str) {
    assert_eq!(r.status, status, "status; body: {}", r.body);
    let obj = r
        .body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not a JSON object: {:?}", r.body));
    let error = obj
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("error body lacks a string `error`: {}", r.body));
    assert!(!error.is_empty(), "empty `error`: {}", r.body);
    assert_eq!(
        obj.get("type"),
        Some(&json!(kind)),
        "error type; body: {}",
        r.body
    );
    assert_eq!(
        obj.get("message").and_then(Value::as_str),
        Some(error),
        "`message` must equal `error`: {}",
        r.body
    );
    let rid = obj
        .get("requestId")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("error body lacks `requestId`: {}", r.body));
    assert!(!rid.is_empty(), "empty requestId");
    assert_eq!(
        r.header("x-request-id").as_deref(),
        Some(rid),
        "x-request-id header must equal requestId"
    );
    let allowed = ["error", "type", "requestId", "message", "actionRequired"];
    for k in obj.keys() {
        assert!(
            allowed.contains(&k.as_str()),
            "unexpected key `{k}` in error body {}",
            r.body
        );
    }
}

/// Asserts a 400 BAD_REQUEST whose text names one of `names`.
pub fn assert_bad_request(r: &Resp, names: &[&str], what: &str) {
    assert_eq!(
        r.status, 400,
        "{what}: expected 400, got {} {}",
        r.status, r.body
    );
    assert_error(r, 400, "BAD_REQUEST");
    let text = r.error_lc();
    assert!(
        names.iter().any(|n| text.contains(&n.to_lowercase())),
        "{what}: error `{text}` names none of {names:?}"
    );
}

pub fn assert_unauthorized(r: &Resp, what: &str) {
    assert_eq!(
        r.status, 401,
        "{what}: expected 401, got {} {}",
        r.status, r.body
    );
    assert_error(r, 401, "UNAUTHORIZED");
    assert_eq!(r.body["error"], "Unauthorized", "{what}");
}

pub fn assert_header_required(r: &Resp, what: &str) {
    assert_eq!(
        r.status, 400,
        "{what}: expected 400, got {} {}",
        r.status, r.body
    );
    assert_error(r, 400, "BAD_REQUEST");
    assert_eq!(
        r.body["error"], "x-connection-id header is required",
        "{what}"
    );
}

pub fn assert_connection_not_found(r: &Resp, what: &str) {
    assert_eq!(
        r.status, 401,
        "{what}: expected 401, got {} {}",
        r.status, r.body
    );
    assert_error(r, 401, "SESSION_NOT_PROVIDED");
    assert_eq!(r.body["error"], "Connection not found", "{what}");
}

/// Collects failed checks of a table-driven test so that one run reports
/// every failing row, not just the first.
#[derive(Default)]
pub struct Soft(Vec<String>);

impl Soft {
    pub fn check(&mut self, what: &str, f: impl FnOnce()) {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            self.0.push(format!("{what}: {msg}"));
        }
    }

    pub fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} failing case(s):\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// A request carrying some other API key (or none, when `key` is `None`).
pub fn with_key(s: &TestServer, key: Option<&str>, method: Method, path: &str) -> RequestBuilder {
    let rb = s.http.request(method, s.url(path));
    match key {
        Some(k) => rb.header("apiKey", k),
        None => rb,
    }
}

/// Uploads one variant, optionally with a duration header, and returns the
/// raw response.
pub async fn upload(
    s: &TestServer,
    conn: &str,
    media: &str,
    label: &str,
    ct: &str,
    body: Vec<u8>,
    duration: Option<&str>,
) -> Resp {
    let mut rb = s
        .conn(
            Method::PUT,
            &format!("/v2/vault-plus/media/{media}/variants/{label}"),
            conn,
        )
        .header("content-type", ct)
        .body(body);
    if let Some(d) = duration {
        rb = rb.header("x-media-duration", d);
    }
    send(rb).await
}

/// The bytes `create` uploads for a media ID and label.
pub fn content(media: &str, label: &str, len: usize) -> Vec<u8> {
    let seed = media
        .bytes()
        .chain(label.bytes())
        .fold(17u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    crate::harness::bytes(seed, len)
}

/// Uploads and asserts 201 (a new variant).
pub async fn create(
    s: &TestServer,
    conn: &str,
    media: &str,
    label: &str,
    ct: &str,
    len: usize,
    duration: Option<&str>,
) -> Value {
    let r = upload(
        s,
        conn,
        media,
        label,
        ct,
        content(media, label, len),
        duration,
    )
    .await;
    assert_eq!(
        r.status, 201,
        "upload {media}/{label}: {} {}",
        r.status, r.body
    );
    r.body
}

pub async fn get(s: &TestServer, conn: &str, path: &str) -> Resp {
    send(s.conn(Method::GET, path, conn)).await
}

pub async fn get_ok(s: &TestServer, conn: &str, path: &str) -> Value {
    get(s, conn, path).await.ok(200)
}

pub async fn status_of(s: &TestServer, conn: &str) -> Value {
    get_ok(s, conn, "/v2/vault-plus/status").await
}

pub async fn stats_of(s: &TestServer) -> Value {
    send(s.req(Method::GET, "/v2/vault-plus/stats"))
        .await
        .ok(200)
}

pub async fn purge(s: &TestServer, conn: &str) -> Value {
    send(s.conn(Method::DELETE, "/v2/vault-plus/media", conn))
        .await
        .ok(200)
}

pub async fn patch_conn_settings(s: &TestServer, conn: &str, body: Value) -> Resp {
    send(
        s.req(
            Method::PATCH,
            &format!("/v2/account/connections/{conn}/settings"),
        )
        .json(&body),
    )
    .await
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn enc(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds `path?k=v&...` with encoded values.
pub fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path.to_owned();
    }
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    format!("{path}?{}", q.join("&"))
}

/// Follows `nextCursor` from the first page to the last, returning every
/// item in order. Asserts the last page omits `nextCursor`.
pub async fn list_all(s: &TestServer, conn: &str, params: &[(&str, &str)]) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut p: Vec<(&str, &str)> = params.to_vec();
        if let Some(c) = &cursor {
            p.push(("cursor", c));
        }
        let page = get_ok(s, conn, &with_query("/v2/vault-plus/media", &p)).await;
        items.extend(
            page["items"]
                .as_array()
                .expect("items array")
                .iter()
                .cloned(),
        );
        match page.get("nextCursor") {
            None => return items,
            Some(Value::String(c)) => cursor = Some(c.clone()),
            Some(other) => panic!("nextCursor must be a string or absent, got {other}"),
        }
    }
    panic!("pagination did not end");
}

pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().expect("item id string").to_owned())
        .collect()
}

/// Numeric value of a media ID (1-32 digits fit in u128).
pub fn num(id: &str) -> u128 {
    id.parse().expect("numeric media id")
}

/// Removes every `url` (signed URLs may roll over to a new expiry window
/// between two listings), so states can be compared.
pub fn strip_urls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "url")
                .map(|(k, v)| (k.clone(), strip_urls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_urls).collect()),
        other => other.clone(),
    }
}

/// Everything observable about one connection (and the org totals, and the
/// blob files), for "changes nothing" checks (docs/DESIGN.md invariant 5).
pub async fn state(s: &TestServer, conn: &str) -> Value {
    let media = get_ok(s, conn, "/v2/vault-plus/media?limit=100").await;
    let removed = get_ok(s, conn, "/v2/vault-plus/media?limit=100&status=removed").await;
    let settings = send(s.req(
        Method::GET,
        &format!("/v2/account/connections/{conn}/settings"),
    ))
    .await
    .ok(200);
    let blobs: Vec<Value> = s
        .blob_files()
        .into_iter()
        .map(|(k, n)| json!([k, n]))
        .collect();
    strip_urls(&json!({
        "status": status_of(s, conn).await,
        "stats": stats_of(s).await,
        "media": media,
        "removed": removed,
        "settings": settings,
        "blobs": blobs,
    }))
}

pub fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

pub fn key_set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

pub fn assert_variant_shape(v: &Value) {
    assert_eq!(keys_of(v), key_set(&VARIANT_KEYS), "variant keys: {v}");
}

pub fn int(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("expected a JSON integer, got {v}"))
}

/// Epoch milliseconds to ISO-8601 `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Sends a request byte-for-byte (no URL normalisation: `..` segments and
/// odd encodings reach the server as written).
pub async fn raw(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut stream = raw_start(s, method, path, headers, body.len()).await;
    stream.write_all(body).await.expect("write body");
    raw_finish(stream).await
}

/// Opens a connection and writes a request head announcing
/// `content_length` body bytes; the caller writes the body.
pub async fn raw_start(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_length: usize,
) -> tokio::net::TcpStream {
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {content_length}\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("write head");
    stream
}

/// Reads the whole response of a raw request.
pub async fn raw_finish(mut stream: tokio::net::TcpStream) -> Resp {
    let mut resp = Vec::new();
    let mut buf = [0u8; 8192];
    // A reset after the answer (unread request bytes) ends the read too.
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        resp.extend_from_slice(&buf[..n]);
    }
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let mut body = resp[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let mut map = HeaderMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':')
            && let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.trim().as_bytes()),
                HeaderValue::from_str(v.trim()),
            )
        {
            map.append(k, v);
        }
    }
    if map
        .get("transfer-encoding")
        .is_some_and(|v| v.to_str().unwrap_or("").contains("chunked"))
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers: map,
        body: parse_body(&body),
        raw: body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        data = &data[(end + 2).min(data.len())..];
    }
    out
}
