-- issue 20: a route with a client registered by hand at a discovered authorization server keeps
-- the server's metadata (its token endpoint, for the gateway's refresh) in upstream_clients too;
-- such a row names the configured client and is replaced when a route without one registers.
ALTER TABLE upstream_clients
    DROP CONSTRAINT upstream_clients_method_check,
    ADD CONSTRAINT upstream_clients_method_check
        CHECK (method IN ('metadata_document', 'dynamic', 'configured'));

-- the resource (RFC 8707) a Connect asked the upstream for: the code exchange names it again
-- (RFC 8707 §2.2) without discovering anew.
ALTER TABLE upstream_connects ADD COLUMN resource text;
