-- Every media query reads rows bounded by its page (docs/query-plans.md):
-- the media type leads an index per sort column, so a walk under a type
-- filter reads only that type (nulls of the sort column included), and a
-- status or content type that selects few variants drives the query
-- through its own index instead of a walk that finds nothing.
CREATE INDEX media_by_type_created ON media(scope_id, media_type, created_at, sort_id);
CREATE INDEX media_by_type_cached ON media(scope_id, media_type, cached_at, sort_id);
CREATE INDEX media_by_type_duration ON media(scope_id, media_type, duration, sort_id);
CREATE INDEX variants_by_status ON variants(scope_id, status, media_id);
CREATE INDEX variants_by_content_type ON variants(scope_id, content_type, media_id);
