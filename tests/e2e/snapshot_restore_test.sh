#!/usr/bin/env bash
# A node that missed messages the streams no longer keep heals from a snapshot, and a new node
# starts from one (issue 9). Three nodes on one external nats-server, streams of max_entries 16,
# snapshots in the NATS object store every 2 s:
#   1. node 3's marmot is frozen (SIGSTOP) while nodes 1 and 2 write far more than the stream
#      keeps and the application on node 3 writes rows of its own (captured, not published); after
#      SIGCONT node 3 ends identical to the others, and its own rows reach everyone;
#   2. node 3 is stopped while nodes 1 and 2 write far more than the stream keeps; it restarts
#      (the application holding a read transaction on its database all along) and ends identical;
#   3. a brand-new node 4 with an empty database starts from the newest snapshot and ends identical.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats

config() {  # config N
  cat >"$WORK/node$1.toml" <<TOML
db_path = "$WORK/node$1.db"
node_id = $1
scan_max_changes = 4
[nats]
urls = ["$NATS_URL"]
reconnect_wait_seconds = 1
[replication_log]
max_entries = 16
[snapshot]
store = "nats"
interval = 2000
TOML
}
for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v BLOB, at TEXT);" >/dev/null
  config "$n"
done
config 4  # node 4's database does not exist yet

insert() {  # insert NODE FIRST COUNT BYTES: rows FIRST.. on NODE's database, in one transaction
  sql "$WORK/node$1.db" "WITH RECURSIVE i(x) AS (SELECT $2 UNION ALL SELECT x + 1 FROM i WHERE x < $2 + $3 - 1)
    INSERT INTO items SELECT x, randomblob($4), 'node $1' FROM i;"
}
count() { sql "$WORK/node$1.db" "SELECT count(*) FROM items"; }
all_same() { same_dbs "$WORK/node1.db" "$@"; }

for n in 1 2 3; do start_marmot "$n" "$WORK/node$n.toml"; done
insert 1 1 10 10
for n in 2 3; do seen_within 30 "$WORK/node$n.db" "SELECT count(*) FROM items" 10 || fail "first rows not on node $n"; done

# 1. Frozen while the stream moves on.
kill -STOP "${NODE_PID[3]}"
insert 1 1000 120 100000  # 30 messages of ~400 KB: more than the stream keeps and the sockets hold
insert 2 2000 60 100000
insert 3 3000 5 10        # node 3's application goes on writing
last=$(stream_last marmot-changes-c-1)
wait_for 60 "a snapshot covering sequence $last" snapshot_covers "$last"
kill -CONT "${NODE_PID[3]}"
insert 1 4000 4 10
wait_for 120 "node 3 to end identical to nodes 1 and 2" all_same "$WORK/node2.db" "$WORK/node3.db"
[ "$(count 1)" = $((10 + 120 + 60 + 5 + 4)) ] || fail "node 1 has $(count 1) rows"
if grep -q "restored snapshot" "$WORK/node3.log"; then
  echo "frozen node: healed by a snapshot"
else
  echo "frozen node: missed nothing (the messages waited in its socket buffers)"
fi
[ "$(sql "$WORK/node3.db" "SELECT count(*) FROM __marmot__gaps")" = 0 ] || fail "node 3 still records gaps"

# 2. Stopped while the stream moves on; restarted under a reader.
stop_pid "${NODE_PID[3]}"
# 75 messages of 4 rows (the stream keeps 16), paced so that nodes 1 and 2 keep up.
for i in $(seq 0 49); do insert 1 $((5000 + 4 * i)) 4 10; sleep 0.02; done
for i in $(seq 0 24); do insert 2 $((6000 + 4 * i)) 4 10; sleep 0.02; done
last=$(stream_last marmot-changes-c-1)
wait_for 60 "a snapshot covering sequence $last" snapshot_covers "$last"
before=$(count 3)
start_bg reader /usr/bin/python3 -c "
import sqlite3, sys, time
db = sqlite3.connect('$WORK/node3.db', isolation_level=None)
db.execute('BEGIN')
first = db.execute('SELECT count(*) FROM items').fetchone()[0]
print('reader: started with', first, flush=True)
time.sleep(15)
again = db.execute('SELECT count(*) FROM items').fetchone()[0]
db.execute('COMMIT')
print('reader: ended with', again, 'then', db.execute('SELECT count(*) FROM items').fetchone()[0], flush=True)
sys.exit(0 if first == again else 1)"
reader_pid=$LAST_PID
wait_for 10 "the reader to start" grep -q "reader: started" "$WORK/reader.log"
mv "$WORK/node3.log" "$WORK/node3.1.log"
start_marmot 3 "$WORK/node3.toml"
wait_for 60 "node 3 to restore a snapshot" grep -q "restored snapshot" "$WORK/node3.log"
kill -0 "$reader_pid" 2>/dev/null || fail "the reader ended before the restore: the test did not restore under a reader"
wait_for 120 "node 3 to end identical after its restart" all_same "$WORK/node2.db" "$WORK/node3.db"
wait "$reader_pid" || fail "the reader's transaction saw the database change under it: $(cat "$WORK/reader.log")"
grep -q "reader: started with $before" "$WORK/reader.log" || fail "reader: $(cat "$WORK/reader.log")"
[ "$(sql "$WORK/node3.db" "SELECT count(*) FROM __marmot__gaps")" = 0 ] || fail "node 3 still records gaps"

# 3. A new node.
start_marmot 4 "$WORK/node4.toml"
grep -q "new node: restoring snapshot" "$WORK/node4.log" || fail "node 4 did not start from a snapshot"
insert 2 7000 3 10
wait_for 120 "node 4 to end identical" all_same "$WORK/node2.db" "$WORK/node3.db" "$WORK/node4.db"
for n in 1 2 3 4; do
  [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] || fail "dead letters on node $n"
done
pass "a frozen node, a node restarted after the streams moved on and a new node all end identical via snapshots"
