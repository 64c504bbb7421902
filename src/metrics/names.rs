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
pub const RECLAIM_RETIRED_BYTES: &str = "vaultplus_reclaim_retired_bytes";
pub const BLOB_STORE_FREE_BYTES: &str = "vaultplus_blob_store_free_bytes";
pub const BLOB_STORE_MIN_FREE_BYTES: &str = "vaultplus_blob_store_min_free_bytes";
pub const SCRAPE_ERRORS: &str = "vaultplus_metrics_scrape_errors_total";
pub const BLOB_STORE_RESERVED_BYTES: &str = "vaultplus_blob_store_reserved_bytes";

pub const MEDIA_RESPONSES: &str = "vaultplus_media_responses_total";
pub const LOOKUP_CACHE: &str = "vaultplus_lookup_cache_requests_total";
pub const BLOB_CACHE: &str = "vaultplus_blob_cache_requests_total";
pub const BLOB_CACHE_BYTES: &str = "vaultplus_blob_cache_bytes";
pub const BLOB_CACHE_ENTRIES: &str = "vaultplus_blob_cache_entries";

pub const JOBS: &str = "vaultplus_jobs";
pub const JOB_OUTCOMES: &str = "vaultplus_storing_attempts_total";
pub const UPSTREAM_REQUESTS: &str = "vaultplus_upstream_requests_total";
pub const UPSTREAM_DURATION: &str = "vaultplus_upstream_request_duration_seconds";

pub const RECLAIMED_BLOBS: &str = "vaultplus_reclaimed_blobs_total";
pub const RECLAIMED_RECORDS: &str = "vaultplus_reclaimed_records_total";
pub const RECLAIM_FAILURES: &str = "vaultplus_reclaim_deletion_failures_total";

pub const CATALOG_DURATION: &str = "vaultplus_catalog_operation_duration_seconds";
pub const BLOB_STORE_DURATION: &str = "vaultplus_blob_store_operation_duration_seconds";
pub const CATALOG_POOL_CONNECTIONS: &str = "vaultplus_catalog_pool_connections";
pub const CATALOG_POOL_MAX: &str = "vaultplus_catalog_pool_max_connections";

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
    describe_counter!(
        PURGES,
        "Connection purges answered, by the call that made them: purge, disable (Vault+ turned off for the connection) or remove (the connection deleted)."
    );
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
        RECLAIM_RETIRED_BYTES,
        Unit::Bytes,
        "Bytes of the variant records of purged generations still to be drained."
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
    describe_gauge!(
        BLOB_STORE_RESERVED_BYTES,
        Unit::Bytes,
        "Bytes of uploads and fetches in progress, reserved against the free-space floor and not written yet (local stores)."
    );
    describe_counter!(
        MEDIA_RESPONSES,
        "Media URL requests (/v2/media/...) answered, by status (200, 206, 304, 403, 404, 416, ...)."
    );
    describe_counter!(
        LOOKUP_CACHE,
        "Media URL look-ups of the catalog, by result: hit (answered from memory) or miss (read from the catalog)."
    );
    describe_counter!(
        BLOB_CACHE,
        "Blob reads of the small-blob memory cache, by result (hit, miss)."
    );
    describe_gauge!(
        BLOB_CACHE_BYTES,
        Unit::Bytes,
        "Bytes held by the small-blob memory cache."
    );
    describe_gauge!(
        BLOB_CACHE_ENTRIES,
        "Blobs held by the small-blob memory cache."
    );
    describe_gauge!(
        JOBS,
        "Storing jobs, by state: waiting (due or backing off), running (leased to a worker), failed (given up)."
    );
    describe_counter!(
        JOB_OUTCOMES,
        "Storing attempts ended, by outcome: stored, retry (to run again after a backoff), failed (given up), given_back (cut by a stop, no try spent), other (superseded or over the storage limit)."
    );
    describe_counter!(
        UPSTREAM_REQUESTS,
        "Requests to the upstream, by kind (fetch: a rendition; list: a vault list page) and outcome: ok, expired, gone, rate_limited (429), error (another status) or unreachable."
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Time to the upstream's response head, by kind (fetch, list)."
    );
    describe_counter!(
        RECLAIMED_BLOBS,
        "Blobs deleted from the blob store by reclaim."
    );
    describe_counter!(
        RECLAIMED_RECORDS,
        "Variant records of purged generations drained by reclaim."
    );
    describe_counter!(
        RECLAIM_FAILURES,
        "Blob deletions that failed (they stay queued and are tried again)."
    );
    describe_histogram!(
        CATALOG_DURATION,
        Unit::Seconds,
        "Time of catalog operations, by operation: every write transaction, and the reads on the request paths."
    );
    describe_histogram!(
        BLOB_STORE_DURATION,
        Unit::Seconds,
        "Time of blob store operations, by operation (get: until the body starts; put: the whole write; put_unsettled and settle: the storing pipeline's write, in two steps)."
    );
    describe_gauge!(
        CATALOG_POOL_CONNECTIONS,
        "Catalog database connections, by pool (reader, writer; one shared pool on PostgreSQL) and state (in_use, idle)."
    );
    describe_gauge!(
        CATALOG_POOL_MAX,
        "The most connections each catalog pool may open."
    );
    describe_counter!(
        SCRAPE_ERRORS,
        "Scrapes that could not read a catalog or blob store figure (the last value is kept)."
    );
}
