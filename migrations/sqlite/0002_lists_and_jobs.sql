-- Filling the cache from the upstream: list memberships with sync
-- baselines, and the durable queue of storing jobs.

-- Where a variant's bytes come from: 'upload' (PUT by a client),
-- 'upstream' (fetched from upstream_url), 'derived' (made from the item's
-- full variant, e.g. a generated thumbnail).
ALTER TABLE variants ADD COLUMN origin TEXT NOT NULL DEFAULT 'upload';
-- Short-lived upstream URL of the rendition, refreshed by every listing.
ALTER TABLE variants ADD COLUMN upstream_url TEXT;
-- Size the upstream listing announced; a fetched body must match it.
ALTER TABLE variants ADD COLUMN upstream_size INTEGER;
ALTER TABLE variants ADD COLUMN last_error TEXT;

-- Upstream fingerprint (full size + URL path) and a list that holds the
-- item, to list again when its URLs expire.
ALTER TABLE media ADD COLUMN fingerprint TEXT;
ALTER TABLE media ADD COLUMN list_hint TEXT;

CREATE TABLE lists (
    scope_id INTEGER NOT NULL,
    list_id TEXT NOT NULL,
    has_baseline INTEGER NOT NULL DEFAULT 0,
    first_added_at INTEGER NOT NULL,
    last_added_at INTEGER NOT NULL,
    last_synced_at INTEGER,
    PRIMARY KEY (scope_id, list_id)
);

CREATE TABLE list_members (
    scope_id INTEGER NOT NULL,
    list_id TEXT NOT NULL,
    media_id TEXT NOT NULL,
    first_added_at INTEGER NOT NULL,
    last_added_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    last_synced_at INTEGER,
    in_baseline INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope_id, list_id, media_id)
);
CREATE INDEX list_members_by_media ON list_members(scope_id, media_id);

-- One job per variant at most (single flight), claimed with a lease.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    scope_id INTEGER NOT NULL,
    media_id TEXT NOT NULL,
    label TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    failed_at INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (scope_id, media_id, label)
);
CREATE INDEX jobs_due ON jobs(run_after) WHERE failed_at IS NULL;
