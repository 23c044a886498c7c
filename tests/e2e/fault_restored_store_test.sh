#!/usr/bin/env bash
# Fault suite, a NATS store restored from a backup (issue 10). Two nodes on one external
# nats-server. The server's JetStream store is copied while all is stopped; node 1 writes more and
# node 2 applies it; then node 2 stops, the old copy of the store is put back, and node 1 writes
# until the stream is longer than node 2's position. The stream's range now looks fine to node 2,
# but the messages up to its position are other ones than it applied: without comparing them it
# would go on after its position and silently miss node 1's first new rows. Node 2 must say so
# (a recorded gap naming the replaced history), apply what the stream holds again, and end with
# every row node 1 has.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
setup_nats
for n in 1 2; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  write_node_config "$n"
done
start_node() {  # start_node N: node N with a fresh log file
  rm -f "$WORK/node$1.log"
  start_marmot "$1" "$WORK/node$1.toml"
}
stop_nats() {
  kill -TERM "$NATS_PID"
  wait "$NATS_PID" 2>/dev/null || true
}
rows() { sql "$WORK/node$1.db" "SELECT count(*) FROM items WHERE $2"; }
position_of_node2() { sql "$WORK/node2.db" "SELECT seq FROM __marmot__positions WHERE stream LIKE '%changes%'"; }

for n in 1 2; do start_node "$n"; done
for id in 1 2 3 4 5; do sql "$WORK/node1.db" "INSERT INTO items VALUES ($id, 'before the backup')"; done
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM items" 5 || fail "node 2 did not get the first rows"
for n in 1 2; do stop_pid "${NODE_PID[$n]}"; done
stop_nats
cp -a "$WORK/js" "$WORK/js.backup"

start_nats
for n in 1 2; do start_node "$n"; done
for id in $(seq 6 15); do
  sql "$WORK/node1.db" "INSERT INTO items VALUES ($id, 'after the backup')"
  sleep 0.1  # separate messages, so that node 2's position moves well past the backup's end
done
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM items" 15 || fail "node 2 did not get rows 6..15"
applied=$(position_of_node2)
stop_pid "${NODE_PID[2]}"
stop_pid "${NODE_PID[1]}"
stop_nats
rm -rf "$WORK/js"
mv "$WORK/js.backup" "$WORK/js"
start_nats
start_node 1
echo "node 2 applied up to message $applied; the restored stream ends at $(stream_last marmot-changes-c-1)"
id=100
longer_than_node2() { [ "$(stream_last marmot-changes-c-1)" -gt $((applied + 2)) ]; }
until longer_than_node2; do
  id=$((id + 1))
  [ "$id" -lt 400 ] || fail "the restored stream did not grow past node 2's position $applied"
  sql "$WORK/node1.db" "INSERT INTO items VALUES ($id, 'after the restore')"
  sleep 0.1
done
echo "node 1 wrote rows 101..$id; the stream ends at $(stream_last marmot-changes-c-1)"

start_node 2
wait_for 60 "node 2 to report the replaced history" grep -q "not the one this node applied" "$WORK/node2.log"
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM items WHERE id > 100" $((id - 100)) ||
  fail "node 2 has $(rows 2 "id > 100") of node 1's $((id - 100)) rows written after the restore"
same_dbs "$WORK/node1.db" "$WORK/node2.db" || fail "the nodes differ after the restore"
[ "$(sql "$WORK/node2.db" "SELECT count(*) FROM __marmot__gaps")" -ge 1 ] || fail "node 2 recorded no gap"
for n in 1 2; do stop_pid "${NODE_PID[$n]}"; done
pass "a node whose stream was replaced by an older copy that grew again says so and misses no row"
