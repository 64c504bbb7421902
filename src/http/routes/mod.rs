//! Route handlers, one file per resource. Handlers only translate between
//! HTTP and the service.

pub mod account;
pub mod delivery;
pub mod health;
pub mod lists;
pub mod media;
pub mod purge;
pub mod receipts;
pub mod status;
pub mod upload;
pub mod webhooks;

use utoipa::IntoParams;

use crate::model::ConnectionId;

/// The connection header every media route takes (OpenAPI only).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct ConnectionIdHeader {
    /// Connection ID whose Vault+ cache should be read or modified.
    #[param(rename = "x-connection-id")]
    x_connection_id: ConnectionId,
}
