#!/usr/bin/env bash
# Fault suite, a stalled node (issue 10): three nodes on one external nats-server, streams of
# max_entries 64, snapshots every 2 s in the NATS object store. Node 3's marmot is frozen with
# SIGSTOP while nodes 1 and 2 write far more messages than the stream keeps (20 KB rows, 10 MB in
# all, more than the socket buffers hold for the frozen process), and its application keeps
# writing too (captured, waiting in its change log). Resumed with SIGCONT, node 3 either still
# got every message (buffered before the stream discarded them) or finds that the stream
# discarded messages it never read, records the gap and restores a snapshot saved after them.
# Either way it publishes its own writes and every node ends identical with every row; verify
# agrees.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
setup_nats
for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
scan_max_changes = 4
cleanup_interval = 1000
[nats]
urls = ["$NATS_URL"]
[replication_log]
max_entries = 64
[snapshot]
interval = 2000
TOML
  start_marmot "$n" "$WORK/node$n.toml"
done
insert() {  # insert NODE FIRST COUNT
  sql "$WORK/node$1.db" "WITH RECURSIVE i(x) AS (SELECT $2 UNION ALL SELECT x + 1 FROM i WHERE x < $2 + $3 - 1)
    INSERT INTO items SELECT x, 'from node $1 ' || hex(zeroblob(${PAD:-0})) FROM i;"
}
insert 1 1 10
seen_within 30 "$WORK/node3.db" "SELECT count(*) FROM items" 10 || fail "first rows not on node 3"

kill -STOP "${NODE_PID[3]}"
# 120 messages of 4 rows, paced so that nodes 1 and 2 keep up (docs/SNAPSHOTS.md).
for i in $(seq 0 59); do PAD=10000 insert 1 $((1000 + 4 * i)) 4; PAD=10000 insert 2 $((2000 + 4 * i)) 4; sleep 0.03; done
insert 3 3000 7  # node 3's application writes while its marmot is frozen
sql "$WORK/node3.db" "UPDATE items SET v = 'node 3 while frozen' WHERE id = 5"
seen_within 60 "$WORK/node1.db" "SELECT count(*) FROM items" 490 || fail "node 1 did not get node 2's rows"
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM items" 490 || fail "node 2 did not get node 1's rows"
before=$(cat "$WORK"/node[12].log | grep -c "saved snapshot" || true)
saved_since() { [ "$(cat "$WORK"/node[12].log | grep -c "saved snapshot")" -gt "$1" ]; }
wait_for 60 "a snapshot saved after the writes" saved_since "$before"
[ "$(stream_last marmot-changes-c-1)" -gt 100 ] || fail "the stream did not move past what it keeps"

kill -CONT "${NODE_PID[3]}"
wait_for 180 "every node identical" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"
if grep -q "will not be applied on this node" "$WORK/node3.log"; then
  grep -q "restored snapshot" "$WORK/node3.log" || fail "node 3 recorded a gap but restored no snapshot"
  echo "node 3 missed messages and healed from a snapshot"
else
  echo "node 3 got every message (buffered while it was frozen)"
fi
[ "$(sql "$WORK/node1.db" "SELECT count(*) FROM items")" = 497 ] || fail "node 1 has $(sql "$WORK/node1.db" "SELECT count(*) FROM items") rows, not 497"
[ "$(sql "$WORK/node1.db" "SELECT v FROM items WHERE id = 5")" = "node 3 while frozen" ] || fail "node 3's update was lost"
[ "$(sql "$WORK/node3.db" "SELECT count(*) FROM __marmot__gaps")" = 0 ] || fail "node 3 still records gaps"
verify_agrees "$WORK/node1.toml" 3
for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
pass "a node frozen while the stream moved past what it keeps ends identical and keeps its own writes"
