#!/bin/bash
# Instructions per request of a release service binary under callgrind (issue 19; BENCHMARKS.md,
# "Issue 19: instructions per refresh ... and per proxied request"):
#
#   createdb -h 127.0.0.1 -U postgres sallyport_callgrind
#   diesel migration run --database-url postgres://postgres@127.0.0.1:5432/sallyport_callgrind --migration-dir migrations
#   target/release/sallyport-bench upstream --listen 127.0.0.1:17189 &     # the gateway's upstream
#   crates/bench/callgrind/run.sh gateway target/release/sallyport-gateway
#   crates/bench/callgrind/run.sh token target/release/sallyport-token
#
# The MCP route (issue 15; BENCHMARKS.md, "Issue 15: MCP route instruction counts"): the bench's
# 497-byte tools/call through an `mcp = true` route with 10 name rules, and through `mcp = false`:
#
#   createdb -h 127.0.0.1 -U postgres sallyport_callgrind_mcp     # mcp.toml migrates it at start
#   target/release/sallyport-bench upstream --listen 127.0.0.1:17289 &
#   crates/bench/callgrind/run.sh mcp target/release/sallyport-gateway
#   crates/bench/callgrind/run.sh mcp-off target/release/sallyport-gateway
#
# One worker, one keep-alive client (Python http.client); two runs of different length and the
# difference of their totals over the difference of their requests, so start-up and shutdown
# cancel out. Ports below the ephemeral range: a fixed one above it can be taken by any client's
# outgoing connection on a busy machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
what=$1; bin=$2; out=${OUT:-$(mktemp -d)}
case $what in
  gateway) short=200; long=2200; drive() { python3 "$here/gateway-drive.py" "$1" 17180; } ;;
  token) short=200; long=1200; drive() { python3 "$here/token-drive.py" "$1"; } ;;
  mcp) short=200; long=2200; drive() { python3 "$here/gateway-drive.py" "$1" 17280 /mcp mcp; } ;;
  mcp-off) short=200; long=2200; drive() { python3 "$here/gateway-drive.py" "$1" 17280 /off mcp; } ;;
  *) echo "usage: run.sh gateway|token|mcp|mcp-off BINARY" >&2; exit 2 ;;
esac
config=$what; [ "$what" = mcp-off ] && config=mcp
for n in $short $long; do
  SALLYPORT_CONFIG="$here/$config.toml" valgrind --tool=callgrind --callgrind-out-file="$out/cg.$n" "$bin" > "$out/vg.$n.log" 2>&1 &
  pid=$!
  ok=$(drive "$n")
  kill -TERM "$pid"; wait "$pid" || true
  if grep -q "cannot listen" "$out/vg.$n.log" || [ "$ok" != "$n" ]; then echo "run of $n failed: $out/vg.$n.log" >&2; exit 1; fi
done
a=$(grep '^summary:' "$out/cg.$short" | awk '{print $2}'); b=$(grep '^summary:' "$out/cg.$long" | awk '{print $2}')
echo "$what: $(( (b - a) / (long - short) )) instructions per request (profiles in $out)"
