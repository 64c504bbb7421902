//! The error answers every operation of a kind can give, declared once
//! here rather than in each route's annotation (where one would be
//! forgotten): what the connection layer refuses before routing, what the
//! API-key and JSON-body extractors refuse, and an internal error. A route
//! declares only what its own service call adds (403, 404, 409, 502 ...),
//! and may describe a common status more precisely: its own entry is kept.

use serde_json::json;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{OpenApi, RefOr, Response};

use super::extract::MAX_JSON_BODY;
use super::server::framing::{MAX_HEAD_BYTES, MAX_HEADERS, MAX_REQUEST_LINE_BYTES};

/// A common answer: its status and what it means.
struct Common {
    status: &'static str,
    description: String,
}

fn before_routing() -> Vec<Common> {
    vec![
        Common {
            status: "400",
            description:
                "The request is malformed (a parameter, header or body the route refuses, \
                 or ambiguous framing), or a header the API reads once is given twice \
                 (BAD_REQUEST)."
                    .into(),
        },
        Common {
            status: "408",
            description: "The request head did not arrive in time (REQUEST_TIMEOUT).".into(),
        },
        Common {
            status: "414",
            description: format!(
                "The request line is longer than {MAX_REQUEST_LINE_BYTES} bytes (URI_TOO_LONG)."
            ),
        },
        Common {
            status: "431",
            description: format!(
                "The request head is larger than {MAX_HEAD_BYTES} bytes or has more than \
                 {MAX_HEADERS} header lines (REQUEST_HEADER_FIELDS_TOO_LARGE)."
            ),
        },
        Common {
            status: "500",
            description: "An internal error; the cause is in the server log, under the \
                 request ID (INTERNAL)."
                .into(),
        },
        Common {
            status: "501",
            description: "A Transfer-Encoding other than chunked (NOT_IMPLEMENTED).".into(),
        },
    ]
}

fn unauthorized() -> Common {
    Common {
        status: "401",
        description: "The API key is missing, invalid, or lacks the ACCOUNT scope \
             (UNAUTHORIZED); or the x-connection-id names no connection of its \
             organization (SESSION_NOT_PROVIDED)."
            .into(),
    }
}

fn json_too_large() -> Common {
    Common {
        status: "413",
        description: format!(
            "The JSON body is larger than {MAX_JSON_BODY} bytes (PAYLOAD_TOO_LARGE)."
        ),
    }
}

fn keyed(op: &Operation) -> bool {
    op.security.as_ref().is_some_and(|s| {
        s.iter()
            .any(|r| serde_json::to_value(r).is_ok_and(|v| v.get("ApiKey").is_some()))
    })
}

fn takes_connection(op: &Operation) -> bool {
    op.parameters.iter().flatten().any(|p| {
        matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Header && p.name == "x-connection-id")
    })
}

fn takes_json(op: &Operation) -> bool {
    op.request_body
        .as_ref()
        .is_some_and(|b| matches!(b, RefOr::T(b) if b.content.contains_key("application/json")))
}

/// Adds the common answers to every operation that lacks them, with the
/// error body. Inline rather than shared under `components/responses`:
/// [`super::openapi::document_rate_limits`] adds its headers to each.
pub fn document_common_errors(api: &mut OpenApi) {
    for item in api.paths.paths.values_mut() {
        for op in super::openapi::operations_mut(item) {
            let mut wanted = before_routing();
            if keyed(op) || takes_connection(op) {
                wanted.push(unauthorized());
            }
            if takes_json(op) {
                wanted.push(json_too_large());
            }
            for c in wanted {
                op.responses
                    .responses
                    .entry(c.status.into())
                    .or_insert_with(|| RefOr::T(response(&c)));
            }
        }
    }
}

fn response(c: &Common) -> Response {
    serde_json::from_value(json!({
        "description": c.description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    }))
    .expect("hand-written response is valid")
}
