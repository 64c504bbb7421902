//! The open-file limit, and the connection cap that follows from it.

/// File descriptors kept for everything but client sockets: the catalog
/// (its pool, WAL and shared memory), upstream and object-store sockets,
/// uploads' temporary files, logs. At least this many, or an eighth of the
/// limit when that is more.
const RESERVED_FDS: u64 = 64;
/// The default cap never exceeds this, whatever the open-file limit: at
/// the bound on memory per connection (README, "Limits") this many
/// connections stay within a few GiB.
const MAX_DEFAULT_CONNECTIONS: u64 = 8_192;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; answers the soft
/// limit in force afterwards.
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, lim) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The default `--max-connections` for an open-file limit: each client
/// connection may hold its socket and one open blob file.
pub fn default_max_connections(nofile: u64) -> usize {
    let reserve = (nofile / 8).max(RESERVED_FDS);
    let cap = nofile.saturating_sub(reserve) / 2;
    cap.clamp(1, MAX_DEFAULT_CONNECTIONS) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_files() {
        assert_eq!(default_max_connections(256), 96);
        assert_eq!(default_max_connections(1024), 448);
        assert_eq!(default_max_connections(1 << 20), 8_192);
        assert_eq!(default_max_connections(10), 1);
    }
}
