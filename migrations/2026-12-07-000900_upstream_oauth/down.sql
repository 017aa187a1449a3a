DROP TABLE upstream_connects;
DROP TABLE upstream_connections;
DROP TABLE upstream_clients;
DELETE FROM gateway_routes WHERE upstream_auth = 'oauth2';
ALTER TABLE gateway_routes
    DROP CONSTRAINT gateway_routes_oauth_check,
    DROP CONSTRAINT gateway_routes_secret_check,
    DROP CONSTRAINT gateway_routes_upstream_auth_check,
    DROP COLUMN upstream_oauth,
    ADD CONSTRAINT gateway_routes_upstream_auth_check CHECK (upstream_auth IN ('none', 'api_key', 'headers')),
    ADD CONSTRAINT gateway_routes_check CHECK ((upstream_auth = 'none') = (upstream_secret_enc IS NULL));
