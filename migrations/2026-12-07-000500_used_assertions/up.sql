-- issue 16: the `jti` of every ID-JAG (RFC 7523 §3 item 7, draft-ietf-oauth-identity-assertion-authz-grant)
-- the token service accepted, so that an assertion is exchanged once, by whichever replica sees it
-- first. A row matters until the assertion expires (plus the tolerated clock skew); the token
-- service prunes older rows.
CREATE TABLE used_assertions (
    issuer      text NOT NULL,
    jti         text NOT NULL,
    client_id   text NOT NULL,
    used_at     timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX used_assertions_expires_idx ON used_assertions (expires_at);
