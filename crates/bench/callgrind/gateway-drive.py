import http.client, sys, time
n = int(sys.argv[1]); port = int(sys.argv[2]); path = sys.argv[3] if len(sys.argv) > 3 else "/open/item?x=1"
for _ in range(600):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60); c.connect(); break
    except OSError:
        time.sleep(0.1)
ok = 0
for i in range(n):
    c.request("GET", path)
    r = c.getresponse(); r.read()
    ok += r.status == 200
print(ok)
