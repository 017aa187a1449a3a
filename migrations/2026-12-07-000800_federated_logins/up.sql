-- issue 16: a sign-in with an OpenID provider in progress, between the button and the provider's
-- callback. Keyed by the SHA-256 of `state`; bound to the browser by the SHA-256 of its pre-login
-- cookie. The PKCE verifier and the nonce are derived from that cookie and `state`, so no secret
-- is stored here. Taken (deleted) by the callback: single use.
CREATE TABLE federated_logins (
    state_hash    bytea PRIMARY KEY,
    provider      text NOT NULL,
    browser_hash  bytea NOT NULL,
    -- the pending authorization request (its form-encoded parameters), validated again on return
    request       text NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX federated_logins_expires_idx ON federated_logins (expires_at);
