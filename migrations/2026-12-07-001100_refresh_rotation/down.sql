DROP TRIGGER grant_families_delete_tokens ON grant_families;
DROP FUNCTION grant_families_delete_tokens();
DELETE FROM refresh_tokens t WHERE NOT EXISTS (SELECT 1 FROM grant_families f WHERE f.grant_id = t.grant_id);
ALTER TABLE refresh_tokens
    DROP CONSTRAINT refresh_tokens_pkey,
    ADD CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id),
    ADD CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash),
    ADD CONSTRAINT refresh_tokens_token_hash_check CHECK (octet_length(token_hash) = 32),
    ADD CONSTRAINT refresh_tokens_grant_id_fkey
        FOREIGN KEY (grant_id) REFERENCES grant_families (grant_id) ON DELETE CASCADE;
