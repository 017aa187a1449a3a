-- issue 19: a grant family gets a row of its own, and refresh_tokens keeps only what rotation needs.
--
-- Every rotation inserted a refresh token with 7 index entries and 3 foreign-key checks. The checks
-- on client_id and user_id take a FOR KEY SHARE lock on the client's and the user's row, which every
-- concurrent rotation of that client or user shares: Postgres turns the row's locker into a
-- MultiXact per new locker (32 members at 32 workers). Deletes and revocations by user or client
-- now find the families here; a family's tokens die with it (ON DELETE CASCADE), so refresh_tokens
-- needs only its primary key, the token hash and the grant id, and one key-share lock per rotation
-- on its own family's row. Rotation stays one statement: it re-checks revocation and the user.
CREATE TABLE grant_families (
    grant_id           uuid PRIMARY KEY,
    client_id          text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id            uuid REFERENCES users (id) ON DELETE CASCADE,
    -- the family's resources (every token of it has the same): consent revocation by resource
    resources          text[] NOT NULL,
    created_at         timestamptz NOT NULL,
    family_expires_at  timestamptz NOT NULL
);
CREATE INDEX grant_families_client_id_idx ON grant_families (client_id);
CREATE INDEX grant_families_user_id_idx ON grant_families (user_id);
CREATE INDEX grant_families_family_expires_at_idx ON grant_families (family_expires_at);

INSERT INTO grant_families (grant_id, client_id, user_id, resources, created_at, family_expires_at)
SELECT DISTINCT ON (grant_id) grant_id, client_id, user_id, resources, created_at, family_expires_at
  FROM refresh_tokens
 ORDER BY grant_id, created_at;

ALTER TABLE refresh_tokens
    DROP CONSTRAINT refresh_tokens_client_id_fkey,
    DROP CONSTRAINT refresh_tokens_user_id_fkey,
    -- parent_id stays as history; pruning removes whole families, so it never dangles within one
    DROP CONSTRAINT refresh_tokens_parent_id_fkey,
    ADD CONSTRAINT refresh_tokens_grant_id_fkey
        FOREIGN KEY (grant_id) REFERENCES grant_families (grant_id) ON DELETE CASCADE;
DROP INDEX refresh_tokens_client_id_idx, refresh_tokens_user_id_idx, refresh_tokens_parent_id_idx,
    refresh_tokens_family_expires_at_idx;
-- room on each page, so that marking a token used is a HOT update (no new index entries)
ALTER TABLE refresh_tokens SET (fillfactor = 80);
