//! vaultplus: a self-hostable media cache server speaking the OFAuth Vault+
//! API.
//!
//! Layers, from the outside in: [`http`] (axum routes, thin), [`service`]
//! (the Vault+ rules), [`catalog`] (metadata behind a trait, SQLite by
//! default) and [`blobs`] (bytes behind a trait, a local directory by
//! default). [`app`] wires them together; [`cli`] is the command line.

pub mod app;
pub mod backup;
pub mod blobs;
pub mod catalog;
pub mod cli;
pub mod http;
pub mod metrics;
pub mod migrate;
pub mod model;
pub mod private_files;
pub mod progress;
pub mod service;
pub mod stores;
pub mod upstream;
