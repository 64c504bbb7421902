-- Revocations and node leases: the look-up cache protocol of
-- docs/cluster-coherence.md.
--
-- A transaction that revokes something a node may hold in memory (a
-- variant that stops being stored as it was, a retired scope, a signing
-- key) inserts what it revoked into revocations_pending. At its commit a
-- deferred trigger moves those rows into one numbered revocation: it takes
-- the next value of the revocation clock and notifies every node on
-- `vaultplus_revocations` with "<seq> <what>,<what>...". The clock row is
-- locked only inside the commit (deferred triggers run last), so the lock
-- is held for the commit alone and never before another lock; and since
-- every revoking commit takes it, revocation numbers follow commit order,
-- which is the order PostgreSQL delivers notifications in.

CREATE TABLE revocation_clock (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    seq BIGINT NOT NULL
);
INSERT INTO revocation_clock (seq) VALUES (0);

-- Rows live only inside the transaction that wrote them (the trigger
-- deletes them at its commit), so nothing here needs to survive a crash.
CREATE UNLOGGED TABLE revocations_pending (
    txid xid8 NOT NULL,
    what TEXT NOT NULL,
    PRIMARY KEY (txid, what)
);

CREATE FUNCTION vaultplus_publish_revocations() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    whats TEXT;
    next BIGINT;
BEGIN
    WITH gone AS (
        DELETE FROM revocations_pending WHERE txid = NEW.txid RETURNING what
    )
    SELECT string_agg(what, ',' ORDER BY what) INTO whats FROM gone;
    -- An earlier row of the same transaction already published them all.
    IF whats IS NULL THEN
        RETURN NULL;
    END IF;
    -- A notification payload holds at most 8000 bytes: past that, every
    -- node drops everything it holds.
    IF length(whats) > 7000 THEN
        whats := '*';
    END IF;
    UPDATE revocation_clock SET seq = seq + 1 RETURNING seq INTO next;
    PERFORM pg_notify('vaultplus_revocations', next || ' ' || whats);
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER publish_revocations
    AFTER INSERT ON revocations_pending
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION vaultplus_publish_revocations();

-- One row per running node: until when (database clock, ms) it may answer
-- from memory, and the last revocation it confirmed when it renewed. A
-- lease is only renewed while `acked_seq` is the clock's current value,
-- so it never outlives a revocation the node has not processed.
CREATE TABLE node_leases (
    node_id TEXT PRIMARY KEY,
    lease_until BIGINT NOT NULL,
    acked_seq BIGINT NOT NULL,
    started_at BIGINT NOT NULL
);
