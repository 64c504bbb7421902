-- An organization's own rate limit for its API keys; NULL takes the
-- server's --rate-limit-per-minute / --rate-limit-burst.
ALTER TABLE orgs ADD COLUMN rate_limit_per_minute BIGINT;
ALTER TABLE orgs ADD COLUMN rate_limit_burst BIGINT;
