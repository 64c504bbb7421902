-- vaultplus catalog, embedded (SQLite) flavour.
-- Integer times are epoch milliseconds. Sizes are bytes.

CREATE TABLE orgs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    auto_enable INTEGER NOT NULL,
    default_settings TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    secret_hash BLOB NOT NULL,
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE signing_keys (
    id INTEGER PRIMARY KEY,
    secret BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- One generation of a connection's media. Purge retires the scope (one row
-- update) and reclaim deletes its records and bytes later, in batches.
CREATE TABLE scopes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL,
    connection_id TEXT NOT NULL,
    live_count INTEGER NOT NULL DEFAULT 0,
    stored_count INTEGER NOT NULL DEFAULT 0,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
CREATE INDEX scopes_retired ON scopes(retired_at) WHERE retired_at IS NOT NULL;

CREATE TABLE connections (
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    id TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    settings_overrides TEXT,
    scope_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE media (
    scope_id INTEGER NOT NULL,
    media_id TEXT NOT NULL,
    sort_id TEXT NOT NULL,
    media_type TEXT,
    duration REAL,
    created_at INTEGER NOT NULL,
    cached_at INTEGER,
    live_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope_id, media_id)
);
CREATE INDEX media_by_created ON media(scope_id, created_at, sort_id);
CREATE INDEX media_by_cached ON media(scope_id, cached_at, sort_id);
CREATE INDEX media_by_duration ON media(scope_id, duration, sort_id);

CREATE TABLE variants (
    scope_id INTEGER NOT NULL,
    media_id TEXT NOT NULL,
    label TEXT NOT NULL,
    status TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    access_count INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    stored_at INTEGER,
    last_accessed_at INTEGER NOT NULL,
    blob_key TEXT,
    checksum TEXT,
    PRIMARY KEY (scope_id, media_id, label)
);

-- Bytes to delete: replaced or deleted variants, aborted uploads, drained
-- retired scopes. A key leaves this table only after its blob is gone.
CREATE TABLE reclaim_blobs (
    blob_key TEXT PRIMARY KEY,
    queued_at INTEGER NOT NULL
);

-- Blobs being written right now. If the writer dies, the key is still
-- known and the next start moves it to reclaim_blobs.
CREATE TABLE upload_intents (
    blob_key TEXT PRIMARY KEY,
    scope_id INTEGER NOT NULL,
    started_at INTEGER NOT NULL
);
