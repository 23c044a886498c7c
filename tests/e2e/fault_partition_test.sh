#!/usr/bin/env bash
# Fault suite, a network partition (issue 10). Three nodes, each in its own network namespace
# (ip netns, a veth pair into a bridge), embedded nats-servers clustered over that network, streams
# with 3 replicas. While an application on every node inserts unique rows (for FAULT_SECONDS, at
# least 45 s), node 3 is cut off (its link goes down) and healed 8 s before the writers stop. The majority side goes on
# replicating; node 3's writes wait in its change log while its server has no quorum and go out
# after the heal. At the end every committed row is on every node, verify agrees, no dead letters. Creating namespaces needs root with CAP_NET_ADMIN: where that is not allowed the test
# says so and skips.
#
# Found by this test (issue 10): around the heal, node 3's server, still without a leader for a
# stream, answered stream-info requests from its own copy; a node (on either side) took that range for
# lost messages and recorded gaps. Answers that name no leader are no longer taken as the stream's
# (ShardConsumer, tests/unit/consumer_loop_test.cpp).
# Also seen in about one run of three: nats-server 2.9.10 delivers to a consumer, around the heal,
# a message that the stream's history does not keep (the leader later holds another message under
# that sequence). The node notices it at its next check (the message at its position is not the one
# it applied), records a gap and applies the stream again: loud, as it must be, and the rows still
# converge. So a recorded gap is allowed here when its reason is exactly that; any other is not.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"

# Names and a subnet of this run only (tests may run in parallel).
TAG="$(printf '%04x' $((RANDOM % 65536)))"
NET="10.$((100 + RANDOM % 100)).$((RANDOM % 250)).0"
PREFIX="${NET%.0}"
BRIDGE="mbr$TAG"
if ! ip netns add "m1-$TAG" 2>/dev/null; then
  echo "SKIP: cannot create network namespaces here (needs root with CAP_NET_ADMIN); partition not tested"
  FAILED=0
  exit 0
fi
remove_network() {
  local n
  for n in 1 2 3; do ip netns del "m$n-$TAG" 2>/dev/null; done
  ip link del "$BRIDGE" 2>/dev/null
  return 0
}
# After lib.sh's cleanup has stopped every process, the namespaces and the bridge go.
trap 'rc=$?; set +e; (exit $rc); cleanup; remove_network; exit $rc' EXIT
ip netns add "m2-$TAG"
ip netns add "m3-$TAG"
ip link add "$BRIDGE" type bridge
ip link set "$BRIDGE" up
for n in 1 2 3; do
  ns="m$n-$TAG"
  ip link add "mv$n-$TAG" type veth peer name eth0 netns "$ns"
  ip link set "mv$n-$TAG" master "$BRIDGE" up
  ip -n "$ns" addr add "$PREFIX.1$n/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done
# Each server alone in its namespace: fixed ports cannot clash with anything.
CLUSTER_PORT=6222
peers_of() {
  local n="$1" m peers=""
  for m in 1 2 3; do [ "$m" = "$n" ] || peers+="${peers:+,}nats://$PREFIX.1$m:$CLUSTER_PORT/"; done
  echo "$peers"
}

for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE log_rows (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
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
  start_bg "node$n" ip netns exec "m$n-$TAG" "$MARMOT" -config "$WORK/node$n.toml" \
    -cluster-addr "$PREFIX.1$n:$CLUSTER_PORT" -cluster-peers "$(peers_of "$n")"
  NODE_PID[$n]=$LAST_PID
done
for n in 1 2 3; do wait_for 120 "node $n to start" grep -q "node $n running" "$WORK/node$n.log"; done

# A cut link breaks no TCP connection: the servers notice through their Raft heartbeats, and nodes 1
# and 2 elect new leaders for what node 3 led (several seconds). The writers run long enough for
# that, whatever FAULT_SECONDS says.
FAULT_SECS=$((FAULT_SECS < 45 ? 45 : FAULT_SECS))
start_unique_writers
started=$SECONDS
sleep 5
ip link set "mv3-$TAG" down
echo "node 3 cut off"
rows_of_node2() { sql "$WORK/node$1.db" "SELECT count(*) FROM log_rows WHERE id BETWEEN 2000000 AND 2999999"; }
majority_goes_on() { [ "$(rows_of_node2 1)" -gt $(($(rows_of_node2 3) + 20)) ]; }
wait_for 35 "nodes 1 and 2 to replicate without node 3" majority_goes_on
echo "during the cut: node 1 holds $(rows_of_node2 1) rows of node 2, node 3 holds $(rows_of_node2 3)"
while [ $((SECONDS - started)) -lt $((FAULT_SECS - 8)) ]; do sleep 1; done
ip link set "mv3-$TAG" up
echo "node 3 healed"
wait_unique_writers
echo "$TOTAL rows committed"
expect_every_unique_row 240
rc=0
ip netns exec "m1-$TAG" "$MARMOT" verify -config "$WORK/node1.toml" -nodes 3 -wait 120 >"$WORK/verify.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "verify exited $rc: $(cat "$WORK/verify.log")"
expect_clean_but_served "$WORK"/node[123].db
for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
pass "$TOTAL rows written on three nodes across a partition of node 3 and its heal are all on every node"
