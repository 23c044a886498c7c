#!/usr/bin/env bash
# Fault suite, conflict torture (issue 10): three nodes with embedded, clustered nats-servers.
# On every node two real clients write at once for FAULT_SECONDS (default 20): Python's sqlite3
# module and the sqlite3 CLI, on the same 40 keys of two tables as every other node: inserts,
# updates, deletes, primary-key changes, every value type. After the writers stop, `marmot verify`
# must agree within 120 s, and the dumps of the three databases must be identical.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SECS="${FAULT_SECONDS:-20}"
WRITER="$(dirname "${BASH_SOURCE[0]}")/torture_writer.py"
for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL;
    CREATE TABLE items (id INTEGER PRIMARY KEY, v, n INTEGER);
    CREATE TABLE pairs (k TEXT, j INTEGER, v BLOB, PRIMARY KEY (k, j)) WITHOUT ROWID;" >/dev/null
  CLUSTER_PORT[$n]=$(free_port_pair)
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
cleanup_interval = 1000
[replication_log]
replicas = 3
max_entries = 1000000
[snapshot]
enabled = false
TOML
done
for n in 1 2 3; do start_cluster_node "$n" "$WORK/node$n.toml" 3; done
for n in 1 2 3; do wait_for 120 "node $n to start" grep -q "node $n running" "$WORK/node$n.log"; done

writers=()
for n in 1 2 3; do
  /usr/bin/python3 "$WRITER" conflict "$WORK/node$n.db" "$SECS" "$((n * 7919 + RANDOM))" 2>>"$WORK/writer$n.log" &
  writers+=($!)
  PIDS+=($!)
  /usr/bin/python3 "$WRITER" conflict-sql "$SECS" "$((n * 104729 + RANDOM))" |
    sqlite3 -bail -cmd ".timeout 30000" "$WORK/node$n.db" >>"$WORK/cli$n.log" 2>&1 &
  writers+=($!)
  PIDS+=($!)
done
for pid in "${writers[@]}"; do wait "$pid" || fail "a writer failed (see writer*.log, cli*.log)"; done
echo "writers done: items $(sql "$WORK/node1.db" "SELECT count(*) FROM items") rows on node 1"

rc=0
"$MARMOT" verify -config "$WORK/node1.toml" -nodes 3 -wait 120 >"$WORK/verify.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "verify after the writers stopped exited $rc: $(cat "$WORK/verify.log")"
same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db" || fail "verify agreed but the dumps differ"
for n in 1 2 3; do
  [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] || fail "node $n dead-lettered changes"
  stop_pid "${NODE_PID[$n]}"
done
pass "three nodes with two concurrent clients each on the same keys for ${SECS}s end identical, and verify says so"
