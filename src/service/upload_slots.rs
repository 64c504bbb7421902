//! How many uploads one connection may hold open at once
//! (`--max-uploads-per-connection`). Without a cap one tenant's slow or
//! stalled uploads could reserve all the free space above the floor (see
//! [`super::space`]) and every other tenant's stores would get 507. The
//! count is per server process: on a cluster each node keeps its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::catalog::OrgId;

use super::ServiceError;

/// What a refused upload should wait before trying again, in seconds: an
/// upload in progress usually ends within a few.
pub const RETRY_AFTER_SECS: u64 = 5;

type Holder = (OrgId, String);

#[derive(Clone)]
pub struct UploadSlots {
    limit: usize,
    held: Arc<Mutex<HashMap<Holder, usize>>>,
}

/// One upload in progress; dropping it frees the slot.
pub struct UploadSlot {
    held: Arc<Mutex<HashMap<Holder, usize>>>,
    holder: Holder,
}

impl UploadSlots {
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            held: Arc::default(),
        }
    }

    /// Takes a slot for an upload to `connection`, or refuses with 429 when
    /// the connection already holds the most it may.
    pub fn take(&self, org: OrgId, connection: &str) -> Result<UploadSlot, ServiceError> {
        let holder = (org, connection.to_owned());
        let mut held = self.held.lock().expect("upload slots lock poisoned");
        let n = held.entry(holder.clone()).or_insert(0);
        if *n >= self.limit {
            return Err(ServiceError::RateLimited {
                message: format!(
                    "this connection already has {} uploads in progress, the most one \
                     connection may hold at once (--max-uploads-per-connection {}); retry \
                     once one of them ends",
                    *n, self.limit
                ),
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        *n += 1;
        Ok(UploadSlot {
            held: self.held.clone(),
            holder,
        })
    }

    /// Uploads in progress for a connection.
    #[cfg(test)]
    fn count(&self, org: OrgId, connection: &str) -> usize {
        let held = self.held.lock().unwrap();
        held.get(&(org, connection.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut held = self.held.lock().expect("upload slots lock poisoned");
        if let Some(n) = held.get_mut(&self.holder) {
            *n -= 1;
            if *n == 0 {
                // No entry per connection ever seen: the map stays as small
                // as the uploads in progress.
                held.remove(&self.holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_holds_at_most_the_limit_and_others_are_apart() {
        let slots = UploadSlots::new(2);
        let a1 = slots.take(1, "conn_a").unwrap();
        let _a2 = slots.take(1, "conn_a").unwrap();
        let refused = slots.take(1, "conn_a").err().unwrap();
        let ServiceError::RateLimited {
            message,
            retry_after_secs,
        } = refused
        else {
            panic!("expected a rate limit, got {refused:?}");
        };
        assert!(
            message.contains("--max-uploads-per-connection 2"),
            "{message}"
        );
        assert_eq!(retry_after_secs, RETRY_AFTER_SECS);
        // Another connection, or the same name in another org, is not held.
        let _b = slots.take(1, "conn_b").unwrap();
        let _other_org = slots.take(2, "conn_a").unwrap();
        drop(a1);
        assert_eq!(slots.count(1, "conn_a"), 1);
        let _a3 = slots.take(1, "conn_a").unwrap();
    }

    #[test]
    fn freed_slots_leave_no_entry_behind() {
        let slots = UploadSlots::new(4);
        drop(slots.take(1, "conn_a").unwrap());
        assert!(slots.held.lock().unwrap().is_empty());
        assert_eq!(slots.count(1, "conn_a"), 0);
    }
}
