#!/usr/bin/env bash
# Fault suite, no lost writes (issue 10): three nodes on one external nats-server. An application
# on every node inserts rows with unique keys, one per transaction, for FAULT_SECONDS (default 20)
# while marmot processes are killed with SIGKILL at random moments and restarted. At the end every
# committed row is on every node (count and content), verify agrees, and nothing was dead-lettered.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
setup_nats
for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE log_rows (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  write_node_config "$n" 'cleanup_interval = 1000' '[replication_log]' 'max_entries = 1000000'
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

start_unique_writers
kills=0
deadline=$((SECONDS + FAULT_SECS))
while [ "$SECONDS" -lt "$deadline" ]; do
  sleep "0.$((RANDOM % 9 + 1))"
  n=$((RANDOM % 3 + 1))
  kill -KILL "${NODE_PID[$n]}"
  wait "${NODE_PID[$n]}" 2>/dev/null || true
  kills=$((kills + 1))
  sleep "0.$((RANDOM % 9 + 1))"
  start_node "$n"
done
wait_unique_writers
echo "$kills SIGKILLs; $TOTAL rows committed"
[ "$TOTAL" -gt 100 ] || fail "only $TOTAL rows written"
expect_every_unique_row 120
verify_agrees "$WORK/node1.toml" 3
expect_clean "$WORK"/node[123].db
for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
pass "$TOTAL rows written on three nodes through $kills SIGKILLs of marmot are all on every node"
