#!/usr/bin/env bash
# Schemas that differ are reported, not silently lived with (issue 12, docs/SCHEMA.md). Node 2's
# table has a UNIQUE index that node 1's lacks, both set before the first start, so no schema
# change explains it: an INSERT OR REPLACE there would delete rows that node 1 keeps. Within a few
# heartbeats both nodes log the difference naming the table, node 2's /health lists it as a
# warning and `marmot_schema_differences` counts it, and `marmot verify` (rows equal) exits 1 with
# "DIFFER (definition)". Node 2 then drops the index while running: the drop replicates (nothing to
# drop on node 1), the nodes agree again and verify exits 0.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats

HTTP_PORT=$(free_port)
for n in 1 2; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT);" >/dev/null
  write_node_config "$n"
done
sql "$WORK/node2.db" "CREATE UNIQUE INDEX t_email ON t(email);"
printf '[prometheus]\nenable = true\nbind = "127.0.0.1:%s"\n' "$HTTP_PORT" >>"$WORK/node2.toml"
start_marmot 1 "$WORK/node1.toml"
start_marmot 2 "$WORK/node2.toml"

sql "$WORK/node1.db" "INSERT INTO t VALUES (1, 'a@example.com');"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM t" 1 || fail "the row did not replicate"

for n in 1 2; do
  wait_for 40 "node $n to report the table whose definition differs" \
    grep -q 'schema: the definition of table "t" (or of its indexes or triggers) differs from node' "$WORK/node$n.log"
done
health=$(curl -s "http://127.0.0.1:$HTTP_PORT/health")
grep -q 'schema: the definition of table \\"t\\"' <<<"$health" || fail "/health does not warn: $health"
metrics=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics")
grep -q "^marmot_schema_differences 1$" <<<"$metrics" || fail "metrics: $(grep schema <<<"$metrics")"

rc=0
"$MARMOT" verify -config "$WORK/node1.toml" -nodes 2 -wait 30 >"$WORK/verify1.txt" 2>&1 || rc=$?
cat "$WORK/verify1.txt"
[ "$rc" = 1 ] || fail "verify exited $rc, want 1 (definitions differ)"
grep -q "DIFFER (definition)" "$WORK/verify1.txt" || fail "verify does not name the definition"

# Node 2 drops its index: a schema change that reaches node 1 (which has no such index).
sql "$WORK/node2.db" "DROP INDEX t_email;"
wait_for 40 "node 2 to see the schemas agree" grep -q 'schema: t agrees again' "$WORK/node2.log"
metrics=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics")
grep -q "^marmot_schema_differences 0$" <<<"$metrics" || fail "metrics after the fix: $(grep schema <<<"$metrics")"
"$MARMOT" verify -config "$WORK/node1.toml" -nodes 2 -wait 30 >"$WORK/verify2.txt" 2>&1 ||
  fail "verify after the fix: $(cat "$WORK/verify2.txt")"
for n in 1 2; do
  [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] || fail "node $n dead-lettered"
  stop_pid "${NODE_PID[$n]}"
done
pass "a schema that differs from another node's is reported (log, /health, metric, verify) until it agrees"
