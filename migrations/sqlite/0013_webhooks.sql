-- Webhook endpoints of an organization and the outbox of their deliveries.
--
-- A secret is stored as the catalog stores URL signing secrets: sealed
-- under the master key when there is one (service/secret_box.rs). During a
-- rotation the previous secret keeps signing until previous_until.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT,
    secret BLOB NOT NULL,
    previous_secret BLOB,
    previous_until INTEGER,
    created_at INTEGER NOT NULL,
    -- Set when deliveries failed for the whole retry window.
    disabled_at INTEGER,
    disabled_reason TEXT,
    -- The last delivery it answered with a 2xx: an endpoint is disabled only
    -- when none succeeded during a whole retry window.
    last_success_at INTEGER
);
CREATE INDEX webhook_endpoints_by_org ON webhook_endpoints (org_id, created_at, id);

-- The event types an endpoint receives: the outbox write finds an org's
-- subscribers of one type through this primary key.
CREATE TABLE webhook_subscriptions (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    org_id INTEGER NOT NULL,
    -- Where the type stands in the list the endpoint was created with.
    position INTEGER NOT NULL,
    PRIMARY KEY (org_id, event_type, endpoint_id)
);

-- One row per event and endpoint, written in the transaction of the change
-- it reports; deleted once delivered (or given up). msg_id is the svix-id,
-- the same on every attempt.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    msg_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id);
