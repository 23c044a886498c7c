#!/usr/bin/env bash
# Fault suite, every NATS store lost (issue 10): three nodes on one external nats-server write and
# converge; then everything stops, the server's JetStream store is deleted (streams, snapshots and
# all), and everything starts again with the databases keeping their stream positions. Each node
# must say loudly that the stream it had applied is gone (a recorded gap), start on the new stream
# without hanging, and replicate what is written afterwards: the nodes stay identical, verify
# agrees, and no row written before or after the loss is missing anywhere.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
setup_nats
for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
cleanup_interval = 500
[nats]
urls = ["$NATS_URL"]
reconnect_wait_seconds = 1
TOML
done
declare -A STARTS
start_node() {  # start_node N: a new process with its own log file; waits until it runs
  STARTS[$1]=$((${STARTS[$1]:-0} + 1))
  start_bg "node$1.${STARTS[$1]}" "$MARMOT" -config "$WORK/node$1.toml"
  NODE_PID[$1]=$LAST_PID
  wait_for 90 "node $1 to start" grep -q "node $1 running" "$WORK/node$1.${STARTS[$1]}.log"
}
for n in 1 2 3; do start_node "$n"; done
for n in 1 2 3; do sql "$WORK/node$n.db" "INSERT INTO items VALUES ($n, 'before the loss, from node $n')"; done
for n in 1 2 3; do seen_within 60 "$WORK/node$n.db" "SELECT count(*) FROM items" 3 || fail "node $n did not converge before the loss"; done

for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
kill -KILL "$NATS_PID"
wait "$NATS_PID" 2>/dev/null || true
rm -rf "$WORK/js"
mkdir -p "$WORK/js"
start_nats
for n in 1 2 3; do start_node "$n"; done
for n in 1 2 3; do
  wait_for 60 "node $n to report the lost stream" grep -qE "gap|re-created|no longer|lost" "$WORK/node$n.2.log"
done
for n in 1 2 3; do sql "$WORK/node$n.db" "INSERT INTO items VALUES ($((10 + n)), 'after the loss, from node $n')"; done
for n in 1 2 3; do
  seen_within 60 "$WORK/node$n.db" "SELECT count(*) FROM items" 6 ||
    fail "node $n has $(sql "$WORK/node$n.db" "SELECT count(*) FROM items") of 6 rows after the loss"
done
same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db" || fail "the nodes differ after the loss"
verify_agrees "$WORK/node1.toml" 3
grep -q "gap(s) in its streams" "$WORK/verify.log" || fail "verify did not name the nodes with recorded gaps: $(cat "$WORK/verify.log")"
for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
pass "after every NATS store was lost, the nodes say so, stay identical and replicate new writes"
