//! Every metric family's name and help, in one place: the code that
//! records uses these constants, and `docs/grafana-dashboard.json` and the
//! README's list plot and name them.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

pub const BUILD_INFO: &str = "vaultplus_build_info";

pub const HTTP_REQUESTS: &str = "vaultplus_http_requests_total";
pub const HTTP_DURATION: &str = "vaultplus_http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "vaultplus_http_requests_in_flight";
pub const HTTP_BYTES_SENT: &str = "vaultplus_http_response_body_bytes_total";
pub const HTTP_CONNECTIONS_OPEN: &str = "vaultplus_http_connections_open";
pub const HTTP_CONNECTIONS_REFUSED: &str = "vaultplus_http_connections_refused_total";
pub const HTTP_CONNECTIONS_EVICTED: &str = "vaultplus_http_connections_evicted_total";
pub const RATE_LIMITED: &str = "vaultplus_rate_limited_requests_total";

pub const PURGES: &str = "vaultplus_purges_total";
pub const PURGE_DURATION: &str = "vaultplus_purge_duration_seconds";
pub const PURGED_VARIANTS: &str = "vaultplus_purged_variants_total";
pub const PURGED_BYTES: &str = "vaultplus_purged_bytes_total";

pub const STORED_VARIANTS: &str = "vaultplus_stored_variants";
pub const STORED_BYTES: &str = "vaultplus_stored_bytes";
pub const LIVE_VARIANTS: &str = "vaultplus_live_variants";
pub const RECLAIM_RETIRED_SCOPES: &str = "vaultplus_reclaim_retired_scopes";
pub const RECLAIM_RETIRED_VARIANTS: &str = "vaultplus_reclaim_retired_variants";
pub const RECLAIM_QUEUED_BLOBS: &str = "vaultplus_reclaim_queued_blobs";
pub const BLOB_STORE_FREE_BYTES: &str = "vaultplus_blob_store_free_bytes";
pub const BLOB_STORE_MIN_FREE_BYTES: &str = "vaultplus_blob_store_min_free_bytes";
pub const SCRAPE_ERRORS: &str = "vaultplus_metrics_scrape_errors_total";

pub fn describe() {
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the labels say the version and the catalog and blob backends."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "Requests answered, by route template (none: answered before routing, e.g. rate-limited or unknown path), method and status class."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its response head, by route template and method."
    );
    describe_gauge!(
        HTTP_IN_FLIGHT,
        "Requests whose response has not been sent whole yet (downloads included)."
    );
    describe_counter!(
        HTTP_BYTES_SENT,
        Unit::Bytes,
        "Response body bytes handed to client connections."
    );
    describe_gauge!(HTTP_CONNECTIONS_OPEN, "Client connections open.");
    describe_counter!(
        HTTP_CONNECTIONS_REFUSED,
        "New connections closed at once: the connection cap was reached with every connection busy."
    );
    describe_counter!(
        HTTP_CONNECTIONS_EVICTED,
        "Idle connections closed to make room for a new one at the connection cap."
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests answered 429 by a rate limit, by limit (api_key, media)."
    );
    describe_counter!(PURGES, "Connection purges answered.");
    describe_histogram!(
        PURGE_DURATION,
        Unit::Seconds,
        "Time a purge took in the catalog (the answer; reclaim runs after)."
    );
    describe_counter!(PURGED_VARIANTS, "Variants removed by purges.");
    describe_counter!(PURGED_BYTES, Unit::Bytes, "Bytes freed by purges.");
    describe_gauge!(
        STORED_VARIANTS,
        "Variants stored, over every connection (the catalog's counters)."
    );
    describe_gauge!(
        STORED_BYTES,
        Unit::Bytes,
        "Bytes stored, over every connection (the catalog's counters)."
    );
    describe_gauge!(
        LIVE_VARIANTS,
        "Variants not removed (stored or on their way), over every connection."
    );
    describe_gauge!(
        RECLAIM_RETIRED_SCOPES,
        "Purged connection generations whose records are still to be drained."
    );
    describe_gauge!(
        RECLAIM_RETIRED_VARIANTS,
        "Variant records of purged generations still to be drained."
    );
    describe_gauge!(
        RECLAIM_QUEUED_BLOBS,
        "Blobs queued for deletion from the blob store."
    );
    describe_gauge!(
        BLOB_STORE_FREE_BYTES,
        Unit::Bytes,
        "Free space of the blob store (absent for stores without a figure, such as S3)."
    );
    describe_gauge!(
        BLOB_STORE_MIN_FREE_BYTES,
        Unit::Bytes,
        "The free-space floor (--min-free-bytes) under which new stores are refused."
    );
    describe_counter!(
        SCRAPE_ERRORS,
        "Scrapes that could not read a catalog or blob store figure (the last value is kept)."
    );
}
