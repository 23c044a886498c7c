#!/usr/bin/env bash
# Three marmot nodes, each with its embedded nats-server, clustered over loopback on random ports.
# Writes go to all three databases at once with the sqlite3 CLI (inserts, updates, deletes, primary
# key changes, every value type, a table with an odd name); all three must end identical. Then one
# node is stopped, the others keep writing, and the restarted node catches up from its stored
# position (not from the start of the stream) and converges again.
#
# Environment: SHARDS (default 1), COMPRESS (true|false, default true), REPLICAS (default 3).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SHARDS="${SHARDS:-1}"
COMPRESS="${COMPRESS:-true}"
REPLICAS="${REPLICAS:-3}"

SCHEMA="
CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author TEXT, year INTEGER);
CREATE TABLE \"odd \"\"table\"\" name\" (\"key col\" TEXT PRIMARY KEY, \"select\" ANY, \"ü\" REAL);
CREATE TABLE kv (k BLOB PRIMARY KEY, v ANY) WITHOUT ROWID;
CREATE TABLE log (msg TEXT);  -- keyed by rowid: each node writes its own rowid range
CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE);  -- not written: see the start warning
"

for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL;" >/dev/null
  sql "$WORK/node$n.db" "$SCHEMA"
  CLUSTER_PORT[$n]=$(free_port_pair)
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
polling_interval = 0
[replication_log]
shards = $SHARDS
replicas = $REPLICAS
compress = $COMPRESS
max_entries = 100000
[snapshot]
enabled = false
[logging]
verbose = true
TOML
done

start_node() { start_cluster_node "$1" "$WORK/node$1.toml" 3; }
node_running() { grep -q "node $1 running" "$WORK/node$1.log"; }

for n in 1 2 3; do start_node "$n"; done
for n in 1 2 3; do wait_for 90 "node $n to start" node_running "$n"; done
# With several shards, a UNIQUE index besides the key is named at start (docs/CLUSTER.md).
unique_warning() { grep -q 'shards = [0-9]* and table(s) "tags" have a UNIQUE index' "$WORK/node$1.log"; }
for n in 1 2 3; do
  if [ "$SHARDS" -gt 1 ]; then unique_warning "$n" || fail "node $n did not warn of table tags with shards = $SHARDS"
  elif unique_warning "$n"; then fail "node $n warned of UNIQUE indexes with one shard"; fi
done

# Writes on all three nodes at once.
write_load() {
  local n="$1" rounds="$2" base="$3" i
  for i in $(seq 1 "$rounds"); do
    local id=$((base + n * 100000 + i))
    sql "$WORK/node$n.db" "
      INSERT INTO books VALUES ($id, 'title $n/$i', 'author''s \"name\" ü', $((1900 + i)));
      INSERT OR REPLACE INTO \"odd \"\"table\"\" name\" VALUES ('k$((i % 20))', $i.25, -0.5);
      INSERT OR REPLACE INTO kv VALUES (X'$(printf '%02x%04x' "$n" "$i")', randomblob(64));
      INSERT INTO log(rowid, msg) VALUES ($id, 'node $n round $i');
      UPDATE books SET year = year + 1 WHERE id = $((id - 1));
      DELETE FROM books WHERE id = $((id - 3)) AND $((i % 5)) = 0;
    "
  done
  sql "$WORK/node$n.db" "
    UPDATE books SET id = id + 5000000 WHERE id BETWEEN $((base + n * 100000 + 5)) AND $((base + n * 100000 + 9));
    INSERT OR REPLACE INTO kv VALUES (X'ff$(printf '%02x' "$n")', NULL), (X'fe$(printf '%02x' "$n")', 9223372036854775807),
      (X'fd$(printf '%02x' "$n")', -9223372036854775808), (X'fc$(printf '%02x' "$n")', 1.5e300),
      (X'fb$(printf '%02x' "$n")', 'text with '' quote and
newline'), (X'fa$(printf '%02x' "$n")', zeroblob(300000));
  "
}
writers=()
for n in 1 2 3; do write_load "$n" 40 0 & writers+=($!); done
for pid in "${writers[@]}"; do wait "$pid" || fail "writes on a node failed"; done

wait_for 60 "the three databases to converge" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"
rows=$(sql "$WORK/node1.db" "SELECT count(*) FROM books")
[ "$rows" -gt 50 ] || fail "expected the books written on all nodes, found $rows rows"
moved=$(sql "$WORK/node2.db" "SELECT count(*) FROM books WHERE id > 5000000")
[ "$moved" -ge 10 ] || fail "primary-key changes did not replicate (found $moved moved rows)"
echo "converged: $rows books, $moved moved by key change"

# Node 2 goes away; nodes 1 and 3 keep writing; node 2 comes back and catches up.
stop_pid "${NODE_PID[2]}"
grep -q "stopped" "$WORK/node2.log" || fail "node 2 did not log a clean stop"
write_load 1 20 1000000 & w1=$!
write_load 3 20 1000000 & w3=$!
wait "$w1" || fail "writes on node 1 failed"
wait "$w3" || fail "writes on node 3 failed"
mv "$WORK/node2.log" "$WORK/node2.first.log"
start_node 2
wait_for 90 "node 2 to restart" node_running 2
wait_for 60 "node 2 to catch up" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"
# Resumed after its stored position, never from the first message.
grep -E "consuming marmot-changes(-c)?-1 from sequence [0-9]+" "$WORK/node2.log" >/dev/null || fail "no resume line"
resume=$(grep -oE "consuming marmot-changes(-c)?-1 from sequence [0-9]+" "$WORK/node2.log" | head -1 | grep -oE '[0-9]+$')
[ "$resume" -gt 1 ] || fail "node 2 replayed shard 1 from the start (sequence $resume)"
echo "node 2 resumed shard 1 at sequence $resume"

pass "3 nodes converge (shards=$SHARDS compress=$COMPRESS replicas=$REPLICAS), restart resumes"
