-- A blob whose deletion failed waits before its next try, behind the rest
-- of the queue (times from this process's clock; NULL: due now).
ALTER TABLE reclaim_blobs ADD COLUMN not_before INTEGER;
