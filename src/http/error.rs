//! One error type for every route, mapped to the wire body
//! `{"error", "type", "requestId", "message"}` (`message` repeats `error`
//! for older SDKs that read it).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::ServiceError;

#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after_secs: Option<u64>,
}

/// The error body. Handlers never build it: the request-ID middleware does,
/// from the [`ApiError`] left in the response, so every error carries the
/// request's ID.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Human-readable error message.
    pub error: String,
    /// Machine-readable error type, e.g. `BAD_REQUEST`.
    #[serde(rename = "type")]
    pub kind: String,
    pub request_id: String,
    /// Same text as `error`, for older SDKs.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// Tells the client when to try again (`Retry-After`).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "Unauthorized")
    }

    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND", "Route not found")
    }

    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", message)
    }

    /// Past a rate limit, with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMIT_EXCEEDED",
            format!("Rate limit exceeded; retry in {retry_after_secs} s"),
        )
        .retry_after(retry_after_secs)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "Internal server error",
        )
    }

    pub fn body(&self, request_id: &str) -> ErrorBody {
        ErrorBody {
            error: self.message.clone(),
            kind: self.kind.to_owned(),
            request_id: request_id.to_owned(),
            message: self.message.clone(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use StatusCode as S;
        match e {
            ServiceError::BadRequest(m) => Self::new(S::BAD_REQUEST, "BAD_REQUEST", m),
            ServiceError::Unauthorized => Self::unauthorized(),
            ServiceError::ConnectionNotFound => Self::new(
                S::UNAUTHORIZED,
                "SESSION_NOT_PROVIDED",
                "Connection not found",
            ),
            ServiceError::NotFound(m) => Self::new(S::NOT_FOUND, "RESOURCE_NOT_FOUND", m),
            ServiceError::Forbidden(m) => Self::new(S::FORBIDDEN, "FORBIDDEN", m),
            ServiceError::Conflict(m) => Self::new(S::CONFLICT, "CONFLICT", m),
            ServiceError::PayloadTooLarge(m) => Self::payload_too_large(m),
            ServiceError::InsufficientStorage(m) => {
                Self::new(S::INSUFFICIENT_STORAGE, "INSUFFICIENT_STORAGE", m)
            }
            ServiceError::RateLimited {
                message,
                retry_after_secs,
            } => Self {
                message,
                ..Self::rate_limited(retry_after_secs)
            },
            ServiceError::UpstreamSession { kind, message } => {
                Self::new(S::UNAUTHORIZED, kind, message)
            }
            ServiceError::Upstream(m) => Self::new(S::BAD_GATEWAY, "UPSTREAM_ERROR", m),
            ServiceError::Internal(e) => {
                // The cause goes to the log (with the request ID), not to
                // the client.
                tracing::error!(error = %format!("{e:#}"), "internal error");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        res.extensions_mut().insert(self);
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
