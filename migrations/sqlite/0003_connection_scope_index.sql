-- Every read checks that its scope is some connection's current one; that
-- check must not scan the connections table.
CREATE UNIQUE INDEX connections_by_scope ON connections(scope_id);
