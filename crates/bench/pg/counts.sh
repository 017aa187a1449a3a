#!/bin/bash
# Deterministic per-rotation costs of Postgres (issue 19; BENCHMARKS.md, "Issue 19: where a
# rotation's time goes"). Run on a PRIVATE cluster (initdb of your own, started with pg_ctl, with
# autovacuum = off: pg_stat_wal counts the whole cluster, and a vacuum would count in). The
# instruction count stops it and runs a single-user backend under valgrind on its data directory.
#
#   counts.sh DATADIR PORT DB STATEMENT [CHAIN_A CHAIN_B CHAIN_W]
#
# DB: migrated and seeded with seed.sql (chains unused so far; for issue 19's family row, 20,000 chains,
# then seed-others.sql and ANALYZE, so that every probe is an index probe as on a database in use);
# STATEMENT: rotate.sql (this tree's statement with the caller's values inlined, $1 the presented
# hash, $2 the new one), rotate-before-001300.sql (the statement before migration
# 2026-12-07-001300, on a database without it) or rotate-before-001100.sql (the statement before
# migration 2026-12-07-001100). Prints WAL records and
# bytes per rotation (2,000 rotations of chain CHAIN_W after 500 unmeasured, through pgbench) and
# instructions per rotation (1,200 EXECUTEs of chain CHAIN_B minus 200 of chain CHAIN_A in a
# single-user backend under callgrind; the difference leaves out start-up and shutdown).
set -euo pipefail
data=$1; port=$2; db=$3; stmt=$(tr '\n' ' ' < "$4"); a=${5:-2}; b=${6:-3}; w=${7:-1}
bin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
q() { psql -h 127.0.0.1 -p "$port" -U postgres -At -d "$db" -c "$1"; }
tmp=$(mktemp -d); chmod 777 "$tmp"  # the single-user backend runs as postgres
# pgbench: the chain's hashes computed in SQL, one rotation per transaction
{ echo '\set next :cur + 1'
  echo "$stmt;" | sed "s/\\\$1/sha256(('chain$w:' || :cur)::bytea)/; s/\\\$2/sha256(('chain$w:' || :next)::bytea)/"
  echo '\set cur :next'; } > "$tmp/rotate.pgbench"
q "CHECKPOINT" >/dev/null  # the same start for every run: full-page images come from the warm-up
pgbench -h 127.0.0.1 -p "$port" -U postgres -n -M prepared -c 1 -t 500 -D cur=0 -f "$tmp/rotate.pgbench" "$db" >/dev/null
q "SELECT pg_stat_reset_shared('wal')" >/dev/null
lsn0=$(q "SELECT pg_current_wal_lsn()")
pgbench -h 127.0.0.1 -p "$port" -U postgres -n -M prepared -c 1 -t 2000 -D cur=500 -f "$tmp/rotate.pgbench" "$db" >/dev/null
q "SELECT format('WAL per rotation: %s records, %s bytes, %s full-page images', round(wal_records / 2000.0, 2), round(wal_bytes / 2000.0, 1), round(wal_fpi / 2000.0, 3)) FROM pg_stat_wal"
echo "pg_waldump -p $data/pg_wal -s $lsn0 -e $(q 'SELECT pg_current_wal_lsn()') --stats=record  # by record type"
# callgrind: a prepared rotation EXECUTEd n times in a single-user backend
as_pg "$bin/pg_ctl" -D "$data" -m fast stop >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$data" -o "-p $port -c listen_addresses=127.0.0.1" -l "$data/../counts.log" start >/dev/null' EXIT
for spec in "$a 200" "$b 1200"; do
  set -- $spec
  { echo "PREPARE rot(bytea, bytea) AS $stmt"
    for ((i = 0; i < $2; i++)); do echo "EXECUTE rot(sha256('chain$1:$i'::bytea), sha256('chain$1:$((i + 1))'::bytea))"; done
  } > "$tmp/single-$2.sql"
  as_pg valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$2" "$bin/postgres" --single -D "$data" "$db" \
    < "$tmp/single-$2.sql" > "$tmp/out-$2" 2> "$tmp/log-$2"
  [ "$(grep -c 'expires_at = ' "$tmp/out-$2")" = "$2" ] || { echo "not every rotation succeeded: $tmp/out-$2"; exit 1; }
done
ir() { grep '^summary:' "$tmp/cg.$1" | awk '{print $2}'; }
echo "instructions per rotation: $(( ($(ir 1200) - $(ir 200)) / 1000 )) (callgrind_annotate --inclusive=yes $tmp/cg.1200)"
