//! Moved to the `vaultplus-conformance` crate (`crates/conformance`).
//! This empty module stays only until `catalog/mod.rs` drops its
//! `pub mod conformance;` (that file is being rewritten elsewhere).
