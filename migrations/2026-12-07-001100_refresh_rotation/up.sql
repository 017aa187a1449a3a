-- issue 19: what a rotation writes and checks, cut to what it needs.
--
-- Counted with callgrind in a single-user backend and pg_waldump (BENCHMARKS.md, "Issue 19: where a
-- rotation's time goes"), each rotation paid for three things no rule needs on that path:
--
-- * the CHECK (octet_length(token_hash) = 32): Postgres re-reads a CHECK's expression from its
--   stored text and plans it on every execution, for the UPDATE and again for the INSERT (~8 % of
--   the rotation's instructions). The store refuses any other length at its edge instead
--   (`store::refresh_tokens`), and both writers hash with SHA-256.
-- * a primary key on `id` besides the unique `token_hash`: nothing looks a token up by `id` (it is
--   kept as the parent link's history), so `token_hash` becomes the key: two index entries per
--   token instead of three.
-- * the foreign key to grant_families: its check runs a query per insert and takes a KEY SHARE lock
--   on the family's row, which writes a WAL record and dirties a page of a second table on every
--   rotation. What it was there for, a family's tokens dying with it (pruning, a deleted client or
--   user), is the trigger below.
ALTER TABLE refresh_tokens
    DROP CONSTRAINT refresh_tokens_grant_id_fkey,
    DROP CONSTRAINT refresh_tokens_pkey,
    DROP CONSTRAINT refresh_tokens_token_hash_key,
    DROP CONSTRAINT refresh_tokens_token_hash_check,
    ADD CONSTRAINT refresh_tokens_pkey PRIMARY KEY (token_hash);

-- A deleted family takes its tokens with it. The DELETE repeats until it finds nothing: a rotation
-- in flight holds the row lock of the token it rotates, so the first DELETE waits for it and then
-- deletes that token, but not the successor the rotation inserted (it is not in the statement's
-- snapshot); the next DELETE, with a new snapshot (READ COMMITTED), sees it. When one finds nothing,
-- every committed token of the family is deleted by this transaction, and a rotation that starts
-- later blocks on that delete and then finds no token to rotate. A foreign key closed the same race
-- by locking the family's row on every insert, which is the cost this migration removes.
CREATE FUNCTION grant_families_delete_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    LOOP
        DELETE FROM refresh_tokens WHERE grant_id = OLD.grant_id;
        EXIT WHEN NOT FOUND;
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER grant_families_delete_tokens AFTER DELETE ON grant_families
    FOR EACH ROW EXECUTE FUNCTION grant_families_delete_tokens();
