# drive.py N: seeds a family with a known refresh token, then refreshes it N times on one keep-alive connection
import base64, hashlib, http.client, json, os, subprocess, sys, time, urllib.parse, uuid
n = int(sys.argv[1])
tok = "sprt_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
h = hashlib.sha256(tok.encode()).hexdigest()
g = str(uuid.uuid4())
sql = f"""
INSERT INTO clients (client_id, source, token_endpoint_auth_method, redirect_uris, grant_types, response_types, scope)
VALUES ('bench-cli', 'admin', 'none', ARRAY['http://127.0.0.1/cb'], ARRAY['authorization_code','refresh_token'], ARRAY['code'], 'bench offline_access') ON CONFLICT DO NOTHING;
INSERT INTO users (id, username, password_hash) VALUES ('00000000-0000-0000-0000-000000000001', 'bench', 'x') ON CONFLICT DO NOTHING;
INSERT INTO grant_families (grant_id, client_id, user_id, resources, created_at, family_expires_at)
VALUES ('{g}', 'bench-cli', '00000000-0000-0000-0000-000000000001', ARRAY['http://127.0.0.1:17180/bench'], now(), now() + interval '30 days');
INSERT INTO refresh_tokens (id, token_hash, grant_id, client_id, user_id, scope, resources, auth_time, created_at, expires_at, family_expires_at)
VALUES (gen_random_uuid(), '\\x{h}', '{g}', 'bench-cli', '00000000-0000-0000-0000-000000000001', 'bench', ARRAY['http://127.0.0.1:17180/bench'], now(), now(), now() + interval '1 day', now() + interval '30 days');
"""
subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "sallyport_callgrind", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True)
for _ in range(600):
    try:
        c = http.client.HTTPConnection("127.0.0.1", 17183, timeout=60); c.connect()
        c.request("GET", "/readyz"); r = c.getresponse(); r.read()
        if r.status == 200: break
    except OSError:
        pass
    time.sleep(0.2)
ok = 0
for i in range(n):
    body = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": tok, "client_id": "bench-cli"})
    c.request("POST", "/oauth2/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse(); data = r.read()
    if r.status != 200:
        print("error", r.status, data[:200]); break
    tok = json.loads(data)["refresh_token"]; ok += 1
print(ok)
