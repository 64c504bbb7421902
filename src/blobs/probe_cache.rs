//! The last health probe of a blob store and its outcome. Health checks
//! (from load balancers, and from anyone: `/healthz` needs no key) would
//! otherwise each write and delete a probe, and during an outage pile up
//! behind retries. The lock is held while probing, so concurrent checks
//! share one probe.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// A successful probe stands for this long.
const PING_VALID: Duration = Duration::from_secs(5);
/// A failed probe stands for this long: short, so that recovery shows
/// within seconds, yet checks during an outage cost one probe per window.
const PING_FAILURE_VALID: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct ProbeCache {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl ProbeCache {
    /// The outcome of a probe still valid, or of `probe` run now.
    pub async fn check<F>(&self, probe: impl FnOnce() -> F) -> anyhow::Result<()>
    where
        F: Future<Output = anyhow::Result<()>>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, outcome)) = last.as_ref() {
            let valid = if outcome.is_ok() {
                PING_VALID
            } else {
                PING_FAILURE_VALID
            };
            if at.elapsed() < valid {
                return outcome.clone().map_err(anyhow::Error::msg);
            }
        }
        let outcome = probe().await.map_err(|e| format!("{e:#}"));
        *last = Some((Instant::now(), outcome.clone()));
        outcome.map_err(anyhow::Error::msg)
    }
}
