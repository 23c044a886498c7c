#!/usr/bin/env bash
# Fault suite, big work (issue 10): a 50 MB BLOB (more than NATS carries in one message: it goes in
# chunks) and a single transaction of BIG_ROWS rows (default 1,000,000) written on node 1 both
# reach node 2 intact, and neither marmot's peak memory (VmHWM) grows anywhere near the data:
# at most BIG_RSS_MB each (default 500; the 50 MB row is held whole while it is encoded and
# applied; the sanitizer build sets more, as ASan keeps freed memory in quarantine).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROWS="${BIG_ROWS:-1000000}"
LIMIT_MB="${BIG_RSS_MB:-500}"
setup_nats
for n in 1 2; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL;
    CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB);
    CREATE TABLE many (id INTEGER PRIMARY KEY, v TEXT, n REAL);" >/dev/null
  write_node_config "$n" '[replication_log]' 'max_entries = 1000000'
  start_marmot "$n" "$WORK/node$n.toml"
done
sql "$WORK/node1.db" "INSERT INTO blobs VALUES (1, randomblob(50 * 1024 * 1024))"
want_blob=$(sql "$WORK/node1.db" "SELECT length(data) || ':' || hex(substr(data, 1, 16)) || ':' || hex(substr(data, -16)) FROM blobs")
seen_within 120 "$WORK/node2.db" "SELECT length(data) || ':' || hex(substr(data, 1, 16)) || ':' || hex(substr(data, -16)) FROM blobs" "$want_blob" ||
  fail "the 50 MB BLOB did not arrive intact"
start=$SECONDS
sql "$WORK/node1.db" "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < $ROWS)
  INSERT INTO many SELECT x, 'row ' || x, x / 7.0 FROM i;"
seen_within 600 "$WORK/node2.db" "SELECT count(*) FROM many" "$ROWS" ||
  fail "node 2 has $(sql "$WORK/node2.db" "SELECT count(*) FROM many") of $ROWS rows"
echo "$ROWS rows in one transaction replicated in $((SECONDS - start)) s"
same_dbs "$WORK/node1.db" "$WORK/node2.db" || fail "the nodes differ"
for n in 1 2; do
  peak_kb=$(awk '/VmHWM/ {print $2}' "/proc/${NODE_PID[$n]}/status")
  echo "node $n peak RSS: $((peak_kb / 1024)) MB"
  [ "$peak_kb" -lt $((LIMIT_MB * 1024)) ] || fail "node $n peaked at $((peak_kb / 1024)) MB (limit $LIMIT_MB)"
  [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] || fail "node $n dead-lettered changes"
  stop_pid "${NODE_PID[$n]}"
done
pass "a 50 MB BLOB and a $ROWS-row transaction replicate intact with bounded memory"
