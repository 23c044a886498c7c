#!/usr/bin/env bash
# A node that joins through -leaf-servers (an edge node connecting to a hub as a NATS leaf) instead
# of being a cluster member: two clustered hub nodes and one leaf node replicate in both
# directions; the leaf uses the hub's JetStream (docs/CLUSTER.md). Then the hub node the leaf is
# connected to stops while node 2 and the leaf write: the leaf's change waits, and once that hub
# node is back every node has every row.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);" >/dev/null
  CLUSTER_PORT[$n]=$(free_port_pair)
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
[replication_log]
replicas = 1
[snapshot]
enabled = false
TOML
done
hub() {  # hub N OTHER: a cluster member with OTHER as its route peer
  start_bg "node$1" "$MARMOT" -config "$WORK/node$1.toml" -cluster-addr "127.0.0.1:${CLUSTER_PORT[$1]}" \
    -cluster-peers "nats://127.0.0.1:${CLUSTER_PORT[$2]}/"
  NODE_PID[$1]=$LAST_PID
}
hub 1 2
hub 2 1
# The leaf connects to node 1's leaf-node listener (its cluster port + 1).
start_bg node3 "$MARMOT" -config "$WORK/node3.toml" -leaf-servers "nats://127.0.0.1:$((CLUSTER_PORT[1] + 1))/"
NODE_PID[3]=$LAST_PID
for n in 1 2 3; do wait_for 90 "node $n to start" grep -q "node $n running" "$WORK/node$n.log"; done

sql "$WORK/node1.db" "INSERT INTO notes VALUES (1, 'from the hub')"
sql "$WORK/node3.db" "INSERT INTO notes VALUES (3, 'from the leaf')"
for n in 1 2 3; do
  seen_within 15 "$WORK/node$n.db" "SELECT count(*) FROM notes" 2 || fail "node $n lacks a row after 15 s"
done
same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db" || fail "databases differ"
[ -e "$WORK/nats/marmot-node-3/jetstream" ] && fail "the leaf keeps a JetStream store of its own"

stop_pid "${NODE_PID[1]}"
sql "$WORK/node2.db" "INSERT INTO notes VALUES (20, 'from the hub while node 1 is away')"
sql "$WORK/node3.db" "INSERT INTO notes VALUES (30, 'from the leaf while its hub node is away')"
sleep 3
[ "$(sql "$WORK/node3.db" "SELECT count(*) FROM __marmot__change_log")" -gt 0 ] ||
  fail "the leaf's change left its change log while it had no JetStream to go to"
hub 1 2
for n in 1 2 3; do
  seen_within 60 "$WORK/node$n.db" "SELECT count(*) FROM notes" 4 ||
    fail "node $n has $(sql "$WORK/node$n.db" "SELECT count(*) FROM notes") of 4 rows after node 1 came back"
done
same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db" || fail "databases differ after node 1 came back"
for n in 3 2 1; do stop_pid "${NODE_PID[$n]}"; done
pass "leaf: a -leaf-servers node and two hub nodes replicate both ways, also after the leaf's hub node was away"
