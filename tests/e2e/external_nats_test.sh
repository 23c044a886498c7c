#!/usr/bin/env bash
# marmot joining an existing NATS cluster: three nats-servers (JetStream, clustered, with a user
# and password) on random loopback ports, three marmot nodes with [nats] urls set (each its own
# server first), replicas = 3. Writes on every node converge; then one nats-server is killed and
# writes keep replicating through the remaining two (the clients reconnect, streams keep quorum).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for n in 1 2 3; do CLIENT[$n]=$(free_port); ROUTE[$n]=$(free_port); done
for n in 1 2 3; do
  routes=""
  for m in 1 2 3; do [ "$m" = "$n" ] || routes+="${routes:+, }\"nats://ruser:rpass@127.0.0.1:${ROUTE[$m]}\""; done
  mkdir -p "$WORK/js$n"
  cat >"$WORK/nats$n.conf" <<CONF
server_name: "ext-$n"
listen: "127.0.0.1:${CLIENT[$n]}"
jetstream { store_dir: "$WORK/js$n" }
authorization { user: "app", password: "app-secret" }
cluster {
  name: "ext"
  listen: "127.0.0.1:${ROUTE[$n]}"
  authorization { user: "ruser", password: "rpass" }
  routes: [ $routes ]
}
CONF
  start_bg "nats$n" nats-server -c "$WORK/nats$n.conf"
  NATS_PID[$n]=$LAST_PID
done

for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT, n INTEGER);" >/dev/null
  urls="\"nats://127.0.0.1:${CLIENT[$n]}\""
  for m in 1 2 3; do [ "$m" = "$n" ] || urls+=", \"nats://127.0.0.1:${CLIENT[$m]}\""; done
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $((n + 10))
[replication_log]
replicas = 3
shards = 2
[nats]
urls = [$urls]
user_name = "app"
user_password = "app-secret"
connect_retries = 30
reconnect_wait_seconds = 1
[snapshot]
enabled = false
TOML
  start_bg "node$n" "$MARMOT" -config "$WORK/node$n.toml"
  NODE_PID[$n]=$LAST_PID
done
for n in 1 2 3; do wait_for 120 "node $n to start" grep -q "running on" "$WORK/node$n.log"; done
! grep -q "app-secret" "$WORK"/node*.log || fail "the NATS password appears in a log"

for n in 1 2 3; do
  for i in $(seq 1 30); do
    sql "$WORK/node$n.db" "INSERT INTO notes VALUES ('n$n-$i', 'note $i from node $n', $i); UPDATE notes SET n = n * 10 WHERE id = 'n$n-$((i - 1))';"
  done &
done
wait_for 60 "databases to converge" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"
[ "$(sql "$WORK/node2.db" 'SELECT count(*) FROM notes')" = 90 ] || fail "expected 90 notes"

# One NATS server goes away: its marmot reconnects to another, and replication goes on.
kill -KILL "${NATS_PID[1]}"
sql "$WORK/node1.db" "INSERT INTO notes VALUES ('after-kill-1', 'written while server 1 is down', 1);"
sql "$WORK/node3.db" "INSERT INTO notes VALUES ('after-kill-3', 'written while server 1 is down', 3);"
wait_for 60 "replication after losing one NATS server" \
  bash -c "[ \"\$(sqlite3 '$WORK/node2.db' \"SELECT count(*) FROM notes WHERE id LIKE 'after-kill-%'\")\" = 2 ] &&
           [ \"\$(sqlite3 '$WORK/node1.db' \"SELECT count(*) FROM notes WHERE id LIKE 'after-kill-%'\")\" = 2 ]"
wait_for 60 "databases to converge again" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"

pass "external 3-server NATS cluster with credentials, replicas=3, survives losing one server"
