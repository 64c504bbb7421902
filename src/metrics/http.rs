//! Request metrics, labelled by route template: never the raw path, which
//! holds media IDs and signed tokens (a label per token would also grow the
//! recorder without bound).
//!
//! No layer of its own: the query-parameter route layer, which runs on
//! every matched route, leaves the template on the response
//! ([`with_route`]), and the request-ID middleware, the outermost, records
//! ([`record`]), so requests answered before routing (429s, unknown paths)
//! count too. Two extra layers per request cost a fifth of a small
//! download's instructions; these calls do nothing without
//! `--metrics-listen`.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::Method;
use axum::response::Response;
use metrics::{Counter, Histogram, counter, histogram};

use super::names;

/// The route template a response answered.
#[derive(Clone)]
struct Route(MatchedPath);

/// Leaves the matched route template on the response (for [`record`]).
pub fn with_route(mut res: Response, route: MatchedPath) -> Response {
    if super::enabled() {
        res.extensions_mut().insert(Route(route));
    }
    res
}

/// Counts and times one answered request.
pub fn record(res: &Response, method: &Method, started: Instant) {
    if !super::enabled() {
        return;
    }
    let route = res
        .extensions()
        .get::<Route>()
        .map_or("none", |r| r.0.as_str());
    let labels = (method_label(method), status_class(res.status().as_u16()));
    let elapsed = started.elapsed().as_secs_f64();
    // The handles of each (route, method, status): the recorder's own
    // look-up builds and hashes a labelled key on every call, and this
    // one is found by the borrowed template.
    let known = HANDLES.read().unwrap_or_else(|p| p.into_inner());
    if let Some((count, time)) = known
        .get(route)
        .and_then(|seen| seen.iter().find(|(l, _)| *l == labels))
        .map(|(_, h)| h)
    {
        count.increment(1);
        time.record(elapsed);
        return;
    }
    drop(known);
    let (method, status) = labels;
    let count = counter!(names::HTTP_REQUESTS, "route" => route.to_owned(), "method" => method, "status" => status);
    let time = histogram!(names::HTTP_DURATION, "route" => route.to_owned(), "method" => method);
    count.increment(1);
    time.record(elapsed);
    HANDLES
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .entry(route.to_owned())
        .or_default()
        .push((labels, (count, time)));
}

/// Per route template, the handles of each (method, status class) seen: a
/// bounded set (templates and methods are closed sets). Two threads
/// registering the same labels at once may both push; the recorder hands
/// them the same series, and the first is found from then on.
type HandleMap = HashMap<String, Vec<((&'static str, &'static str), (Counter, Histogram))>>;

static HANDLES: LazyLock<RwLock<HandleMap>> = LazyLock::new(Default::default);

/// Methods outside the API's own are one label, so that made-up methods
/// cannot add series.
fn method_label(m: &Method) -> &'static str {
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
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
    }
}
