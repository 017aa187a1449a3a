-- issue 20: gateway routes added at run time (`sallyport route add`), beside `[[gateway.routes]]`
-- of the configuration, which win over a row with the same prefix. Every gateway reloads this
-- table every few seconds. The credential a route sends upstream (`upstream_auth`: an API key
-- header or a set of static headers) is sealed with AES-256-GCM under `keys.encryption_key`,
-- with the row's prefix as associated data, as signing keys are; only the header names are clear.
CREATE TABLE gateway_routes (
    prefix                 text PRIMARY KEY,
    upstream               text NOT NULL,
    resource               text,
    scopes                 text[] NOT NULL DEFAULT '{}',
    auth                   boolean NOT NULL DEFAULT true,
    mcp                    boolean NOT NULL DEFAULT false,
    allowed_origins        text[] NOT NULL DEFAULT '{}',
    upstream_auth          text NOT NULL DEFAULT 'none'
                           CHECK (upstream_auth IN ('none', 'api_key', 'headers')),
    upstream_header_names  text[] NOT NULL DEFAULT '{}',
    upstream_secret_enc    bytea,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    CHECK ((upstream_auth = 'none') = (upstream_secret_enc IS NULL))
);
