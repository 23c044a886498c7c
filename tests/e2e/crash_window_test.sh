#!/usr/bin/env bash
# The crash window of crash_recovery_test.sh once JetStream's duplicate window has passed: a node
# killed after its batches were acknowledged, but before it persisted that, restarts later than
# the window (2 minutes; here the stream is made with a 1-second window to stand in for a long
# downtime). Before the fix it published those batches again under the same ids, now no longer
# dropped: its old values landed after a later update from another node, and every node ended
# with the old values (the update was lost everywhere). Now it reads its messages back from the
# stream, publishes nothing again, and the update stays.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
wait_for 10 "nats-server" /usr/bin/python3 "$NATS_TOOL" create-stream "$NATS_URL" marmot-changes-c-1 marmot-change-log-1 --duplicate-window 1

for n in 1 2; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  write_node_config "$n" 'cleanup_interval = 60000'
done
start_node() { start_marmot "$1" "$WORK/node$1.toml"; }
start_node 1
start_node 2

sql "$WORK/node1.db" "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 100)
  INSERT INTO items SELECT x, 'from node 1' FROM i;"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM items WHERE v = 'from node 1'" 100 || fail "rows not on node 2"
# The confirmation is in memory only (cleanup_interval 60 s): the crash lands in the window.
[ "$(sql "$WORK/node1.db" "SELECT ifnull((SELECT value FROM __marmot__state WHERE name = 'reader_confirmed_seq'), 0)")" = 0 ] ||
  fail "the confirmation was persisted already; the test would not cover the crash window"
kill -KILL "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null || true
sql "$WORK/node2.db" "UPDATE items SET v = 'updated on node 2';"
sleep 3  # past the duplicate window
before=$(stream_last marmot-changes-c-1)

mv "$WORK/node1.log" "$WORK/node1.first.log"
start_node 1
sleep 3
for n in 1 2; do
  seen_within 30 "$WORK/node$n.db" "SELECT count(*) FROM items WHERE v = 'updated on node 2'" 100 ||
    fail "node $n lost node 2's update: $(sql "$WORK/node$n.db" "SELECT v, count(*) FROM items GROUP BY v")"
done
after=$(stream_last marmot-changes-c-1)
[ "$after" = "$before" ] || fail "node 1 published its old batches again ($before -> $after messages)"
grep -q "recovered the publish state: change-log entries 1\.\.100 were published" "$WORK/node1.log" ||
  fail "node 1 did not recover its publish state from the stream"
same_dbs "$WORK/node1.db" "$WORK/node2.db" || fail "nodes differ"

pass "a restart after the duplicate window publishes nothing twice and loses no later update"
