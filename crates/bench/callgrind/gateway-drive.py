# Drives the gateway of run.sh on one keep-alive connection, n requests, and prints how many were
# answered 200: `GET path` (default /open/item?x=1), or with `mcp` the bench's 497-byte tools/call
# (crates/bench/src/scenarios/mcp.rs, TOOL_CALL) POSTed to path with the Mcp-Method/Mcp-Name
# headers a 2026-07-28 client sends, counted only when the upstream's result came back.
import http.client, sys, time
n = int(sys.argv[1]); port = int(sys.argv[2]); path = sys.argv[3] if len(sys.argv) > 3 else "/open/item?x=1"
mcp = len(sys.argv) > 4 and sys.argv[4] == "mcp"
body = (b'{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_issues","arguments":'
        b'{"repository":"sallyport/sallyport","query":"gateway returns 502 when the upstream closes an SSE '
        b'stream early","state":"open","labels":["bug","gateway","mcp"],"assignee":null,"created_after":'
        b'"2026-11-01T00:00:00Z","fields":["number","title","state","labels","updated_at","html_url"],'
        b'"sort":"updated","order":"desc","per_page":20,"page":1},"_meta":{"progressToken":'
        b'"b3c1f0e2-7a4d-4e0c-9a51-2f6d8c1e4b7a"}}}')
assert len(body) == 497, len(body)
headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "search_issues"}
for _ in range(600):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60); c.connect(); break
    except OSError:
        time.sleep(0.1)
ok = 0
for i in range(n):
    if mcp:
        c.request("POST", path, body=body, headers=headers)
    else:
        c.request("GET", path)
    r = c.getresponse(); answer = r.read()
    ok += r.status == 200 and (not mcp or b'"result"' in answer)
print(ok)
