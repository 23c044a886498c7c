#!/usr/bin/env bash
# Snapshots in the default topology (issue 9): three nodes, each with its embedded nats-server,
# clustered over loopback, streams (max_entries 64) and the snapshot bucket with 3 replicas. Node 3
# is stopped while nodes 1 and 2 write far more than the streams keep; its own nats-server goes with it, so
# the cluster runs on two servers meanwhile. Restarted, node 3 finds its position older than the
# stream's first message, restores the newest snapshot (saved by node 1 or 2 in the object store
# replicated across the servers) and ends identical.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  CLUSTER_PORT[$n]=$(free_port_pair)
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
scan_max_changes = 4
[replication_log]
replicas = 3
max_entries = 64
[snapshot]
interval = 2000
[snapshot.nats]
replicas = 3
TOML
done
start_node() { start_cluster_node "$1" "$WORK/node$1.toml" 3; }
node_running() { grep -q "node $1 running" "$WORK/node$1.log"; }
insert() {  # insert NODE FIRST COUNT
  sql "$WORK/node$1.db" "WITH RECURSIVE i(x) AS (SELECT $2 UNION ALL SELECT x + 1 FROM i WHERE x < $2 + $3 - 1)
    INSERT INTO items SELECT x, 'from node $1' FROM i;"
}
saved_since() {  # saved_since N: nodes 1 and 2 logged more than N saved snapshots
  [ "$(cat "$WORK"/node[12].log | grep -c "saved snapshot")" -gt "$1" ]
}
for n in 1 2 3; do start_node "$n"; done
for n in 1 2 3; do wait_for 120 "node $n to start" node_running "$n"; done
insert 1 1 10
seen_within 60 "$WORK/node3.db" "SELECT count(*) FROM items" 10 || fail "first rows not on node 3"

stop_pid "${NODE_PID[3]}"
# Losing a server moves stream leaders and the consumers that lived there; until nodes 1 and 2
# read each other again, whatever the streams discard is lost to them too. One round trip each
# way shows both consumers are back before the writes that overflow the streams.
insert 1 100 1
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM items WHERE id = 100" 1 || fail "node 2 stopped reading after node 3 left"
insert 2 200 1
seen_within 60 "$WORK/node1.db" "SELECT count(*) FROM items WHERE id = 200" 1 || fail "node 1 stopped reading after node 3 left"
# 120 messages of 4 rows (the streams keep 64), paced so that nodes 1 and 2 keep up even on a
# loaded machine: a burst of more messages than a stream keeps can outrun every consumer, and
# then nobody has a complete copy to save (docs/SNAPSHOTS.md).
for i in $(seq 0 79); do insert 1 $((1000 + 4 * i)) 4; sleep 0.03; done
for i in $(seq 0 39); do insert 2 $((2000 + 4 * i)) 4; sleep 0.03; done
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM items" 492 || fail "node 2 did not get node 1's rows"
seen_within 60 "$WORK/node1.db" "SELECT count(*) FROM items" 492 || fail "node 1 did not get node 2's rows"
before=$(cat "$WORK"/node[12].log | grep -c "saved snapshot" || true)
wait_for 60 "a snapshot saved after the writes" saved_since "$before"
mv "$WORK/node3.log" "$WORK/node3.1.log"
start_node 3
wait_for 120 "node 3 to restore a snapshot" grep -q "restored snapshot" "$WORK/node3.log"
wait_for 120 "node 3 to end identical" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"
insert 3 3000 5
wait_for 60 "node 3's new rows on node 1" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"
[ "$(sql "$WORK/node1.db" "SELECT count(*) FROM items")" = 497 ] || fail "node 1 has $(sql "$WORK/node1.db" "SELECT count(*) FROM items") rows"
[ "$(sql "$WORK/node3.db" "SELECT count(*) FROM __marmot__gaps")" = 0 ] || fail "node 3 still records gaps"
pass "a node of an embedded 3-server cluster heals from a snapshot in the replicated object store"
