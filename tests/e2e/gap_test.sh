#!/usr/bin/env bash
# Messages a node will never get are noticed and said, never skipped in silence (issue "gaps in the
# stream"). Two nodes on one external nats-server, streams of max_entries 16:
#   1. node 2 is stopped while node 1 publishes far more than 16 messages; at restart node 2's
#      position is older than the stream's first message: a gap is logged at error level and
#      recorded in __marmot__gaps, and node 2 goes on with the messages the stream still has;
#   2. node 2's marmot is frozen (SIGSTOP) while node 1 publishes large messages, then thawed:
#      if its consumer lost messages while frozen, the jump is recorded; whatever happens, node 2
#      either ends with every row or has a gap recorded (never neither);
#   3. the NATS store is lost (server restarted on an empty store) while node 2 keeps running and
#      node 1 restarts (which creates the stream anew): node 2 notices the new stream, records
#      the loss, and applies the rows written to the new stream (before the fix it waited for a
#      sequence after its old position and skipped them);
#   4. the store is lost again with both nodes running: they create the stream again themselves.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats

for n in 1 2; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v BLOB);" >/dev/null
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
scan_max_changes = 4
[nats]
urls = ["$NATS_URL"]
reconnect_wait_seconds = 1
[replication_log]
max_entries = 16
[snapshot]
enabled = false
TOML
done
start_node() { start_marmot "$1" "$WORK/node$1.toml"; }
gaps() { sql "$WORK/node2.db" "SELECT count(*) FROM __marmot__gaps"; }
stream_past() { [ "$(stream_last marmot-changes-c-1)" -ge "$1" ]; }
insert() {  # insert FIRST COUNT BYTES: rows FIRST.. on node 1, in one transaction
  sql "$WORK/node1.db" "WITH RECURSIVE i(x) AS (SELECT $1 UNION ALL SELECT x + 1 FROM i WHERE x < $1 + $2 - 1)
    INSERT INTO items SELECT x, randomblob($3) FROM i;"
}
start_node 1
start_node 2

# 1. Away while the stream moves on.
insert 1 8 10
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM items" 8 || fail "first rows not on node 2"
stop_pid "${NODE_PID[2]}"
before_seq=$(stream_last marmot-changes-c-1)
insert 100 200 10  # 50 batches of 4 rows: 50 messages, the stream keeps 16
wait_for 60 "node 1 to publish more than the stream keeps" stream_past $((before_seq + 40))
mv "$WORK/node2.log" "$WORK/node2.1.log"
start_node 2
grep -qE "error.*stream marmot-changes-c-1: message\(s\) [0-9]+\.\.[0-9]+ will not be applied on this node" "$WORK/node2.log" ||
  fail "node 2 did not say that it missed messages"
[ "$(gaps)" -ge 1 ] || fail "the gap was not recorded in __marmot__gaps"
sql "$WORK/node2.db" "SELECT stream, first_missing, last_missing, reason FROM __marmot__gaps" | grep -q "max_entries" ||
  fail "the recorded gap does not say why"
grep -q "may be incomplete" "$WORK/node2.log" || fail "node 2 did not say at start that its copy may be incomplete"
# It goes on with what the stream still holds.
insert 1000 4 10
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM items WHERE id >= 1000" 4 || fail "node 2 stopped replicating after the gap"

# 2. Frozen while large messages go by.
kill -STOP "${NODE_PID[2]}"
before_seq=$(stream_last marmot-changes-c-1)
insert 2000 160 100000  # 40 messages of ~400 KB, more than the stream keeps and the socket buffers hold
wait_for 60 "node 1 to publish the large messages" stream_past $((before_seq + 40))
kill -CONT "${NODE_PID[2]}"
insert 3000 4 10
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM items WHERE id >= 3000" 4 || fail "node 2 did not resume after SIGCONT"
got=$(sql "$WORK/node2.db" "SELECT count(*) FROM items WHERE id BETWEEN 2000 AND 2159")
jumps=$(sql "$WORK/node2.db" "SELECT count(*) FROM __marmot__gaps WHERE reason LIKE '%discarded them before this node read them%'")
echo "frozen node: $got of 160 rows, $jumps jump(s) recorded"
[ "$got" = 160 ] || [ "$jumps" -ge 1 ] || fail "node 2 lacks $((160 - got)) rows and recorded no gap"

# 3. The NATS store is lost while node 2 runs.
before=$(gaps)
stop_pid "${NODE_PID[1]}"
kill -KILL "$NATS_PID"
wait "$NATS_PID" 2>/dev/null || true
rm -rf "$WORK/js"
mkdir -p "$WORK/js"
start_nats
mv "$WORK/node1.log" "$WORK/node1.1.log"
start_node 1  # creates the stream anew: its sequences start at 1 again
insert 5000 3 10
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM items WHERE id >= 5000" 3 ||
  fail "node 2 skipped the rows of the re-created stream"
[ "$(gaps)" -gt "$before" ] || fail "node 2 did not record the loss of the old stream"
sql "$WORK/node2.db" "SELECT reason FROM __marmot__gaps" | grep -q "deleted and created again" ||
  fail "the recorded loss does not say the stream was re-created"

# 4. The store is lost again, now with both nodes running through it: the stream is created again
#    by the nodes themselves, and rows written meanwhile wait in node 1's change log.
before=$(gaps)
kill -KILL "$NATS_PID"
wait "$NATS_PID" 2>/dev/null || true
rm -rf "$WORK/js"
mkdir -p "$WORK/js"
insert 6000 3 10
start_nats
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM items WHERE id >= 6000" 3 ||
  fail "rows written while the store was lost did not arrive: $(grep -E 'error|warn' "$WORK/node2.log" | tail -3)"
[ "$(gaps)" -gt "$before" ] || fail "node 2 did not record the second loss"
grep -q "creating it again" "$WORK/node1.log" "$WORK/node2.log" || fail "nobody said the stream was created again"

pass "missed messages are logged at error level and recorded in __marmot__gaps; re-created streams are read from their start"
