-- issue 16: users who sign in with an OpenID provider (or arrive through an ID-JAG) are linked
-- by (issuer, subject), never by email: an email changes hands, the provider's `sub` does not
-- (OpenID Connect Core §5.7). A user may have several links and a local password, or none.
CREATE TABLE federated_identities (
    issuer          text NOT NULL,
    subject         text NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- the configured provider (`login.providers[].id`) or trusted issuer it came through
    provider        text NOT NULL,
    email           text,
    email_verified  boolean NOT NULL DEFAULT false,
    display_name    text,
    created_at      timestamptz NOT NULL,
    last_login_at   timestamptz NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX federated_identities_user_idx ON federated_identities (user_id);
