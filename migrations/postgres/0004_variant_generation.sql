-- A media URL names the variant's generation and serves only while the
-- row still has it (catalog/generation.rs): a delete, eviction or purge
-- followed by storing the same media and label anew, or a replace, gives
-- the row a new one, so URLs handed out before never serve the new bytes.
-- Rows from before get 0; URLs signed before this version stop verifying.
ALTER TABLE variants ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
