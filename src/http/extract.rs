//! Extractors that turn raw requests into checked values, with every
//! rejection in the API's error format and naming what is wrong.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::strict_json;
use crate::model::{Label, MediaId};
use crate::service::{Principal, VaultService};

/// Largest JSON body accepted: batch requests and settings are small.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// The caller, from the `apiKey` header (names are case-insensitive).
pub struct Auth(pub Principal);

/// The `apiKey` header as presented (not yet checked), if any. A key that
/// is not plain ASCII is passed on as no key (401), as before.
pub fn api_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    Ok(single_header(headers, "apikey")?.and_then(|v| v.to_str().ok()))
}

/// A header the API reads as one value. Two lines of it (in any case) are
/// ambiguous: proxies and servers disagree on which one wins, so the
/// request is refused rather than answered for one of them.
pub fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a HeaderValue>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::bad_request(format!(
            "the {name} header is given more than once"
        )));
    }
    Ok(first)
}

/// The outcome of [`Auth`] when a middleware already took it (the rate
/// limiter, which keys on the authenticated key): handlers reuse it rather
/// than authenticating twice.
#[derive(Clone)]
pub struct AuthChecked(pub Result<Principal, ApiError>);

impl FromRequestParts<VaultService> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &VaultService,
    ) -> Result<Self, Self::Rejection> {
        if let Some(AuthChecked(checked)) = parts.extensions.get::<AuthChecked>() {
            return checked.clone().map(Auth);
        }
        let presented = api_key(&parts.headers)?;
        Ok(Auth(service.authenticate(presented).await?))
    }
}

/// The `x-connection-id` header, required and non-empty.
pub struct ConnectionHeader(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ConnectionHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match single_header(&parts.headers, "x-connection-id")?.map(|v| v.to_str().map(str::trim)) {
            // The seed contract (docs/reference/000_ab7af7969c1ee0d9.txt)
            // answers 400 for a header that is missing or
            // invalid; a well-formed ID that names no connection is a 401,
            // decided by the service.
            Some(Ok(v)) if !v.is_empty() => crate::model::ConnectionId::parse(v)
                .map(|_| ConnectionHeader(v.to_owned()))
                .map_err(|e| {
                    ApiError::bad_request(format!("x-connection-id header is invalid: {e}"))
                }),
            Some(Err(_)) => Err(ApiError::bad_request(
                "x-connection-id header must be plain ASCII",
            )),
            _ => Err(ApiError::bad_request("x-connection-id header is required")),
        }
    }
}

/// Path parameters, with rejections in our error format.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathParams(v))
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))
    }
}

pub fn media_id(raw: &str) -> Result<MediaId, ApiError> {
    MediaId::parse(raw).map_err(ApiError::bad_request)
}

pub fn label(raw: &str) -> Result<Label, ApiError> {
    Label::parse(raw).map_err(ApiError::bad_request)
}

/// A JSON body, bounded in size, parsed with the failing field's path in
/// the error message.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let is_json = single_header(req.headers(), CONTENT_TYPE.as_str())?
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim().to_ascii_lowercase();
                v == "application/json" || v.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::bad_request(
                "Content-Type must be application/json",
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_BODY)
            .await
            .map_err(|_| {
                ApiError::payload_too_large(format!(
                    "JSON body is larger than {MAX_JSON_BODY} bytes"
                ))
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "request body is empty; expected JSON",
            ));
        }
        let value = strict_json::parse(&bytes)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON body{e}")))?;
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "invalid JSON body: expected a JSON object",
            ));
        }
        serde_path_to_error::deserialize(value)
            .map(ApiJson)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." || path.is_empty() {
                    ApiError::bad_request(format!("invalid JSON body: {inner}"))
                } else {
                    ApiError::bad_request(format!("invalid JSON body at {path}: {inner}"))
                }
            })
    }
}

/// Query parameters as single values; a repeated parameter is refused
/// rather than silently taking one of its values.
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut map = HashMap::new();
        if let Some(q) = parts.uri.query() {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                if map.insert(k.to_string(), v.to_string()).is_some() {
                    return Err(ApiError::bad_request(format!(
                        "query parameter {k} is given more than once"
                    )));
                }
            }
        }
        Ok(QueryMap(map))
    }
}

impl QueryMap {
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// The parameters as `T`, by the names `T` declares for serde: the same
    /// struct whose `IntoParams` documents them, so what a route parses
    /// and what it documents (and so accepts) are one list. Values stay
    /// text for `T` to validate; names `T` lacks were refused already.
    pub fn parse<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        let fields = self
            .0
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
    }
}
