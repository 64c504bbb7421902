//! Request metrics, labelled by route template: never the raw path, which
//! holds media IDs and signed tokens (a label per token would also grow the
//! recorder without bound).
//!
//! Two layers: [`record`] wraps the whole router (so requests answered
//! before routing, such as 429s and unknown paths, count too) and
//! [`mark_route`], a route layer, tells it which template matched by
//! leaving it on the response.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, histogram};

use super::names;

/// The route template a response answered, left by [`mark_route`].
#[derive(Clone)]
struct Route(MatchedPath);

/// Route layer: puts the matched template on the response.
pub async fn mark_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut res = next.run(req).await;
    if let Some(route) = route {
        res.extensions_mut().insert(Route(route));
    }
    res
}

/// Outer layer: counts and times every request.
pub async fn record(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let res = next.run(req).await;
    let route = res
        .extensions()
        .get::<Route>()
        .map_or("none", |r| r.0.as_str())
        .to_owned();
    let status = status_class(res.status().as_u16());
    counter!(names::HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    histogram!(names::HTTP_DURATION, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    res
}

/// Methods outside the API's own are one label, so that made-up methods
/// cannot add series.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classes_and_methods_a_closed_set() {
        assert_eq!(status_class(206), "2xx");
        assert_eq!(status_class(304), "3xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
        let made_up = axum::http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&axum::http::Method::DELETE), "DELETE");
    }
}
