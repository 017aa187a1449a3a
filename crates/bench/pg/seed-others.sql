-- `psql -f seed-others.sql` after seed.sql, then ANALYZE: other users and revoked families beside the
-- chains, so that the planner probes users and revoked_grants by index as it does on a database in
-- use (on the bare seed, one user and no revocation, it scans them whole and hashes them).
INSERT INTO users (id, username, password_hash)
SELECT gen_random_uuid(), 'other' || k, 'x' FROM generate_series(1, 10000) k;
INSERT INTO revoked_grants (grant_id, reason, revoked_at, expires_at)
SELECT gen_random_uuid(), 'revoked', now(), now() + interval '30 days' FROM generate_series(1, 10000) k;
