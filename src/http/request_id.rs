//! Request IDs, error bodies and the request log, in one middleware: it
//! knows the ID, so it is where error bodies get their `requestId`.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::ApiError;

#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// A client-chosen `x-request-id` is kept when it is short and plain, so
/// logs can be joined across services; anything else gets a fresh ID.
fn request_id_of(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(new_id)
}

/// A fresh request ID.
pub fn new_id() -> String {
    format!("req_{}", uuid::Uuid::new_v4().simple())
}

/// Signed media tokens are credentials: keep them out of logs.
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/v2/media/") {
        "/v2/media/<token>"
    } else {
        path
    }
}

pub async fn middleware(mut req: Request, next: Next) -> Response {
    let id = request_id_of(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let has_body = request_has_body(&req);
    let path = loggable_path(req.uri().path()).to_owned();
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %id, %method, path = %path);
    let res = next.run(req).instrument(span.clone()).await;
    let mut res = finish(res, &id, &method);
    crate::metrics::http::record(&res, &method, started);
    let _enter = span.enter();
    tracing::info!(
        status = res.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "served"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    // A request refused before its body was read (bad key, bad header) may
    // leave body bytes on the connection, and the server then drops it.
    // Saying so lets keep-alive clients open a fresh one instead of failing
    // their next call (RFC 9112, section 9.6).
    if has_body && (res.status().is_client_error() || res.status().is_server_error()) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

fn request_has_body(req: &Request) -> bool {
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

fn finish(res: Response, id: &str, method: &Method) -> Response {
    let err = if let Some(e) = res.extensions().get::<ApiError>() {
        e.clone()
    } else if res.status() == StatusCode::METHOD_NOT_ALLOWED {
        // The router answers 405 itself, with an empty body.
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("{method} is not allowed on this route"),
        )
    } else {
        return res;
    };
    let (mut parts, _) = res.into_parts();
    parts.extensions.remove::<ApiError>();
    let json = serde_json::to_vec(&err.body(id)).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    if method == Method::HEAD {
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(json))
}

/// The answer for paths no route matches.
pub async fn fallback() -> Response {
    ApiError::route_not_found().into_response()
}
