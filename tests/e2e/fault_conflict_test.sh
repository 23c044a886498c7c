#!/usr/bin/env bash
# Fault suite, conflict torture (issue 10): three nodes with embedded, clustered nats-servers.
# On every node two real clients write at once for FAULT_SECONDS (default 20): Python's sqlite3
# module and the sqlite3 CLI, on the same 40 keys of three tables as every other node: inserts,
# updates, deletes, primary-key changes, every value type, and rows that take each other's value of
# a UNIQUE column (REPLACE removes the row that held it). After the writers stop, `marmot verify`
# must agree within 120 s, and the dumps of the three databases must be identical.
# With CONFLICT_LEAF=1 (fault_leaf_conflict_test.sh) node 3 joins only as a NATS leaf of node 1:
# two hub nodes (replicas 2) and a leaf that uses their JetStream must end just as identical.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL;
    CREATE TABLE items (id INTEGER PRIMARY KEY, v, n INTEGER);
    CREATE TABLE pairs (k TEXT, j INTEGER, v BLOB, PRIMARY KEY (k, j)) WITHOUT ROWID;
    CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INTEGER);" >/dev/null
  CLUSTER_PORT[$n]=$(free_port_pair)
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
cleanup_interval = 1000
[replication_log]
replicas = $([ "${CONFLICT_LEAF:-0}" = 1 ] && echo 2 || echo 3)
max_entries = 1000000
[snapshot]
enabled = false
TOML
done
if [ "${CONFLICT_LEAF:-0}" = 1 ]; then
  for n in 1 2; do start_cluster_node "$n" "$WORK/node$n.toml" 2; done
  start_bg node3 "$MARMOT" -config "$WORK/node3.toml" -leaf-servers "nats://127.0.0.1:$((CLUSTER_PORT[1] + 1))/"
  NODE_PID[3]=$LAST_PID
else
  for n in 1 2 3; do start_cluster_node "$n" "$WORK/node$n.toml" 3; done
fi
for n in 1 2 3; do wait_for 120 "node $n to start" grep -q "node $n running" "$WORK/node$n.log"; done

writers=()
for n in 1 2 3; do
  /usr/bin/python3 "$WRITER" conflict "$WORK/node$n.db" "$FAULT_SECS" "$((n * 7919 + RANDOM))" 2>>"$WORK/writer$n.log" &
  writers+=($!)
  PIDS+=($!)
  /usr/bin/python3 "$WRITER" conflict-sql "$FAULT_SECS" "$((n * 104729 + RANDOM))" |
    sqlite3 -bail -cmd ".timeout 30000" "$WORK/node$n.db" >>"$WORK/cli$n.log" 2>&1 &
  writers+=($!)
  PIDS+=($!)
done
for pid in "${writers[@]}"; do wait "$pid" || fail "a writer failed (see writer*.log, cli*.log)"; done
echo "writers done: items $(sql "$WORK/node1.db" "SELECT count(*) FROM items") rows on node 1"

verify_agrees "$WORK/node1.toml" 3
same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db" || fail "verify agreed but the dumps differ"
expect_clean "$WORK"/node[123].db
for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
[ "${CONFLICT_LEAF:-0}" = 1 ] && [ -e "$WORK/nats/marmot-node-3/jetstream" ] && fail "the leaf kept a JetStream store of its own"
pass "${CONFLICT_LEAF:+(node 3 a leaf) }three nodes with two concurrent clients each on the same keys for ${FAULT_SECS}s end identical, and verify says so"
