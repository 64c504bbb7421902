//! How long-running work (migrate, backup, restore) reports where it
//! stands. The command line draws it (`cli/progress.rs`); tests and
//! libraries pass [`Quiet`].

/// Where a copy stands, phase by phase.
pub trait Progress: Sync {
    /// A new phase begins, of `total` units (items or bytes; 0: unknown).
    fn phase(&self, name: &str, total: u64);
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64);
    /// The phase ended; `summary` is one line worth keeping in a log.
    fn finish(&self, summary: &str);
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn phase(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self, _: &str) {}
}
