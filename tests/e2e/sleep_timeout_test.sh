#!/usr/bin/env bash
# sleep_timeout (v0.8's serverless mode, issue 9): a node that has published and applied nothing
# for that long saves a snapshot and exits 0; a new node then starts from that snapshot.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
for n in 1 2; do
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
sleep_timeout = 3000
[nats]
urls = ["$NATS_URL"]
TOML
done
sql "$WORK/node1.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
start_marmot 1 "$WORK/node1.toml"
for i in 1 2 3; do  # keeps it busy for longer than the timeout
  sql "$WORK/node1.db" "INSERT INTO items VALUES ($i, 'row $i')"
  sleep 1.5
done
kill -0 "${NODE_PID[1]}" 2>/dev/null || fail "node 1 slept while it was busy"
last_write=$SECONDS
rc=0
wait "${NODE_PID[1]}" || rc=$?
[ "$rc" = 0 ] || fail "node 1 exited $rc after its sleep timeout"
slept_after=$((SECONDS - last_write))
[ "$slept_after" -ge 2 ] || fail "node 1 exited $slept_after s after the last write, before its sleep timeout"
grep -q "sleep_timeout" "$WORK/node1.log" || fail "node 1 did not say why it stopped"
grep -q "saved snapshot" "$WORK/node1.log" || fail "node 1 did not save a snapshot before sleeping"

start_marmot 2 "$WORK/node2.toml"
grep -q "new node: restoring snapshot" "$WORK/node2.log" || fail "node 2 did not start from node 1's snapshot"
[ "$(sql "$WORK/node2.db" "SELECT group_concat(v) FROM items")" = "row 1,row 2,row 3" ] || fail "node 2 lacks node 1's rows"
pass "an idle node saves a snapshot and exits 0 after sleep_timeout; a new node starts from it"
