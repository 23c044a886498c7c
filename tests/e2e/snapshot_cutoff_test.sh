#!/usr/bin/env bash
# Rows written on a node while it is cut off from NATS survive the snapshot restore that heals it,
# and reach everyone (issue 9). Three nodes on one external nats-server, streams of max_entries 64;
# node 3 reaches NATS through a TCP proxy that the test kills (cut) and restarts (heal). While cut
# off, node 3's application writes rows of its own and updates a row that node 1 also updates;
# nodes 1 and 2 write far more than the stream keeps. After the heal node 3 restores a snapshot
# (its consumer missed messages), and every node ends identical: node 3's rows are everywhere, and
# the row both sides updated holds node 3's value (its change reached the stream last).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
PROXY_PORT=$(free_port)
start_proxy() { start_bg proxy /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/tcp_proxy.py" "$PROXY_PORT" "$NATS_PORT"; PROXY_PID=$LAST_PID; }
start_proxy
wait_for 10 "the proxy" grep -q "proxy: listening" "$WORK/proxy.log"

for n in 1 2 3; do
  url=$NATS_URL
  [ "$n" = 3 ] && url="nats://127.0.0.1:$PROXY_PORT"
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
scan_max_changes = 4
[nats]
urls = ["$url"]
reconnect_wait_seconds = 1
[replication_log]
max_entries = 64
[snapshot]
interval = 2000
TOML
  start_marmot "$n" "$WORK/node$n.toml"
done
insert() {  # insert NODE FIRST COUNT
  sql "$WORK/node$1.db" "WITH RECURSIVE i(x) AS (SELECT $2 UNION ALL SELECT x + 1 FROM i WHERE x < $2 + $3 - 1)
    INSERT INTO items SELECT x, 'from node $1' FROM i;"
}
insert 1 1 10
seen_within 30 "$WORK/node3.db" "SELECT count(*) FROM items" 10 || fail "first rows not on node 3"

# Cut node 3 off.
kill -KILL "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null || true
wait_for 30 "node 3 to notice the cut" grep -q "disconnected" "$WORK/node3.log"
insert 3 3000 20
sql "$WORK/node3.db" "UPDATE items SET v = 'node 3 while cut off' WHERE id = 5"
sleep 0.5
sql "$WORK/node1.db" "UPDATE items SET v = 'node 1 during the cut' WHERE id = 5"
# 120 messages of 4 rows (the stream keeps 64), paced so that nodes 1 and 2 keep up even on a
# loaded machine.
for i in $(seq 0 79); do insert 1 $((1000 + 4 * i)) 4; sleep 0.02; done
for i in $(seq 0 39); do insert 2 $((2000 + 4 * i)) 4; sleep 0.02; done
last=$(stream_last marmot-changes-c-1)
wait_for 60 "a snapshot covering sequence $last" snapshot_covers "$last" "$WORK"/node[12].log
[ "$(sql "$WORK/node1.db" "SELECT count(*) FROM items WHERE id >= 3000")" = 0 ] || fail "node 3's rows crossed the cut"

# Heal.
start_proxy
wait_for 90 "node 3 to restore a snapshot" grep -q "restored snapshot" "$WORK/node3.log"
wait_for 120 "every node to end identical" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"
[ "$(sql "$WORK/node1.db" "SELECT count(*) FROM items WHERE id >= 3000")" = 20 ] || fail "node 3's rows did not reach node 1"
[ "$(sql "$WORK/node2.db" "SELECT v FROM items WHERE id = 5")" = "node 3 while cut off" ] ||
  fail "row 5 should hold node 3's value (published last): $(sql "$WORK/node2.db" "SELECT v FROM items WHERE id = 5")"
[ "$(sql "$WORK/node3.db" "SELECT count(*) FROM __marmot__gaps")" = 0 ] || fail "node 3 still records gaps"
pass "rows written while cut off from NATS survive the restore and reach every node"
