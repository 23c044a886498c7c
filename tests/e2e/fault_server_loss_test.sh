#!/usr/bin/env bash
# Fault suite, NATS server loss (issue 10): three nodes with embedded nats-servers clustered over
# loopback, streams with 3 replicas. While an application on every node inserts unique rows for
# FAULT_SECONDS (default 20), one embedded nats-server after another is SIGKILLed; marmot restarts
# its server, which rejoins the cluster. At the end every committed row is on every node, verify
# agrees, and no node recorded a gap or a dead letter.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE log_rows (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
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
restarts() { grep -c "nats-server is back" "$WORK/node$1.log" || true; }
restarted_since() { [ "$(restarts "$1")" -gt "$2" ]; }  # restarted_since N COUNT
server_pid() {  # server_pid N: the pid of node N's embedded nats-server now
  grep -oE "(started nats-server|nats-server is back) \(pid [0-9]+" "$WORK/node$1.log" | tail -1 | grep -oE "[0-9]+$"
}

start_unique_writers
kills=0
deadline=$((SECONDS + FAULT_SECS))
n=1
while [ $((SECONDS + 4)) -lt "$deadline" ]; do
  sleep 2
  before=$(restarts "$n")
  kill -KILL "$(server_pid "$n")" && kills=$((kills + 1))
  wait_for 60 "node $n's nats-server to be restarted" restarted_since "$n" "$before"
  n=$((n % 3 + 1))
done
wait_unique_writers
echo "$kills SIGKILLs of nats-servers; $TOTAL rows committed"
[ "$kills" -gt 0 ] || fail "no server was killed"
expect_every_unique_row 180
verify_agrees "$WORK/node1.toml" 3
expect_clean_but_served "$WORK"/node[123].db
for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
pass "$TOTAL rows written on three nodes through $kills SIGKILLs of their nats-servers are all on every node"
