-- `sallyport-bench --start --after-migrate crates/bench/variants/refresh-tokens-before-19.sql`:
-- refresh_tokens as it was before migration 2026-12-07-000200_grant_families (7 indexes, the
-- primary key on id and a CHECK on the hash length; foreign keys to clients, users and itself;
-- fillfactor 100), to measure the rotation on the old schema with the same binaries. grant_families
-- stays (the code exchange writes it; rotation never reads it), and so does its delete trigger
-- (migration 2026-12-07-001100_refresh_rotation), which only runs when a family is deleted.
-- For the schema between the two (issue 19's first and second steps), use that migration's
-- down.sql instead.
ALTER TABLE refresh_tokens RESET (fillfactor);
CREATE INDEX refresh_tokens_client_id_idx ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_parent_id_idx ON refresh_tokens (parent_id);
CREATE INDEX refresh_tokens_family_expires_at_idx ON refresh_tokens (family_expires_at);
ALTER TABLE refresh_tokens
    DROP CONSTRAINT refresh_tokens_pkey,
    ADD CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id),
    ADD CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash),
    ADD CONSTRAINT refresh_tokens_token_hash_check CHECK (octet_length(token_hash) = 32),
    ADD CONSTRAINT refresh_tokens_parent_id_fkey
        FOREIGN KEY (parent_id) REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    ADD CONSTRAINT refresh_tokens_client_id_fkey
        FOREIGN KEY (client_id) REFERENCES clients (client_id) ON DELETE CASCADE,
    ADD CONSTRAINT refresh_tokens_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
