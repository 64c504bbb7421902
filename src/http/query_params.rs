//! Unknown query parameters are refused (`?stauts=stored` must not quietly
//! answer everything). Each route declares the parameters it takes once,
//! in its `#[utoipa::path(params(...))]`: this layer reads those
//! declarations from the OpenAPI document the router is built from, so the
//! document and the check cannot drift apart, and a route that declares no
//! query parameter takes none. A handler parses its parameters into the
//! same `IntoParams` struct it documents them with ([`QueryMap::parse`]),
//! so one struct is what is documented, accepted and read.
//!
//! [`QueryMap::parse`]: crate::http::extract::QueryMap::parse

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::{OpenApi, RefOr};

use super::error::ApiError;

/// The query parameters of every documented operation, by method and
/// route template (`/v2/vault-plus/media/{mediaId}`, as axum matches it).
#[derive(Debug, Default)]
pub struct QueryRules {
    routes: HashMap<(Method, String), BTreeSet<String>>,
}

impl QueryRules {
    pub fn from_openapi(api: &OpenApi) -> Self {
        let mut routes = HashMap::new();
        for (path, item) in &api.paths.paths {
            let shared = query_names(item.parameters.as_deref());
            let ops: [(Method, &Option<Operation>); 7] = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
                (Method::HEAD, &item.head),
                (Method::OPTIONS, &item.options),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    let mut names = shared.clone();
                    names.extend(query_names(op.parameters.as_deref()));
                    routes.insert((method, path.clone()), names);
                }
            }
        }
        Self { routes }
    }

    /// The parameters `method` on `route` takes (None for a route the
    /// document does not describe: it takes none). A HEAD the document does
    /// not list is answered by the GET handler, so it takes GET's.
    pub fn accepted(&self, method: &Method, route: &str) -> Option<&BTreeSet<String>> {
        let get = |m: &Method| self.routes.get(&(m.clone(), route.to_owned()));
        get(method).or_else(|| {
            (method == Method::HEAD)
                .then(|| get(&Method::GET))
                .flatten()
        })
    }

    /// Refuses the first parameter the route does not take, naming it and
    /// what the route does take.
    pub fn check(&self, method: &Method, route: &str, query: Option<&str>) -> Result<(), ApiError> {
        let Some(query) = query else { return Ok(()) };
        let accepted = self.accepted(method, route);
        for (name, _) in form_urlencoded::parse(query.as_bytes()) {
            if accepted.is_some_and(|a| a.contains(name.as_ref())) {
                continue;
            }
            let takes = match accepted {
                Some(a) if !a.is_empty() => format!(
                    "this route takes {}",
                    a.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
                ),
                _ => "this route takes no query parameters".to_owned(),
            };
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {name:?}: {takes}"
            )));
        }
        Ok(())
    }
}

fn query_names(params: Option<&[RefOr<Parameter>]>) -> BTreeSet<String> {
    params
        .unwrap_or_default()
        .iter()
        .filter_map(|p| match p {
            RefOr::T(p) if p.parameter_in == ParameterIn::Query => Some(p.name.clone()),
            _ => None,
        })
        .collect()
}

/// Runs after routing (as a route layer), where the matched route is known.
pub async fn middleware(
    State(rules): State<Arc<QueryRules>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let res = match &route {
        Some(r) => match rules.check(req.method(), r.as_str(), req.uri().query()) {
            Ok(()) => next.run(req).await,
            Err(e) => e.into_response(),
        },
        None => next.run(req).await,
    };
    // This layer runs on every matched route: the request metrics take
    // the template from here.
    match route {
        Some(r) => crate::metrics::http::with_route(res, r),
        None => res,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> QueryRules {
        QueryRules::from_openapi(&crate::http::routes().1)
    }

    #[test]
    fn declared_parameters_pass_and_others_are_named() {
        let r = rules();
        let get = Method::GET;
        assert!(
            r.check(&get, "/v2/vault-plus/media", Some("status=stored&limit=2"))
                .is_ok()
        );
        let e = r
            .check(&get, "/v2/vault-plus/media", Some("stauts=stored"))
            .unwrap_err();
        assert!(e.message.contains("\"stauts\""), "{}", e.message);
        assert!(e.message.contains("status"), "{}", e.message);
    }

    #[test]
    fn routes_without_parameters_take_none() {
        let r = rules();
        let e = r
            .check(&Method::GET, "/v2/vault-plus/status", Some("x=1"))
            .unwrap_err();
        assert!(
            e.message.contains("takes no query parameters"),
            "{}",
            e.message
        );
        assert!(r.check(&Method::GET, "/v2/vault-plus/status", None).is_ok());
        assert!(
            r.check(&Method::HEAD, "/v2/media/{token}", Some("cb=1"))
                .is_err()
        );
    }

    /// What a route documents (and so accepts) is what it parses: the
    /// struct it parses into is the one its document lists, but a field
    /// named differently for serde than for utoipa would be accepted and
    /// then ignored.
    #[test]
    fn every_accepted_parameter_is_parsed() {
        use crate::http::extract::QueryMap;
        use crate::service::{MediaQueryParams, PageParams};

        fn reads<T: serde::de::DeserializeOwned + std::fmt::Debug>(route: &str, other: &[&str]) {
            let accepted = rules().accepted(&Method::GET, route).cloned();
            let accepted = accepted.expect("documented");
            for name in accepted.iter().filter(|n| !other.contains(&n.as_str())) {
                let q = QueryMap(HashMap::from([(name.clone(), "probe".to_owned())]));
                let parsed: T = q.parse().unwrap();
                let read = format!("{parsed:?}").matches("\"probe\"").count();
                assert_eq!(read, 1, "{route}: {name} is accepted but not parsed");
            }
        }
        reads::<MediaQueryParams>("/v2/vault-plus/media", &[]);
        reads::<MediaQueryParams>("/v2/vault-plus/list", &[]);
        reads::<PageParams>("/v2/vault-plus/lists/{listId}/media", &[]);
        // `state` is the jobs route's own, taken before the page.
        reads::<PageParams>("/v2/vault-plus/jobs", &["state"]);
        type Connections = crate::http::routes::account::ConnectionListParams;
        reads::<Connections>("/v2/account/connections", &[]);
    }

    #[test]
    fn older_sdk_parameters_are_declared() {
        let r = rules();
        let legacy = r
            .accepted(&Method::GET, "/v2/vault-plus/list")
            .expect("documented");
        for p in ["status", "source", "contentType", "limit", "cursor"] {
            assert!(legacy.contains(p), "{p}");
        }
        let conns = r
            .accepted(&Method::GET, "/v2/account/connections")
            .expect("documented");
        for p in ["status", "limit", "offset"] {
            assert!(conns.contains(p), "{p}");
        }
    }
}
