-- `psql -v chains=64 -f seed.sql` on a migrated database: one client, one user and 64 grant families,
-- each with one unused refresh token whose hash is sha256('chain<k>:0'), for the scripts beside it.
INSERT INTO clients (client_id, source, token_endpoint_auth_method, redirect_uris, grant_types, response_types, scope)
VALUES ('c1', 'admin', 'none', ARRAY['http://127.0.0.1/cb'], ARRAY['authorization_code','refresh_token'], ARRAY['code'], 'bench offline_access');
INSERT INTO users (id, username, password_hash) VALUES ('00000000-0000-0000-0000-000000000001', 'bench', 'x');
INSERT INTO grant_families (grant_id, client_id, user_id, resources, created_at, family_expires_at)
SELECT ('00000000-0000-0000-0001-' || lpad(k::text, 12, '0'))::uuid, 'c1', '00000000-0000-0000-0000-000000000001',
       ARRAY['http://127.0.0.1:9/bench'], now(), now() + interval '30 days'
  FROM generate_series(1, :chains) k;
INSERT INTO refresh_tokens (id, token_hash, grant_id, client_id, user_id, scope, resources, auth_time, created_at, expires_at, family_expires_at)
SELECT gen_random_uuid(), sha256(('chain' || k || ':0')::bytea), ('00000000-0000-0000-0001-' || lpad(k::text, 12, '0'))::uuid,
       'c1', '00000000-0000-0000-0000-000000000001', 'bench', ARRAY['http://127.0.0.1:9/bench'], now(), now(), now() + interval '1 day', now() + interval '30 days'
  FROM generate_series(1, :chains) k;
