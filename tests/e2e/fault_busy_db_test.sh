#!/usr/bin/env bash
# Fault suite, a busy database (issue 10): node 2's application holds the write lock for 10 s
# (BEGIN IMMEDIATE, then nothing) while node 1 writes 200 rows in 50 transactions. Node 2's marmot
# must wait for the lock, skip nothing and dead-letter nothing: once the lock is released it has
# every row, and the row the application wrote inside its long transaction reaches node 1.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
start_nodes 2 "CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);"
/usr/bin/python3 - "$WORK/node2.db" >"$WORK/holder.log" 2>&1 <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO items VALUES (9999, 'written while holding the lock')")
print("holding", flush=True)
time.sleep(10)
db.execute("COMMIT")
print("released", flush=True)
PY
holder=$!
PIDS+=("$holder")
wait_for 10 "the application to take the lock" grep -q holding "$WORK/holder.log"
for i in $(seq 0 49); do
  sql "$WORK/node1.db" "WITH RECURSIVE i(x) AS (SELECT $((4 * i + 1)) UNION ALL SELECT x + 1 FROM i WHERE x < $((4 * i + 4)))
    INSERT INTO items SELECT x, 'from node 1' FROM i;"
done
[ "$(sql "$WORK/node2.db" "SELECT count(*) FROM items")" = 0 ] || fail "node 2 applied rows while its application held the lock"
wait "$holder" || fail "the application's long transaction failed: $(cat "$WORK/holder.log")"
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM items" 201 || fail "node 2 has $(sql "$WORK/node2.db" "SELECT count(*) FROM items") of 201 rows"
seen_within 60 "$WORK/node1.db" "SELECT count(*) FROM items" 201 || fail "node 2's row did not reach node 1"
same_dbs "$WORK/node1.db" "$WORK/node2.db" || fail "the nodes differ"
for n in 1 2; do
  [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] || fail "node $n dead-lettered rows"
  [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__gaps")" = 0 ] || fail "node $n recorded gaps"
  stop_pid "${NODE_PID[$n]}"
done
pass "a node whose application holds the write lock for 10 s waits and then applies every row"
