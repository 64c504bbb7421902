//! `GET /openapi.json`: OpenAPI 3.1, every route these tests use, and the
//! purge operation exactly as the SEED gives it.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;
use crate::harness::TestServer;

async fn doc(s: &TestServer) -> Value {
    let r = send(s.http.get(s.url("/openapi.json"))).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.header("content-type")
    );
    r.body
}

/// Inlines local `$ref`s (keeping any sibling keys, as 3.1 allows).
fn resolve(root: &Value, v: &Value, depth: usize) -> Value {
    assert!(depth < 64, "$ref cycle");
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                let pointer = r
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("non-local $ref {r}"));
                let target = root
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {r}"));
                let mut out = resolve(root, target, depth + 1);
                for (k, x) in m {
                    if k != "$ref" {
                        out[k] = resolve(root, x, depth + 1);
                    }
                }
                out
            } else {
                Value::Object(
                    m.iter()
                        .map(|(k, x)| (k.clone(), resolve(root, x, depth + 1)))
                        .collect(),
                )
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| resolve(root, x, depth + 1)).collect()),
        other => other.clone(),
    }
}

/// `{anything}` -> `{}`: path parameter names are the server's choice.
fn normalise(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('{');
            }
            '}' => {
                in_param = false;
                out.push('}');
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// The documented (method, path) pairs, parameter names normalised.
fn operations(d: &Value) -> BTreeSet<(String, String)> {
    let paths = d["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (normalise(p), m.to_lowercase()))
        })
        .collect()
}

fn assert_documented(d: &Value, used: &[(&str, &str)]) {
    let have = operations(d);
    let missing: Vec<String> = used
        .iter()
        .filter(|(m, p)| {
            // HEAD is implied by GET in OpenAPI documents that omit it.
            !(have.contains(&((*p).to_owned(), (*m).to_owned()))
                || (*m == "head" && have.contains(&((*p).to_owned(), "get".to_owned()))))
        })
        .map(|(m, p)| format!("{} {p}", m.to_uppercase()))
        .collect();
    assert!(
        missing.is_empty(),
        "operations missing from /openapi.json: {missing:#?}"
    );
}

#[tokio::test]
async fn openapi_is_3_1_and_lists_every_route_used() {
    let s = TestServer::start().await;
    let d = doc(&s).await;
    let version = d["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "{version}");
    let used = [
        ("get", "/v2/vault-plus/media"),
        ("delete", "/v2/vault-plus/media"),
        ("get", "/v2/vault-plus/media/{}"),
        ("delete", "/v2/vault-plus/media/{}"),
        ("post", "/v2/vault-plus/media/batch"),
        ("put", "/v2/vault-plus/media/{}/variants/{}"),
        ("get", "/v2/vault-plus/status"),
        ("get", "/v2/vault-plus/stats"),
        ("get", "/v2/vault-plus/{}"),
        ("delete", "/v2/vault-plus/{}"),
        ("post", "/v2/vault-plus/batch"),
        ("get", "/v2/vault-plus/list"),
        ("delete", "/v2/vault-plus/purge"),
        ("get", "/v2/vault-plus/store/status"),
        ("get", "/v2/vault-plus/store/stats"),
        ("get", "/v2/media/{}"),
        ("head", "/v2/media/{}"),
        ("get", "/v2/account/connections"),
        ("delete", "/v2/account/connections/{}"),
        ("get", "/v2/account/connections/{}/settings"),
        ("patch", "/v2/account/connections/{}/settings"),
        ("get", "/v2/account/settings"),
        ("patch", "/v2/account/settings"),
    ];
    assert_documented(&d, &used);
}

#[tokio::test]
async fn openapi_lists_the_vault_list_routes_and_the_media_url_post() {
    let s = TestServer::start().await;
    let d = doc(&s).await;
    assert_documented(
        &d,
        &[
            ("get", "/v2/vault-plus/lists"),
            ("get", "/v2/vault-plus/lists/{}/media"),
            ("put", "/v2/vault-plus/lists/{}/sync"),
            ("post", "/v2/vault-plus/lists/{}/add"),
            ("post", "/v2/vault-plus/store/list/{}"),
            ("post", "/v2/media/{}"),
        ],
    );
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "error": {
                "type": "string",
                "description": "Human-readable error message.",
                "example": "Media not found"
            }
        },
        "required": ["error"],
        "description": "Error response."
    })
}

#[tokio::test]
async fn the_purge_operation_matches_the_seed() {
    let s = TestServer::start().await;
    let d = doc(&s).await;
    let op = resolve(&d, &d["paths"]["/v2/vault-plus/media"]["delete"], 0);
    assert!(
        op.is_object(),
        "DELETE /v2/vault-plus/media is not documented"
    );

    let seed: [(&str, &str, Value, Value); 3] = [
        (
            "200",
            "All cached media variants for the connection were purged.",
            json!({
                "type": "object",
                "properties": {
                    "success": {
                        "type": "boolean",
                        "description": "Whether the purge request completed.",
                        "example": true
                    },
                    "purgedCount": {
                        "type": "number",
                        "description": "Number of internal cached variants removed for this connection.",
                        "example": 2
                    },
                    "freedBytes": {
                        "type": "number",
                        "description": "Total bytes freed by the purge.",
                        "example": 1056000
                    }
                },
                "required": ["success", "purgedCount", "freedBytes"],
                "description": "Connection purge response."
            }),
            json!({"success": true, "purgedCount": 2, "freedBytes": 1056000}),
        ),
        (
            "400",
            "The x-connection-id header is missing or invalid.",
            error_schema(),
            json!({"error": "x-connection-id header is required"}),
        ),
        (
            "401",
            "The API key is missing, invalid, or lacks the ACCOUNT scope.",
            error_schema(),
            json!({"error": "Unauthorized"}),
        ),
    ];
    for (code, description, schema, example) in seed {
        let resp = &op["responses"][code];
        assert!(
            resp.is_object(),
            "response {code} missing: {}",
            op["responses"]
        );
        let media = &resp["content"]["application/json"];
        assert_eq!(media["schema"], schema, "{code} schema");
        assert_eq!(media["example"], example, "{code} example");
        assert_eq!(
            resp["description"],
            json!(description),
            "{code} description"
        );
    }

    let params = op["parameters"].as_array().expect("parameters");
    let header = params
        .iter()
        .find(|p| {
            p["in"] == "header"
                && p["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("x-connection-id"))
        })
        .expect("x-connection-id header parameter");
    assert_eq!(header["required"], json!(true));
    assert_eq!(header["schema"]["type"], "string");
    assert_eq!(header["schema"]["minLength"], json!(1));

    let scheme = &d["components"]["securitySchemes"]["ApiKey"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["name"], "apiKey");
    assert_eq!(scheme["in"], "header");
    let security = if op["security"].is_array() {
        &op["security"]
    } else {
        &d["security"]
    };
    assert!(
        security
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r.get("ApiKey").is_some())),
        "the purge requires the ApiKey scheme: {security}"
    );
}
