//! What can go wrong in a Vault+ operation, in terms a caller can act on.
//! The HTTP layer maps each kind to a status and wire `type`.

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request itself is wrong; the text names the problem.
    #[error("{0}")]
    BadRequest(String),
    /// Missing, unknown, revoked or under-scoped API key.
    #[error("Unauthorized")]
    Unauthorized,
    /// The `x-connection-id` names no connection of the caller's org.
    #[error("Connection not found")]
    ConnectionNotFound,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    InsufficientStorage(String),
    /// Too much at once from one caller; try again after the given seconds.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// The connection's upstream session is gone; `kind` is the upstream's
    /// own type (`SESSION_EXPIRED` or `SESSION_NOT_PROVIDED`).
    #[error("{message}")]
    UpstreamSession { kind: &'static str, message: String },
    /// The upstream failed or refused after retries.
    #[error("{0}")]
    Upstream(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }

    pub fn vault_disabled() -> Self {
        Self::Forbidden("Vault+ is not enabled for this connection".into())
    }
}
