//! The behaviour every vaultplus backend must show, as test suites written
//! against the server's public traits only: [`catalog`] for each
//! [`Catalog`](vaultplus::catalog::Catalog), [`blobs`] for each
//! [`BlobStore`](vaultplus::blobs::BlobStore). A backend's integration test
//! instantiates a suite with [`catalog_conformance!`] or
//! [`blob_conformance!`], giving a factory for a fresh, empty store.
//!
//! A crate of its own because it is test kit, not server: the server only
//! dev-depends on it (the cycle Cargo allows for dev-dependencies).

pub mod blobs;
pub mod catalog;
pub mod plans;
#[cfg(test)]
mod registration;
