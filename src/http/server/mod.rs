//! The accept loop and the connections behind it: what stands between the
//! router and clients that may be slow, idle or hostile.
//!
//! HTTP/1.1 only. vaultplus terminates no TLS, and browsers speak HTTP/2
//! only over TLS, so HTTP/2 would reach it only as cleartext h2c from
//! proxies, which talk HTTP/1.1 to a backend just as well; h2c's stream
//! multiplexing would add its own flood and reset attacks for no client's
//! benefit. An HTTP/2 preface is answered 400.

mod conn;
pub mod framing;
mod guarded_io;
pub mod limits;
mod registry;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub use guarded_io::Timeouts;
use registry::{Admission, Registry};

/// Hyper's buffer bound (read and queued writes): a whole head fits, and a
/// slow reader holds at most this plus one body chunk.
const HYPER_BUF: usize = framing::MAX_HEAD_BYTES + 16 * 1024;
/// After a failed accept for want of descriptors, the pause before the
/// next (the limit frees up as connections close; not a one-second stall).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Least time between two warnings of the same kind.
const WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    pub timeouts: Timeouts,
    pub max_connections: usize,
    /// Whether this listener's connections and bytes are recorded as
    /// metrics (the API's are; the metrics listener's own are not).
    pub metrics: bool,
    /// How long a stopping server lets responses in progress finish.
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// responses in progress finish (for `config.shutdown_grace` at most).
/// The listening socket closes at once, so new connections are refused
/// rather than left waiting in the backlog; keep-alive connections close
/// after the response they are busy with.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Arc::new(Registry::new(config.max_connections));
    let tasks = TaskTracker::new();
    let stop = CancellationToken::new();
    let mut h1 = http1::Builder::new();
    h1.keep_alive(true)
        // The framing check holds back heads over its limits, so hyper's
        // own (which answer without a JSON body) are never reached.
        .max_headers(framing::MAX_HEADERS + 1)
        .max_buf_size(HYPER_BUF)
        .header_read_timeout(None);
    let mut warned = Warnings::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(v) => v,
                Err(e) => {
                    on_accept_error(&e, &mut warned).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let admission = registry.admit();
        if config.metrics {
            record_registry(&registry);
        }
        let shared = match admission {
            Admission::Admitted(c) => c,
            Admission::Refused => {
                if due(&mut warned.cap) {
                    tracing::warn!(
                        max_connections = config.max_connections,
                        refused = registry.refused(),
                        evicted_idle = registry.evicted(),
                        "connection cap reached with every connection busy: new connections are closed at once"
                    );
                }
                continue;
            }
        };
        // Without TCP_NODELAY, a small response whose head and body leave
        // in two writes waits on the client's delayed ACK (about 40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let io = TokioIo::new(guarded_io::GuardedIo::new(
            stream,
            shared.clone(),
            config.timeouts,
        ));
        let service = {
            let router = router.clone();
            let shared = shared.clone();
            hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let in_flight = shared.begin();
                let metered = config.metrics.then(conn::Metered::begin).flatten();
                let refused = shared.dispatch();
                let router = router.clone();
                async move {
                    let res = match refused {
                        Some(why) => refusal_response(&why),
                        None => match router.oneshot(req).await {
                            Ok(r) => r,
                            Err(never) => match never {},
                        },
                    };
                    Ok::<_, Infallible>(res.map(|b| conn::TrackedBody::new(b, in_flight, metered)))
                }
            })
        };
        let connection = h1.serve_connection(io, service);
        let stop = stop.clone();
        let registry = registry.clone();
        tasks.spawn(async move {
            tokio::pin!(connection);
            let mut draining = false;
            loop {
                tokio::select! {
                    r = connection.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stop.cancelled(), if !draining => {
                        connection.as_mut().graceful_shutdown();
                        draining = true;
                    }
                    _ = shared.evicted() => break,
                }
            }
            registry.remove(shared.id);
            if config.metrics {
                record_registry(&registry);
            }
        });
    }
    drop(listener);
    stop.cancel();
    tasks.close();
    if tokio::time::timeout(config.shutdown_grace, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = registry.open(),
            "responses still in progress after {} s are cut",
            config.shutdown_grace.as_secs()
        );
    }
}

/// The registry's figures as metrics (its own counters are the truth).
fn record_registry(registry: &Registry) {
    if let Some(h) = crate::metrics::handles() {
        h.connections_open.set(registry.open() as f64);
        h.connections_refused.absolute(registry.refused());
        h.connections_evicted.absolute(registry.evicted());
    }
}

/// The answer to a request refused before routing: the API's error body
/// with a request ID, and the connection closes after it.
fn refusal_response(why: &framing::Rejection) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let id = crate::http::request_id::new_id();
    let body =
        crate::http::error::ApiError::new(why.status, why.kind, why.message.clone()).body(&id);
    let mut res = axum::response::Response::new(axum::body::Body::from(
        serde_json::to_vec(&body).unwrap_or_default(),
    ));
    *res.status_mut() = why.status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-request-id", v);
    }
    res
}

/// When each kind of warning was last logged.
#[derive(Default)]
struct Warnings {
    cap: Option<Instant>,
    accept: Option<Instant>,
}

/// Whether a warning last logged at `last` may be logged again now.
fn due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
        return false;
    }
    *last = Some(now);
    true
}

async fn on_accept_error(e: &std::io::Error, warned: &mut Warnings) {
    // Out of descriptors (EMFILE/ENFILE), buffers or memory: waiting
    // briefly lets connections close; spinning would burn the core they
    // need.
    let resource = matches!(e.raw_os_error(), Some(23 | 24 | 12 | 105));
    if due(&mut warned.accept) {
        tracing::warn!(error = %e, "cannot accept a connection");
    }
    if resource {
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}
