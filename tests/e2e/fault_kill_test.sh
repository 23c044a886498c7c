#!/usr/bin/env bash
# Fault suite, no lost writes (issue 10): three nodes on one external nats-server. An application
# on every node inserts rows with unique keys, one per transaction, for FAULT_SECONDS (default 20)
# while marmot processes are killed with SIGKILL at random moments and restarted. At the end every
# committed row is on every node (count and content), verify agrees, and nothing was dead-lettered.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SECS="${FAULT_SECONDS:-20}"
WRITER="$(dirname "${BASH_SOURCE[0]}")/torture_writer.py"
setup_nats
for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE log_rows (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
cleanup_interval = 1000
[nats]
urls = ["$NATS_URL"]
[replication_log]
max_entries = 1000000
[snapshot]
enabled = false
TOML
done
declare -A STARTS
start_node() {  # start_node N: a new process, its own log file; waits until it runs
  STARTS[$1]=$((${STARTS[$1]:-0} + 1))
  local log="node$1.${STARTS[$1]}"
  start_bg "$log" "$MARMOT" -config "$WORK/node$1.toml"
  NODE_PID[$1]=$LAST_PID
  local deadline=$((SECONDS + 90))
  until grep -q "node $1 running" "$WORK/$log.log" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { dump_stacks "$LAST_PID"; fail "node $1 did not start within 90 s ($log.log)"; }
    sleep 0.2
  done
}
for n in 1 2 3; do start_node "$n"; done

writers=()
for n in 1 2 3; do
  /usr/bin/python3 "$WRITER" unique "$WORK/node$n.db" "$n" "$SECS" >"$WORK/written$n" 2>>"$WORK/writer$n.log" &
  writers+=($!)
  PIDS+=($!)
done
kills=0
deadline=$((SECONDS + SECS))
while [ "$SECONDS" -lt "$deadline" ]; do
  sleep "0.$((RANDOM % 9 + 1))"
  n=$((RANDOM % 3 + 1))
  kill -KILL "${NODE_PID[$n]}"
  wait "${NODE_PID[$n]}" 2>/dev/null || true
  kills=$((kills + 1))
  sleep "0.$((RANDOM % 9 + 1))"
  start_node "$n"
done
for pid in "${writers[@]}"; do wait "$pid" || fail "a writer failed (see writer*.log)"; done
total=0
for n in 1 2 3; do total=$((total + $(cat "$WORK/written$n"))); done
echo "$kills SIGKILLs; $total rows committed"
[ "$total" -gt 100 ] || fail "only $total rows written"

for n in 1 2 3; do
  seen_within 120 "$WORK/node$n.db" "SELECT count(*) FROM log_rows" "$total" ||
    fail "node $n has $(sql "$WORK/node$n.db" "SELECT count(*) FROM log_rows") of $total rows"
done
same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db" || fail "the nodes hold the same number of rows, but not the same rows"
for n in 1 2 3; do
  want=$(cat "$WORK/written$n")
  got=$(sql "$WORK/node1.db" "SELECT count(*) FROM log_rows WHERE id BETWEEN $n * 1000000 AND $n * 1000000 + $want - 1 AND v = 'node $n row ' || (id - $n * 1000000)")
  [ "$got" = "$want" ] || fail "node $n committed $want rows, node 1 has $got of them intact"
done
rc=0
"$MARMOT" verify -config "$WORK/node1.toml" -nodes 3 -wait 120 >"$WORK/verify.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "verify exited $rc: $(cat "$WORK/verify.log")"
for n in 1 2 3; do
  [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] || fail "node $n dead-lettered changes"
  [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__gaps")" = 0 ] || fail "node $n recorded gaps"
  stop_pid "${NODE_PID[$n]}"
done
pass "$total rows written on three nodes through $kills SIGKILLs of marmot are all on every node"
