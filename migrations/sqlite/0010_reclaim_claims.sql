-- The reclaim queue's postponement becomes a claim, as on PostgreSQL: one
-- column (`claimed_until`) keeps a key out of reach both while a reclaimer
-- works on it and after its deletion failed, so both databases run the
-- same statements.
ALTER TABLE reclaim_blobs RENAME COLUMN not_before TO claimed_until;
