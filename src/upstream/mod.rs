//! Client for the upstream Access API (docs/reference/upstream.md):
//! listing vault lists and fetching rendition bytes.

mod client;
mod wire;

pub use client::{FetchError, ListedPage, UpstreamClient, UpstreamError};
