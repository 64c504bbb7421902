//! `GET /cdn/{mediaId}/{revision}/{label}.{ext}?exp&sig`: the bytes behind
//! a rendition URL. No API key; the signature and expiry are the access
//! check. Bodies stream in 64 KiB chunks with an exact `Content-Length`,
//! unless a fault says otherwise.

use std::time::Duration;

use axum::body::Body as HttpBody;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::Stream;

use super::catalog::{self, MediaSpec, Rendition};
use super::faults::CdnFault;
use super::render::Body;
use super::routes::AppState;
use super::synth::CHUNK;
use super::urls::{UrlError, now_unix};

/// How much shorter the wrong-length fault makes a body.
const WRONG_LENGTH_CUT: u64 = 100;
/// Pause before the truncate fault drops the connection.
const FLUSH_BEFORE_BREAK: Duration = Duration::from_millis(100);

pub async fn fetch(
    State(demo): State<AppState>,
    method: Method,
    Path((media_s, rev_s, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let path = format!("{media_s}/{rev_s}/{file}");
    let (exp, sig) = signature_params(query.as_deref());
    if let Err(e) = demo.signer.verify(&path, exp, &sig, now_unix()) {
        demo.world().cdn_rejected();
        return match e {
            UrlError::Expired => expired(),
            UrlError::BadSignature => text(StatusCode::FORBIDDEN, "Signature does not match"),
        };
    }
    // A signed path was built by us, so it parses; what may fail is that the
    // media changed (older revision) since the URL was handed out.
    let current = media_s.parse::<u64>().ok().and_then(|id| {
        let rev = rev_s.parse::<u32>().ok()?;
        let spec = catalog::media(id)?;
        let r = rendition(&spec, &file)?.clone();
        (demo.world().revision(id) == rev).then_some((spec, r, rev))
    });
    let Some((spec, rend, rev)) = current else {
        demo.world().cdn_rejected();
        return text(StatusCode::NOT_FOUND, "Not found");
    };

    let fault = demo
        .world()
        .cdn_request(spec.id, rev, rend.label, method == Method::GET);
    match fault {
        CdnFault::RateLimited => {
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, "Slow down");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
        CdnFault::Error => return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
        CdnFault::Expired => return expired(),
        CdnFault::None | CdnFault::Truncate | CdnFault::WrongLength => {}
    }

    let d = demo.clone();
    let (spec_b, rend_b) = (spec.clone(), rend.clone());
    let body =
        match tokio::task::spawn_blocking(move || d.renderer.body(&spec_b, &rend_b, rev)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), media = spec.id, "cannot render");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "Cannot render");
            }
            Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "Cannot render"),
        };
    let len = body.len();
    let (announced, sent, break_off) = match fault {
        CdnFault::Truncate => (len, len / 2, true),
        CdnFault::WrongLength => {
            let short = len.saturating_sub(WRONG_LENGTH_CUT);
            (short, short, false)
        }
        _ => (len, len, false),
    };
    if method == Method::GET {
        demo.world().cdn_ok(spec.id, rend.label);
    }
    let slow = Duration::from_millis(demo.world().faults().slow_body_ms);
    let stream = body_stream(body, sent, break_off, slow);
    let mut r = Response::new(HttpBody::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(rend.encoding.content_type()),
    );
    // Set by hand: a streamed body has no length of its own, and the
    // truncate fault needs to announce more than it sends.
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(announced));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    r
}

/// `exp` and `sig` from the query; missing ones fail verification.
fn signature_params(query: Option<&str>) -> (u64, String) {
    let (mut exp, mut sig) = (0, String::new());
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "exp" => exp = v.parse().unwrap_or(0),
            "sig" => sig = v.into_owned(),
            _ => {}
        }
    }
    (exp, sig)
}

/// The rendition `file` (`{label}.{ext}`) names, if the media has it.
fn rendition<'a>(spec: &'a MediaSpec, file: &str) -> Option<&'a Rendition> {
    let (label, ext) = file.rsplit_once('.')?;
    spec.rendition(label).filter(|r| r.encoding.ext() == ext)
}

fn expired() -> Response {
    text(StatusCode::FORBIDDEN, "Request has expired")
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

struct Cursor {
    body: Body,
    offset: u64,
    sent: u64,
    break_off: bool,
    slow: Duration,
}

/// The first `sent` bytes of `body` in chunks, pausing `slow` between them;
/// with `break_off`, an error then ends the stream, which makes the server
/// drop the connection short of the announced `Content-Length`.
fn body_stream(
    body: Body,
    sent: u64,
    break_off: bool,
    slow: Duration,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let start = Cursor {
        body,
        offset: 0,
        sent,
        break_off,
        slow,
    };
    futures::stream::unfold(Some(start), |cursor| async move {
        let mut c = cursor?;
        if c.offset >= c.sent {
            if !c.break_off {
                return None;
            }
            // Give the server a moment to flush what was sent, so the client
            // really receives half before the connection drops.
            tokio::time::sleep(FLUSH_BEFORE_BREAK).await;
            let cut = std::io::Error::other("demo-upstream: truncated body (injected fault)");
            return Some((Err(cut), None));
        }
        if c.offset > 0 && !c.slow.is_zero() {
            tokio::time::sleep(c.slow).await;
        }
        let end = (c.offset + CHUNK).min(c.sent);
        let chunk = match &c.body {
            Body::Whole(b) => b.slice(c.offset as usize..end as usize),
            // Offsets stay multiples of CHUNK, so this is one whole chunk.
            Body::Synth(s) => s.chunk(c.offset / CHUNK).slice(..(end - c.offset) as usize),
        };
        c.offset = end;
        Some((Ok(chunk), Some(c)))
    })
}
