-- fsck walks stored variants in blob-key order.
CREATE INDEX variants_by_blob ON variants(blob_key) WHERE blob_key IS NOT NULL;
