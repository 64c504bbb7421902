//! Follows the request byte stream of one connection, message by message,
//! before hyper sees it: every request head is checked whole (size, syntax,
//! ambiguous framing) and only then handed on, and every body is measured
//! (`Content-Length` or chunked) so the next head is found where hyper will
//! find it.
//!
//! Why not leave it to hyper: hyper drops `Content-Length` when
//! `Transfer-Encoding` is present, folds repeated `Content-Length` lines and
//! accepts any transfer coding before `chunked`, so a handler can no longer
//! see the ambiguity (a request-smuggling ingredient behind proxies); and the
//! answers hyper makes itself (400, 414, 431) carry no JSON body and no
//! request ID. Here every such request gets our own answer, and hyper only
//! ever parses heads already known to be sound.

use axum::http::StatusCode;
use bytes::BytesMut;

/// Largest request head (request line and headers), in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest request line (method, target, version), in bytes.
pub const MAX_REQUEST_LINE_BYTES: usize = 16 * 1024;
/// Most header lines in one request.
pub const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (size and extensions) or trailer block.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Why a request was refused before routing, as the API's error fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl Rejection {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "BAD_REQUEST",
            message: message.into(),
        }
    }
}

#[derive(Debug)]
enum State {
    /// Between messages, or inside a head (bytes held in `Framing::head`).
    Head,
    /// Inside a body of known length: this many bytes left.
    Body(u64),
    Chunked(Chunk),
    /// A request was refused: nothing after it is handed on.
    Refused,
}

#[derive(Debug)]
enum Chunk {
    /// Reading a chunk-size line; `len` bytes of it so far.
    Size {
        size: u64,
        digits: usize,
        len: usize,
    },
    /// Inside chunk data: this many bytes left.
    Data(u64),
    /// After chunk data: expecting CRLF (`seen_cr`: the CR came).
    DataEnd { seen_cr: bool },
    /// After the last chunk: trailer lines until an empty one.
    Trailer { line_len: usize, total: usize },
}

/// The request framing of one connection.
#[derive(Debug)]
pub struct Framing {
    state: State,
    /// The head being received, held back until it is whole and checked.
    head: Vec<u8>,
    /// Heads checked and handed on so far.
    heads: u64,
}

impl Default for Framing {
    fn default() -> Self {
        Self::new()
    }
}

impl Framing {
    pub fn new() -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            heads: 0,
        }
    }

    /// Heads checked and handed on so far.
    pub fn heads(&self) -> u64 {
        self.heads
    }

    /// Stops here (a timeout refused the head in progress): nothing more
    /// is handed on.
    pub fn refuse(&mut self) {
        self.state = State::Refused;
        self.head = Vec::new();
    }

    /// True while part of a request head has arrived but not all of it.
    pub fn head_in_progress(&self) -> bool {
        matches!(self.state, State::Head) && !self.head.is_empty()
    }

    /// True while a request body is being received.
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Body(_) | State::Chunked(_))
    }

    /// How many leading bytes of `input` belong to a body of known length:
    /// these need no inspection, and are consumed here (the fast path that
    /// lets upload bytes pass without a copy).
    pub fn take_body_prefix(&mut self, input_len: usize) -> usize {
        match self.state {
            State::Body(left) => {
                let n = (input_len as u64).min(left);
                let left = left - n;
                self.state = if left == 0 {
                    State::Head
                } else {
                    State::Body(left)
                };
                n as usize
            }
            _ => 0,
        }
    }

    /// Feeds bytes read from the client; appends to `out` what may go on to
    /// hyper (whole checked heads, body bytes). On a refusal, what came
    /// before the refused head is still in `out`, and nothing after it ever
    /// will be.
    pub fn feed(&mut self, mut input: &[u8], out: &mut BytesMut) -> Result<(), Rejection> {
        while !input.is_empty() {
            let used = match &mut self.state {
                State::Refused => return Ok(()),
                State::Body(left) => {
                    let n = (input.len() as u64).min(*left) as usize;
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::Head;
                    }
                    out.extend_from_slice(&input[..n]);
                    n
                }
                State::Chunked(chunk) => {
                    let (n, done) = match chunk.consume(input) {
                        Ok(v) => v,
                        Err(e) => {
                            self.state = State::Refused;
                            return Err(e);
                        }
                    };
                    out.extend_from_slice(&input[..n]);
                    if done {
                        self.state = State::Head;
                    }
                    n
                }
                State::Head => match self.feed_head(input, out) {
                    Ok(n) => n,
                    Err(e) => {
                        self.state = State::Refused;
                        self.head = Vec::new();
                        return Err(e);
                    }
                },
            };
            input = &input[used..];
        }
        Ok(())
    }

    /// Takes head bytes up to the end of the head; returns how many of
    /// `input` it used.
    fn feed_head(&mut self, input: &[u8], out: &mut BytesMut) -> Result<usize, Rejection> {
        let mut i = 0;
        // Empty lines before a request line are ignored (RFC 9112, 2.2), as
        // hyper does.
        if self.head.is_empty() {
            while i < input.len() && (input[i] == b'\r' || input[i] == b'\n') {
                i += 1;
            }
        }
        let start = i;
        while i < input.len() {
            let b = input[i];
            i += 1;
            if b == b'\n' && self.ends_head(&input[start..i]) {
                self.head.extend_from_slice(&input[start..i]);
                let head = std::mem::take(&mut self.head);
                self.state = check_head(&head)?;
                self.heads += 1;
                out.extend_from_slice(&head);
                return Ok(i);
            }
        }
        self.head.extend_from_slice(&input[start..]);
        if self.head.len() > MAX_HEAD_BYTES {
            return Err(too_large_head(&self.head));
        }
        Ok(i)
    }

    /// Whether the LF that ends `taken` (new bytes, after `self.head`) ends
    /// an empty line: LF LF or LF CR LF.
    fn ends_head(&self, taken: &[u8]) -> bool {
        let at = |back: usize| -> Option<u8> {
            let n = taken.len();
            if back < n {
                Some(taken[n - 1 - back])
            } else {
                let h = self.head.len();
                let k = back - n;
                (k < h).then(|| self.head[h - 1 - k])
            }
        };
        matches!(
            (at(1), at(2)),
            (Some(b'\n'), _) | (Some(b'\r'), Some(b'\n'))
        )
    }
}

fn too_large_head(head: &[u8]) -> Rejection {
    let line_end = head.iter().position(|&b| b == b'\n');
    if line_end.is_none_or(|n| n > MAX_REQUEST_LINE_BYTES) {
        Rejection {
            status: StatusCode::URI_TOO_LONG,
            kind: "URI_TOO_LONG",
            message: format!("the request line is longer than {MAX_REQUEST_LINE_BYTES} bytes"),
        }
    } else {
        Rejection {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            kind: "HEADERS_TOO_LARGE",
            message: format!("the request head is larger than {MAX_HEAD_BYTES} bytes"),
        }
    }
}

/// Checks a whole head; answers how its body is framed.
fn check_head(head: &[u8]) -> Result<State, Rejection> {
    if head.len() > MAX_HEAD_BYTES {
        return Err(too_large_head(head));
    }
    let line_len = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    if line_len > MAX_REQUEST_LINE_BYTES {
        return Err(too_large_head(head));
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(Rejection::bad("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Rejection {
                status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                kind: "HEADERS_TOO_LARGE",
                message: format!("more than {MAX_HEADERS} header lines"),
            });
        }
        Err(httparse::Error::Version) => {
            return Err(Rejection::bad(
                "malformed request head: only HTTP/1.0 and HTTP/1.1 are served (HTTP/2 needs TLS in front)",
            ));
        }
        Err(e) => return Err(Rejection::bad(format!("malformed request head: {e}"))),
    }
    if req.method == Some("CONNECT") {
        return Err(Rejection::bad("CONNECT is not supported"));
    }
    // Hyper parses these again, and would answer a failure itself (bare).
    let method = req.method.unwrap_or_default();
    if axum::http::Method::from_bytes(method.as_bytes()).is_err() {
        return Err(Rejection::bad("malformed request head: invalid method"));
    }
    if axum::http::Uri::try_from(req.path.unwrap_or_default()).is_err() {
        return Err(Rejection::bad(
            "malformed request head: invalid request target",
        ));
    }
    body_framing(req.version == Some(1), req.headers)
}

/// The body framing the headers declare, refusing every ambiguity.
fn body_framing(http11: bool, headers: &[httparse::Header<'_>]) -> Result<State, Rejection> {
    let mut length: Option<u64> = None;
    let mut codings: Vec<String> = Vec::new();
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Err(Rejection::bad("Content-Length is given more than once"));
            }
            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
            let n = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .then(|| v.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| Rejection::bad("Content-Length is not a whole number of bytes"))?;
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = std::str::from_utf8(h.value)
                .map_err(|_| Rejection::bad("Transfer-Encoding is not plain text"))?;
            codings.extend(v.split(',').map(|c| c.trim().to_ascii_lowercase()));
        }
    }
    if codings.is_empty() {
        return Ok(match length {
            Some(n) if n > 0 => State::Body(n),
            _ => State::Head,
        });
    }
    if length.is_some() {
        return Err(Rejection::bad(
            "Content-Length together with Transfer-Encoding is ambiguous: send one of them",
        ));
    }
    if !http11 {
        return Err(Rejection::bad("Transfer-Encoding needs HTTP/1.1"));
    }
    if let Some(other) = codings.iter().find(|c| *c != "chunked") {
        return Err(Rejection {
            status: StatusCode::NOT_IMPLEMENTED,
            kind: "NOT_IMPLEMENTED",
            message: format!(
                "transfer coding {other:?} is not supported: send the body with Transfer-Encoding: chunked alone"
            ),
        });
    }
    if codings.len() > 1 {
        return Err(Rejection::bad(
            "Transfer-Encoding names chunked more than once",
        ));
    }
    Ok(State::Chunked(Chunk::Size {
        size: 0,
        digits: 0,
        len: 0,
    }))
}

impl Chunk {
    /// Consumes chunked-body bytes; answers how many it used and whether
    /// the body ended.
    fn consume(&mut self, input: &[u8]) -> Result<(usize, bool), Rejection> {
        let bad = |what: &str| Rejection::bad(format!("malformed chunked body: {what}"));
        let mut i = 0;
        while i < input.len() {
            match self {
                Chunk::Data(left) => {
                    let n = ((input.len() - i) as u64).min(*left);
                    *left -= n;
                    i += n as usize;
                    if *left == 0 {
                        *self = Chunk::DataEnd { seen_cr: false };
                    }
                }
                Chunk::DataEnd { seen_cr } => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\r' if !*seen_cr => *seen_cr = true,
                        b'\n' => {
                            *self = Chunk::Size {
                                size: 0,
                                digits: 0,
                                len: 0,
                            }
                        }
                        _ => return Err(bad("chunk data is not followed by CRLF")),
                    }
                }
                Chunk::Size { size, digits, len } => {
                    let b = input[i];
                    i += 1;
                    *len += 1;
                    if *len > MAX_CHUNK_LINE {
                        return Err(bad("chunk-size line too long"));
                    }
                    if b == b'\n' {
                        if *digits == 0 {
                            return Err(bad("missing chunk size"));
                        }
                        *self = if *size == 0 {
                            Chunk::Trailer {
                                line_len: 0,
                                total: 0,
                            }
                        } else {
                            Chunk::Data(*size)
                        };
                    } else if *digits == *len - 1 && (b as char).is_ascii_hexdigit() {
                        // Still in the size itself (extensions come after).
                        *digits += 1;
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        *size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(d))
                            .ok_or_else(|| bad("chunk size too large"))?;
                    } else if *digits == 0 {
                        return Err(bad("chunk size is not hexadecimal"));
                    }
                }
                Chunk::Trailer { line_len, total } => {
                    let b = input[i];
                    i += 1;
                    *total += 1;
                    if *total > MAX_CHUNK_LINE {
                        return Err(bad("trailer section too large"));
                    }
                    if b == b'\n' {
                        if *line_len == 0 {
                            return Ok((i, true));
                        }
                        *line_len = 0;
                    } else if b != b'\r' {
                        *line_len += 1;
                    }
                }
            }
        }
        Ok((i, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(parts: &[&[u8]]) -> (Vec<u8>, Option<Rejection>) {
        let mut f = Framing::new();
        let mut out = BytesMut::new();
        for p in parts {
            if let Err(e) = f.feed(p, &mut out) {
                return (out.to_vec(), Some(e));
            }
        }
        (out.to_vec(), None)
    }

    #[test]
    fn a_head_goes_on_only_when_whole() {
        let mut f = Framing::new();
        let mut out = BytesMut::new();
        f.feed(b"GET / HTTP/1.1\r\nHost: a\r\n", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(f.head_in_progress());
        f.feed(b"\r\n", &mut out).unwrap();
        assert_eq!(&out[..], b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(!f.head_in_progress());
    }

    #[test]
    fn bodies_are_measured_so_pipelined_heads_are_checked_too() {
        let req = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n";
        let (out, err) = run(&[req]);
        assert_eq!(err, None);
        assert_eq!(&out[..], &req[..]);
        let smuggled =
            b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (out, err) = run(&[smuggled]);
        assert_eq!(err.unwrap().status, StatusCode::BAD_REQUEST);
        assert_eq!(
            &out[..],
            b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        );
    }

    #[test]
    fn chunked_bodies_end_where_hyper_ends_them() {
        let req = b"PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        for split in 1..req.len() {
            let (out, err) = run(&[&req[..split], &req[split..]]);
            assert_eq!(err, None, "split at {split}");
            assert_eq!(&out[..], &req[..]);
        }
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let cases: &[(&[u8], StatusCode)] = &[
            (
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                StatusCode::BAD_REQUEST,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                StatusCode::BAD_REQUEST,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                StatusCode::BAD_REQUEST,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
                StatusCode::BAD_REQUEST,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                StatusCode::NOT_IMPLEMENTED,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                StatusCode::BAD_REQUEST,
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                StatusCode::BAD_REQUEST,
            ),
            (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", StatusCode::BAD_REQUEST),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", StatusCode::BAD_REQUEST),
            (b"GET http://[::1/ HTTP/1.1\r\n\r\n", StatusCode::BAD_REQUEST),
        ];
        for (req, status) in cases {
            let (out, err) = run(&[req]);
            assert_eq!(
                err.map(|e| e.status),
                Some(*status),
                "{}",
                String::from_utf8_lossy(req)
            );
            assert!(out.is_empty());
        }
    }

    #[test]
    fn oversized_heads_are_refused_without_waiting_for_their_end() {
        let mut f = Framing::new();
        let mut out = BytesMut::new();
        let line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST_LINE_BYTES));
        let mut big = line.into_bytes();
        big.extend(std::iter::repeat_n(b'x', MAX_HEAD_BYTES));
        let e = f.feed(&big, &mut out).unwrap_err();
        assert_eq!(e.status, StatusCode::URI_TOO_LONG);
        let mut f = Framing::new();
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        while head.len() <= MAX_HEAD_BYTES {
            head.extend_from_slice(b"X-Pad: 0123456789012345678901234567890123456789\r\n");
        }
        let e = f.feed(&head, &mut out).unwrap_err();
        assert_eq!(e.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let e = Framing::new().feed(&many, &mut out).unwrap_err();
        assert_eq!(e.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn the_fast_path_counts_body_bytes() {
        let mut f = Framing::new();
        let mut out = BytesMut::new();
        f.feed(b"PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\n", &mut out)
            .unwrap();
        assert!(f.in_body());
        assert_eq!(f.take_body_prefix(4), 4);
        assert_eq!(f.take_body_prefix(100), 6);
        assert!(!f.in_body());
        assert_eq!(f.take_body_prefix(100), 0);
    }
}
