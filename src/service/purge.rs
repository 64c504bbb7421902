//! Purge: everything of a connection, in one catalog transaction whose cost
//! does not depend on how much the connection holds. The bytes follow in
//! the background (see `reclaim`).

use std::time::Instant;

use metrics::{counter, histogram};

use crate::metrics::names;
use crate::model::ConnectionId;
use crate::model::time::now_ms;
use crate::model::views::PurgeResponse;

use crate::catalog::PurgeOutcome;

use super::receipts::Receipted;
use super::{Principal, ServiceError, ServiceResult, VaultService};

impl VaultService {
    pub async fn purge(
        &self,
        who: &Principal,
        connection: &str,
    ) -> ServiceResult<Receipted<PurgeResponse>> {
        let id = ConnectionId::parse(connection).map_err(|_| ServiceError::ConnectionNotFound)?;
        let started = Instant::now();
        let outcome = self
            .catalog
            .purge_connection(who.org_id, &id, now_ms())
            .await?
            .ok_or(ServiceError::ConnectionNotFound)?;
        purged("purge", &outcome, started);
        self.reclaim_soon();
        tracing::info!(
            connection = %id,
            purged_count = outcome.purged_count,
            freed_bytes = outcome.freed_bytes,
            "purged connection"
        );
        Ok(Receipted {
            body: PurgeResponse {
                success: true,
                purged_count: outcome.purged_count,
                freed_bytes: outcome.freed_bytes,
            },
            receipt: outcome.receipt,
        })
    }
}

/// Records a purge answered by the API: `via` says which call made it
/// (`purge`, `disable`: Vault+ turned off for the connection, `remove`: the
/// connection deleted), `started` when its catalog transaction began.
pub(super) fn purged(via: &'static str, outcome: &PurgeOutcome, started: Instant) {
    histogram!(names::PURGE_DURATION).record(started.elapsed().as_secs_f64());
    counter!(names::PURGES, "via" => via).increment(1);
    counter!(names::PURGED_VARIANTS).increment(outcome.purged_count);
    counter!(names::PURGED_BYTES).increment(outcome.freed_bytes);
}
