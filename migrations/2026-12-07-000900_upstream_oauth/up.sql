-- issue 20: upstreams that want a per-user OAuth token of their own authorization server.

-- A route may now say `upstream_auth = 'oauth2'`; its explicit overrides of discovery
-- (authorization_endpoint, token_endpoint, client_id, scopes, ...) are `upstream_oauth`, and its
-- client secret, when configured, is sealed in `upstream_secret_enc` like the static credentials.
ALTER TABLE gateway_routes
    DROP CONSTRAINT gateway_routes_upstream_auth_check,
    DROP CONSTRAINT gateway_routes_check,
    ADD COLUMN upstream_oauth jsonb,
    ADD CONSTRAINT gateway_routes_upstream_auth_check
        CHECK (upstream_auth IN ('none', 'api_key', 'headers', 'oauth2')),
    ADD CONSTRAINT gateway_routes_secret_check
        CHECK (upstream_auth = 'oauth2' OR (upstream_auth = 'none') = (upstream_secret_enc IS NULL)),
    ADD CONSTRAINT gateway_routes_oauth_check
        CHECK ((upstream_auth = 'oauth2') OR upstream_oauth IS NULL);

-- Sallyport's own client at an upstream authorization server, one per issuer: registered
-- dynamically (RFC 7591) once, or its client ID metadata document URL. The secret and the
-- registration access token (RFC 7592) are sealed, bound to the issuer.
CREATE TABLE upstream_clients (
    issuer                     text PRIMARY KEY,
    client_id                  text NOT NULL,
    -- 'metadata_document' (client_id is Sallyport's document URL) or 'dynamic' (RFC 7591)
    method                     text NOT NULL CHECK (method IN ('metadata_document', 'dynamic')),
    token_endpoint_auth_method text NOT NULL,
    client_secret_enc          bytea,
    registration_access_token_enc bytea,
    registration_client_uri    text,
    -- the authorization server's metadata (RFC 8414) as discovered, so a gateway refreshing a
    -- token needs no discovery round trip
    metadata                   jsonb NOT NULL,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL
);

-- A user's account at a route's upstream: the tokens (access, refresh) sealed together with
-- AES-256-GCM under keys.encryption_key, bound to (user, route). `generation` grows by one with
-- every refresh, so a gateway that waited for the row lock sees that another one refreshed.
CREATE TABLE upstream_connections (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    route        text NOT NULL,
    issuer       text NOT NULL,
    tokens_enc   bytea NOT NULL,
    has_refresh_token boolean NOT NULL,
    scope        text,
    expires_at   timestamptz,
    generation   bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, route)
);
CREATE INDEX upstream_connections_route_idx ON upstream_connections (route);

-- A Connect in progress, between the redirect to the upstream authorization server and its
-- callback: keyed by the SHA-256 of `state`, bound to the user and to the SHA-256 of their session
-- cookie; the PKCE verifier sealed. Taken (deleted) by the callback: single use, 10 minutes.
CREATE TABLE upstream_connects (
    state_hash    bytea PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_hash  bytea NOT NULL,
    route         text NOT NULL,
    issuer        text NOT NULL,
    verifier_enc  bytea NOT NULL,
    -- where to send the browser afterwards (a path under the issuer), if not the connections page
    return_to     text,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX upstream_connects_expires_idx ON upstream_connects (expires_at);
