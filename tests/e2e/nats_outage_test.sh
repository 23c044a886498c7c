#!/usr/bin/env bash
# NATS goes away completely and comes back: two marmot nodes share one external nats-server; the
# server is SIGKILLed, node 1 keeps taking writes (they wait in its change log), the server is
# started again on the same port and store, and every row reaches node 2 exactly once.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=$(free_port)
mkdir -p "$WORK/js"
cat >"$WORK/nats.conf" <<CONF
listen: "127.0.0.1:$PORT"
jetstream { store_dir: "$WORK/js" }
CONF
start_nats() { start_bg nats nats-server -c "$WORK/nats.conf"; NATS_PID=$LAST_PID; }
start_nats

for n in 1 2; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT);" >/dev/null
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
[nats]
urls = ["nats://127.0.0.1:$PORT"]
reconnect_wait_seconds = 1
[snapshot]
enabled = false
TOML
  start_bg "node$n" "$MARMOT" -config "$WORK/node$n.toml"
done
for n in 1 2; do wait_for 60 "node $n to start" grep -q "running on" "$WORK/node$n.log"; done

sql "$WORK/node1.db" "INSERT INTO events VALUES (1, 'before the outage');"
wait_for 30 "the first row on node 2" bash -c "[ \"\$(sqlite3 '$WORK/node2.db' 'SELECT count(*) FROM events')\" = 1 ]"

kill -KILL "$NATS_PID"
for i in $(seq 2 51); do sql "$WORK/node1.db" "INSERT INTO events VALUES ($i, 'during the outage');"; done
sleep 2
[ "$(sql "$WORK/node2.db" 'SELECT count(*) FROM events')" = 1 ] || fail "rows arrived while NATS was down?"
wait_for 30 "node 1 to notice the outage" grep -q "disconnected from NATS" "$WORK/node1.log"

start_nats
wait_for 60 "all 51 rows on node 2 after NATS came back" \
  bash -c "[ \"\$(sqlite3 '$WORK/node2.db' 'SELECT count(*) FROM events')\" = 51 ]"
same_dbs "$WORK/node1.db" "$WORK/node2.db" || fail "nodes differ after the outage"
sleep 1
[ "$(sql "$WORK/node2.db" 'SELECT count(*) FROM events')" = 51 ] || fail "duplicates or losses after the outage"
pass "a full NATS outage loses nothing: captured changes wait and go out after the reconnect"
