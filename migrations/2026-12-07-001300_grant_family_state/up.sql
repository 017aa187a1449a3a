-- issue 19: a grant family's row carries what every rotation re-checks.
--
-- A rotation refused a token of a revoked family (NOT EXISTS on revoked_grants) and of a disabled
-- user (a probe of users), two index probes of two more relations in every rotation (~25,000
-- Postgres instructions each, BENCHMARKS.md "Issue 19: family row"). Both facts now sit on the
-- family's row, which the rotation reads by its primary key instead: one probe.
--
-- The writes that change them keep them (crates/store):
-- * revoked_at: every revocation that records the family in revoked_grants sets it in the same
--   statement (refresh reuse, code replay and RFC 7009 in `revocations::revoke_grant`; a password
--   change, a disable or a lockout in `users::end_sessions_and_grants`; a withdrawn consent in
--   `consents::revoke_with_tokens`). A revocation that names the grant of an authorization code
--   not exchanged yet inserts the family's row, revoked, so that an exchange in flight either
--   waits for it (the unique key) and finds its family revoked, or is waited for and revoked.
--   revoked_grants stays: access tokens (JWTs naming the family) are checked there, and a revoked
--   family's row can be pruned before its access tokens expire.
-- * user_disabled: `users::set_disabled` sets or clears it on the user's families after the
--   user's row; a family inserted meanwhile reads the user's flag under a share lock.
ALTER TABLE grant_families
    ADD COLUMN revoked_at timestamptz,
    ADD COLUMN user_disabled boolean NOT NULL DEFAULT false;

UPDATE grant_families f SET revoked_at = g.revoked_at FROM revoked_grants g WHERE g.grant_id = f.grant_id;
UPDATE grant_families f SET user_disabled = true FROM users u WHERE u.id = f.user_id AND u.disabled;
