-- The reclaim queue is taken oldest first in batches; without this index
-- every batch sorted the whole queue (a million-blob purge took minutes).
CREATE INDEX reclaim_blobs_by_age ON reclaim_blobs(queued_at, blob_key);
