-- Sallyport: one schema for every service.
-- Every secret a client or user presents is stored only as its SHA-256 hash (bytea, 32 bytes).

CREATE TABLE clients (
    client_id                  text PRIMARY KEY,
    -- 'dynamic' (RFC 7591), 'admin' (the CLI), 'metadata_document' (a client ID metadata document, cached)
    source                     text NOT NULL CHECK (source IN ('dynamic', 'admin', 'metadata_document')),
    client_secret_hash         bytea CHECK (octet_length(client_secret_hash) = 32),
    client_secret_expires_at   timestamptz,
    registration_token_hash    bytea UNIQUE CHECK (octet_length(registration_token_hash) = 32),
    token_endpoint_auth_method text NOT NULL
        CHECK (token_endpoint_auth_method IN ('none', 'client_secret_basic', 'client_secret_post')),
    redirect_uris              text[] NOT NULL DEFAULT '{}',
    grant_types                text[] NOT NULL,
    response_types             text[] NOT NULL,
    application_type           text NOT NULL DEFAULT 'web' CHECK (application_type IN ('web', 'native')),
    client_name                text,
    client_uri                 text,
    logo_uri                   text,
    tos_uri                    text,
    policy_uri                 text,
    contacts                   text[] NOT NULL DEFAULT '{}',
    scope                      text NOT NULL,
    jwks_uri                   text,
    jwks                       jsonb,
    software_id                text,
    software_version           text,
    -- may call RFC 7662 introspection (resource servers; set by an operator, never by registration)
    may_introspect             boolean NOT NULL DEFAULT false,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    -- a confidential client has a secret, a public one none
    CHECK ((token_endpoint_auth_method = 'none') = (client_secret_hash IS NULL))
);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    username       text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    disabled       boolean NOT NULL DEFAULT false,
    failed_logins  integer NOT NULL DEFAULT 0,
    locked_until   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    id            uuid PRIMARY KEY,
    session_hash  bytea NOT NULL UNIQUE CHECK (octet_length(session_hash) = 32),
    -- a user's sessions die with the user
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time     timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Remembered grants: (user, client, resource) -> the scopes the user allowed.
CREATE TABLE consents (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id   text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    resource    text NOT NULL,
    scopes      text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, client_id, resource)
);
CREATE INDEX consents_client_id_idx ON consents (client_id);

CREATE TABLE authorization_codes (
    code_hash       bytea PRIMARY KEY CHECK (octet_length(code_hash) = 32),
    -- the grant family every token issued from this code belongs to
    grant_id        uuid NOT NULL UNIQUE,
    client_id       text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri    text NOT NULL,
    -- RFC 6749 §4.1.3: the token request must repeat redirect_uri when the authorization request had it
    redirect_uri_sent boolean NOT NULL,
    code_challenge  text NOT NULL,
    resources       text[] NOT NULL,
    scope           text NOT NULL,
    auth_time       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX authorization_codes_client_id_idx ON authorization_codes (client_id);
CREATE INDEX authorization_codes_user_id_idx ON authorization_codes (user_id);
CREATE INDEX authorization_codes_expires_at_idx ON authorization_codes (expires_at);

CREATE TABLE refresh_tokens (
    id                 uuid PRIMARY KEY,
    token_hash         bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    grant_id           uuid NOT NULL,
    -- the token this one was rotated from; history may be pruned from the oldest end
    parent_id          uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    client_id          text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id            uuid REFERENCES users (id) ON DELETE CASCADE,
    scope              text NOT NULL,
    resources          text[] NOT NULL,
    auth_time          timestamptz NOT NULL,
    created_at         timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    family_expires_at  timestamptz NOT NULL,
    used_at            timestamptz,
    revoked_at         timestamptz
);
CREATE INDEX refresh_tokens_grant_id_idx ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_client_id_idx ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_parent_id_idx ON refresh_tokens (parent_id);
CREATE INDEX refresh_tokens_family_expires_at_idx ON refresh_tokens (family_expires_at);

-- Access tokens are JWTs and are never stored. Revocation is recorded, not issuance:
-- a revoked grant family kills every access token carrying its grant id,
-- a revoked jti kills one token. Rows may be pruned once expires_at has passed.
CREATE TABLE revoked_grants (
    grant_id    uuid PRIMARY KEY,
    reason      text NOT NULL,
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX revoked_grants_expires_at_idx ON revoked_grants (expires_at);

CREATE TABLE revoked_access_tokens (
    jti         uuid PRIMARY KEY,
    client_id   text NOT NULL,
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_at_idx ON revoked_access_tokens (expires_at);

CREATE TABLE signing_keys (
    kid               text PRIMARY KEY,
    alg               text NOT NULL CHECK (alg IN ('ES256', 'EdDSA', 'RS256')),
    -- PKCS#8 private key sealed with AES-256-GCM under the configured key-encryption key: nonce || ciphertext
    private_key_enc   bytea NOT NULL,
    public_jwk        jsonb NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- published from created_at; signs from activates_at until retires_at; unpublished after expires_at
    activates_at      timestamptz NOT NULL,
    retires_at        timestamptz,
    expires_at        timestamptz
);

CREATE TABLE resources (
    resource           text PRIMARY KEY,
    name               text NOT NULL,
    scopes             text[] NOT NULL DEFAULT '{}',
    documentation_url  text,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- Audit events outlive what they describe: no foreign keys.
CREATE TABLE audit_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL,
    client_id    text,
    user_id      uuid,
    ip           text,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);
CREATE INDEX audit_events_client_id_idx ON audit_events (client_id);
