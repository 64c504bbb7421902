-- Lists' members and jobs are read a page at a time, in keyset order
-- (paging.rs): without these indexes every page of a 200,000-item list
-- sorted all its members, and every page of jobs the whole queue.
CREATE INDEX list_members_page ON list_members(scope_id, list_id, first_added_at, media_id);
CREATE INDEX jobs_page ON jobs(scope_id, id);
CREATE INDEX jobs_failed_page ON jobs(scope_id, id) WHERE failed_at IS NOT NULL;
