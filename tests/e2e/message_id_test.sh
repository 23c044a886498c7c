#!/usr/bin/env bash
# New writes are never taken for duplicates (issue: "Nats-Msg-Id repeats across nodes and
# incarnations"). JetStream drops a message whose Nats-Msg-Id it saw in the last 2 minutes; ids
# that repeat across databases or lives of one database lost rows silently. Nodes on one external
# nats-server, each case within the 2-minute duplicate window:
#   1. two nodes with the same node_id (the default comes from /etc/machine-id, which cloned
#      machines share) write at the same time: every row reaches the other node;
#   2. a node runs -cleanup and starts again (its change log starts over at 1);
#   3. a node's database is put back to an older copy (a restored backup) and writes again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

setup_nats

for n in 1 2 3; do
  mkdir -p "$WORK/n$n"
  sql "$WORK/n$n/app.db" "PRAGMA journal_mode=WAL; CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT);" >/dev/null
  # Nodes 1 and 2 share node id 7 (each keeps its database in its own directory).
  cat >"$WORK/n$n/node.toml" <<TOML
db_path = "$WORK/n$n/app.db"
node_id = $([ "$n" = 3 ] && echo 3 || echo 7)
[nats]
urls = ["$NATS_URL"]
[snapshot]
enabled = false
TOML
done
start_node() { start_marmot "$1" "$WORK/n$1/node.toml"; }
write() {  # write NODE PREFIX COUNT: COUNT rows, one transaction each
  local i
  for i in $(seq 1 "$3"); do sql "$WORK/n$1/app.db" "INSERT INTO notes VALUES ('$2-$i', 'written on node $1')"; done
}
count() { sql "$WORK/n$1/app.db" "SELECT count(*) FROM notes WHERE id LIKE '$2-%'"; }
for n in 1 2 3; do start_node "$n"; done

# 1. The same node id twice: the change logs of nodes 1 and 2 both count 1, 2, 3, ...
write 1 a 20 &
w1=$!
write 2 b 20 &
w2=$!
wait "$w1" "$w2"
for n in 1 2 3; do
  seen_within 30 "$WORK/n$n/app.db" "SELECT count(*) FROM notes" 40 ||
    fail "node $n has $(sql "$WORK/n$n/app.db" 'SELECT count(*) FROM notes') of 40 rows: rows of a node sharing its id were dropped"
done

# 2. -cleanup, then a new life of the same database: its change log starts over.
stop_pid "${NODE_PID[1]}"
"$MARMOT" -config "$WORK/n1/node.toml" -cleanup >>"$WORK/cleanup.log" 2>&1 || fail "-cleanup failed"
mv "$WORK/node1.log" "$WORK/node1.1.log"
start_node 1
write 1 c 5
seen_within 30 "$WORK/n3/app.db" "SELECT count(*) FROM notes WHERE id LIKE 'c-%'" 5 ||
  fail "after -cleanup, node 1's new rows did not reach node 3 ($(count 3 c) of 5)"

# 3. An older copy of the database comes back.
stop_pid "${NODE_PID[1]}"
sql "$WORK/n1/app.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
cp "$WORK/n1/app.db" "$WORK/backup.db"
mv "$WORK/node1.log" "$WORK/node1.2.log"
start_node 1
write 1 d 5  # published, then lost with the restore
seen_within 30 "$WORK/n3/app.db" "SELECT count(*) FROM notes WHERE id LIKE 'd-%'" 5 || fail "d rows not on node 3"
stop_pid "${NODE_PID[1]}"
rm -f "$WORK/n1/app.db-wal" "$WORK/n1/app.db-shm"
cp "$WORK/backup.db" "$WORK/n1/app.db"
mv "$WORK/node1.log" "$WORK/node1.3.log"
start_node 1
write 1 e 5  # the change log hands out the sequences of the lost d rows again
seen_within 30 "$WORK/n3/app.db" "SELECT count(*) FROM notes WHERE id LIKE 'e-%'" 5 ||
  fail "after a restore, node 1's new rows did not reach node 3 ($(count 3 e) of 5)"
seen_within 30 "$WORK/n2/app.db" "SELECT count(*) FROM notes WHERE id LIKE 'e-%'" 5 || fail "e rows not on node 2"

pass "message ids never repeat: shared node ids, -cleanup and restored databases lose no rows"
