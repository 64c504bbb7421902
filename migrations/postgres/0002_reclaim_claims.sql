-- Several nodes drain the blob reclaim queue: each claims a batch for a
-- while, so two nodes do not delete the same keys. A claim that runs out
-- (its node died mid-batch) is taken by the next one.
ALTER TABLE reclaim_blobs ADD COLUMN claimed_until BIGINT;
