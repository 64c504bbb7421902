-- Erasure receipts: one per purge, connection removal, single delete and
-- eviction by policy (docs/receipts.md). A receipt is written in the
-- transaction of its change, with the counts the change answered; it
-- reaches bytes_gone once every blob it names is deleted from the blob
-- store, and then carries the digest of the lines of every variant whose
-- bytes it removed.
CREATE TABLE receipts (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    connection_id TEXT COLLATE "C" NOT NULL,
    requested_at BIGINT NOT NULL,
    purged_count BIGINT NOT NULL,
    freed_bytes BIGINT NOT NULL,
    bytes_gone_at BIGINT,
    digest TEXT,
    -- Set once a finished receipt's lines are all deleted (they go in
    -- batches after the digest is kept).
    lines_pruned_at BIGINT
);
CREATE INDEX receipts_pending ON receipts (requested_at, id) WHERE bytes_gone_at IS NULL;
CREATE INDEX receipts_to_prune ON receipts (bytes_gone_at, id)
    WHERE bytes_gone_at IS NOT NULL AND lines_pruned_at IS NULL;
-- A connection's receipts, newest first (GET /v2/vault-plus/receipts).
CREATE INDEX receipts_by_connection ON receipts (org_id, connection_id, requested_at, id);

-- The digest's lines ("{mediaId}\t{label}\t{sha256}\t{sizeBytes}", without
-- the newline), until the digest is made; the primary key keeps them in
-- bytewise order (COLLATE "C").
CREATE TABLE receipt_lines (
    receipt_id TEXT COLLATE "C" NOT NULL,
    line TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (receipt_id, line)
);

-- The receipt a queued blob belongs to: the receipt waits until its
-- deletion is confirmed (the row is forgotten).
ALTER TABLE reclaim_blobs ADD COLUMN receipt_id TEXT COLLATE "C";
CREATE INDEX reclaim_blobs_by_receipt ON reclaim_blobs (receipt_id) WHERE receipt_id IS NOT NULL;
-- The receipt a retired scope's drain writes the lines of (purge,
-- removal): the receipt waits until the scope is drained and gone.
ALTER TABLE scopes ADD COLUMN receipt_id TEXT COLLATE "C";
CREATE INDEX scopes_by_receipt ON scopes (receipt_id) WHERE receipt_id IS NOT NULL;

-- Ed25519 keys that sign receipts (the secret is the 32-byte seed, sealed
-- under the master key when there is one, as URL signing secrets are).
-- slot: the first key is slot 1, so that nodes racing to make it insert
-- one between them (the others' inserts conflict) and all sign with it.
CREATE TABLE receipt_keys (
    id TEXT PRIMARY KEY,
    slot BIGINT NOT NULL UNIQUE,
    secret BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
