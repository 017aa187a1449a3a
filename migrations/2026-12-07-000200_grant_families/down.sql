ALTER TABLE refresh_tokens RESET (fillfactor);
CREATE INDEX refresh_tokens_client_id_idx ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_parent_id_idx ON refresh_tokens (parent_id);
CREATE INDEX refresh_tokens_family_expires_at_idx ON refresh_tokens (family_expires_at);
UPDATE refresh_tokens t SET parent_id = NULL
 WHERE parent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM refresh_tokens p WHERE p.id = t.parent_id);
ALTER TABLE refresh_tokens
    DROP CONSTRAINT refresh_tokens_grant_id_fkey,
    ADD CONSTRAINT refresh_tokens_parent_id_fkey
        FOREIGN KEY (parent_id) REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    ADD CONSTRAINT refresh_tokens_client_id_fkey
        FOREIGN KEY (client_id) REFERENCES clients (client_id) ON DELETE CASCADE,
    ADD CONSTRAINT refresh_tokens_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
DROP TABLE grant_families;
