//! What a revoking transaction names, for nodes that keep catalog state in
//! memory (docs/cluster-coherence.md). Written by the shared SQL
//! (`sql/variants.rs`, `sql/connections.rs`, `sql/accounts.rs`); only the
//! PostgreSQL dialect publishes it (SQLite's cache drops at every commit).

use super::ScopeId;

/// What one revocation names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// Something of this scope: a variant deleted, evicted or replaced, or
    /// the scope retired (purge, removal, disabling Vault+).
    Scope(ScopeId),
    /// A signing key retired.
    Keys,
    /// Anything: too many to name, or notifications were missed.
    All,
}

impl Revoked {
    /// The form written to `revocations_pending.what`.
    pub fn tag(&self) -> String {
        match self {
            Revoked::Scope(s) => s.to_string(),
            Revoked::Keys => "keys".into(),
            Revoked::All => "*".into(),
        }
    }

    fn parse(tag: &str) -> Revoked {
        match tag {
            "keys" => Revoked::Keys,
            t => t.parse().map(Revoked::Scope).unwrap_or(Revoked::All),
        }
    }

    /// The revocations of one notification payload after its number.
    pub fn parse_list(list: &str) -> Vec<Revoked> {
        list.split(',').map(Revoked::parse).collect()
    }
}
