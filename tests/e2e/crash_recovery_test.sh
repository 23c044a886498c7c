#!/usr/bin/env bash
# A node killed between JetStream's ack and persisting it (issue: "a crash between ack and
# persisting it diverges the cluster"). Three nodes, R3 streams, cleanup_interval 60 s (so the
# confirmation is not persisted yet): node 1 inserts 100 rows; once they are everywhere, node 1 is
# SIGKILLed; node 2 updates all 100 rows; node 1 restarts. Before the fix node 1 kept its old
# values for good: it took its re-read change-log entries for unpublished local writes, skipped
# node 2's update as superseded, and its republish was dropped as a duplicate.
# Now: node 1 reads its own messages back from the stream, finds the entries published, applies
# node 2's update, ends identical, and publishes nothing a second time (the stream does not grow).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  CLUSTER_PORT[$n]=$(free_port_pair)
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
cleanup_interval = 60000
[replication_log]
replicas = 3
[snapshot]
enabled = false
TOML
done

start_node() { start_cluster_node "$1" "$WORK/node$1.toml" 3; }
for n in 1 2 3; do start_node "$n"; done
for n in 1 2 3; do wait_for 90 "node $n to start" grep -q "node $n running" "$WORK/node$n.log"; done
url2=$(grep -oE "connected to NATS at nats://[0-9.]+:[0-9]+" "$WORK/node2.log" | head -1 | grep -oE "nats://.*")

sql "$WORK/node1.db" "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 100)
  INSERT INTO items SELECT x, 'from node 1' FROM i;"
for n in 2 3; do
  seen_within 30 "$WORK/node$n.db" "SELECT count(*) FROM items WHERE v = 'from node 1'" 100 || fail "rows not on node $n"
done
# The confirmation is in memory only (cleanup_interval 60 s): nothing persisted yet.
[ "$(sql "$WORK/node1.db" "SELECT ifnull((SELECT value FROM __marmot__state WHERE name = 'reader_confirmed_seq'), 0)")" = 0 ] ||
  fail "the confirmation was persisted already; the test would not cover the crash window"
kill -KILL "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null || true

sql "$WORK/node2.db" "UPDATE items SET v = 'updated on node 2';"
seen_within 60 "$WORK/node3.db" "SELECT count(*) FROM items WHERE v = 'updated on node 2'" 100 || fail "update not on node 3"
sleep 1
before=$(stream_last marmot-changes-c-1 "$url2")

mv "$WORK/node1.log" "$WORK/node1.first.log"
start_node 1
wait_for 90 "node 1 to restart" grep -q "node 1 running" "$WORK/node1.log"
seen_within 60 "$WORK/node1.db" "SELECT count(*) FROM items WHERE v = 'updated on node 2'" 100 ||
  fail "node 1 kept its old values: $(sql "$WORK/node1.db" "SELECT v, count(*) FROM items GROUP BY v")"
wait_for 30 "the three databases to be identical" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"
grep -q "recovered the publish state" "$WORK/node1.log" || fail "node 1 did not say what it recovered"
sleep 2
after=$(stream_last marmot-changes-c-1 "$url2")
[ "$after" = "$before" ] || fail "node 1 published again after the restart (stream $before -> $after messages)"
[ "$(sql "$WORK/node1.db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] || fail "dead letters on node 1"
same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db" || fail "nodes differ at the end"

pass "a node killed between ack and persisting it recovers its publish state from the stream and converges"
