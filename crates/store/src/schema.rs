// @generated automatically by Diesel CLI.

diesel::table! {
    audit_events (id) {
        id -> Int8,
        occurred_at -> Timestamptz,
        kind -> Text,
        client_id -> Nullable<Text>,
        user_id -> Nullable<Uuid>,
        ip -> Nullable<Text>,
        detail -> Jsonb,
    }
}

diesel::table! {
    authorization_codes (code_hash) {
        code_hash -> Bytea,
        grant_id -> Uuid,
        client_id -> Text,
        user_id -> Uuid,
        redirect_uri -> Text,
        redirect_uri_sent -> Bool,
        code_challenge -> Text,
        resources -> Array<Nullable<Text>>,
        scope -> Text,
        auth_time -> Timestamptz,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    clients (client_id) {
        client_id -> Text,
        source -> Text,
        client_secret_hash -> Nullable<Bytea>,
        client_secret_expires_at -> Nullable<Timestamptz>,
        registration_token_hash -> Nullable<Bytea>,
        token_endpoint_auth_method -> Text,
        redirect_uris -> Array<Nullable<Text>>,
        grant_types -> Array<Nullable<Text>>,
        response_types -> Array<Nullable<Text>>,
        application_type -> Text,
        client_name -> Nullable<Text>,
        client_uri -> Nullable<Text>,
        logo_uri -> Nullable<Text>,
        tos_uri -> Nullable<Text>,
        policy_uri -> Nullable<Text>,
        contacts -> Array<Nullable<Text>>,
        scope -> Text,
        jwks_uri -> Nullable<Text>,
        jwks -> Nullable<Jsonb>,
        software_id -> Nullable<Text>,
        software_version -> Nullable<Text>,
        may_introspect -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    consents (user_id, client_id, resource) {
        user_id -> Uuid,
        client_id -> Text,
        resource -> Text,
        scopes -> Array<Nullable<Text>>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    federated_identities (issuer, subject) {
        issuer -> Text,
        subject -> Text,
        user_id -> Uuid,
        provider -> Text,
        email -> Nullable<Text>,
        email_verified -> Bool,
        display_name -> Nullable<Text>,
        created_at -> Timestamptz,
        last_login_at -> Timestamptz,
    }
}

diesel::table! {
    federated_logins (state_hash) {
        state_hash -> Bytea,
        provider -> Text,
        browser_hash -> Bytea,
        request -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    gateway_routes (prefix) {
        prefix -> Text,
        upstream -> Text,
        resource -> Nullable<Text>,
        scopes -> Array<Nullable<Text>>,
        auth -> Bool,
        mcp -> Bool,
        allowed_origins -> Array<Nullable<Text>>,
        upstream_auth -> Text,
        upstream_header_names -> Array<Nullable<Text>>,
        upstream_secret_enc -> Nullable<Bytea>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        upstream_oauth -> Nullable<Jsonb>,
    }
}

diesel::table! {
    grant_families (grant_id) {
        grant_id -> Uuid,
        client_id -> Text,
        user_id -> Nullable<Uuid>,
        resources -> Array<Nullable<Text>>,
        created_at -> Timestamptz,
        family_expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        user_disabled -> Bool,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        id -> Uuid,
        token_hash -> Bytea,
        grant_id -> Uuid,
        parent_id -> Nullable<Uuid>,
        client_id -> Text,
        user_id -> Nullable<Uuid>,
        scope -> Text,
        resources -> Array<Nullable<Text>>,
        auth_time -> Timestamptz,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        family_expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    resources (resource) {
        resource -> Text,
        name -> Text,
        scopes -> Array<Nullable<Text>>,
        documentation_url -> Nullable<Text>,
        created_at -> Timestamptz,
        accept_machine_tokens -> Bool,
    }
}

diesel::table! {
    revoked_access_tokens (jti) {
        jti -> Uuid,
        client_id -> Text,
        revoked_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    revoked_grants (grant_id) {
        grant_id -> Uuid,
        reason -> Text,
        revoked_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        session_hash -> Bytea,
        user_id -> Uuid,
        auth_time -> Timestamptz,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        private_key_enc -> Bytea,
        public_jwk -> Jsonb,
        created_at -> Timestamptz,
        activates_at -> Timestamptz,
        retires_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    tool_calls (id) {
        id -> Int8,
        occurred_at -> Timestamptz,
        subject -> Nullable<Text>,
        user_id -> Nullable<Uuid>,
        client_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        route -> Text,
        tool -> Text,
        allowed -> Bool,
        reason -> Nullable<Text>,
        upstream_status -> Nullable<Int2>,
        duration_ms -> Int4,
    }
}

diesel::table! {
    upstream_clients (issuer) {
        issuer -> Text,
        client_id -> Text,
        method -> Text,
        token_endpoint_auth_method -> Text,
        client_secret_enc -> Nullable<Bytea>,
        registration_access_token_enc -> Nullable<Bytea>,
        registration_client_uri -> Nullable<Text>,
        metadata -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    upstream_connections (user_id, route) {
        user_id -> Uuid,
        route -> Text,
        issuer -> Text,
        tokens_enc -> Bytea,
        has_refresh_token -> Bool,
        scope -> Nullable<Text>,
        expires_at -> Nullable<Timestamptz>,
        generation -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    upstream_connects (state_hash) {
        state_hash -> Bytea,
        user_id -> Uuid,
        session_hash -> Bytea,
        route -> Text,
        issuer -> Text,
        verifier_enc -> Bytea,
        return_to -> Nullable<Text>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        resource -> Nullable<Text>,
    }
}

diesel::table! {
    used_assertions (issuer, jti) {
        issuer -> Text,
        jti -> Text,
        client_id -> Text,
        used_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Text,
        password_hash -> Text,
        disabled -> Bool,
        failed_logins -> Int4,
        locked_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(authorization_codes -> clients (client_id));
diesel::joinable!(authorization_codes -> users (user_id));
diesel::joinable!(consents -> clients (client_id));
diesel::joinable!(consents -> users (user_id));
diesel::joinable!(federated_identities -> users (user_id));
diesel::joinable!(grant_families -> clients (client_id));
diesel::joinable!(grant_families -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(upstream_connections -> users (user_id));
diesel::joinable!(upstream_connects -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    audit_events,
    authorization_codes,
    clients,
    consents,
    federated_identities,
    federated_logins,
    gateway_routes,
    grant_families,
    refresh_tokens,
    resources,
    revoked_access_tokens,
    revoked_grants,
    sessions,
    signing_keys,
    tool_calls,
    upstream_clients,
    upstream_connections,
    upstream_connects,
    used_assertions,
    users,
);
