#!/usr/bin/env bash
# Fault suite, the database file deleted or replaced under a running node (issue 10). Node 2's
# file is replaced by a copy (a restored backup moved into place): its marmot must say so, publish
# what the old file captured, and exit with code 1; started again, it works on the new file and
# replicates both ways. Then the file is deleted: marmot says so and exits 1 as well.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
for n in 1 2; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  write_node_config "$n"
done
start_marmot 1 "$WORK/node1.toml"
start_marmot 2 "$WORK/node2.toml"
sql "$WORK/node1.db" "INSERT INTO items VALUES (1, 'from node 1')"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM items" 1 || fail "first row not on node 2"

expect_exit_1() {  # expect_exit_1 PID WHAT: the process exits 1 within 30 s and its log says WHAT
  local pid="$1" rc=0
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && fail "marmot did not stop after: $2"
  wait "$pid" || rc=$?
  [ "$rc" = 1 ] || fail "marmot exited $rc after: $2"
  grep -q "$2 while marmot runs on it" "$WORK"/node2*.log || fail "marmot did not say: $2"
}

# Replaced: a copy moved into place (a new inode), holding a row the old file does not have.
sql "$WORK/node2.db" "VACUUM INTO '$WORK/copy.db'"
sql "$WORK/copy.db" "INSERT INTO items VALUES (2, 'only in the copy')"
mv "$WORK/copy.db" "$WORK/node2.db"
rm -f "$WORK/node2.db-wal" "$WORK/node2.db-shm"
expect_exit_1 "${NODE_PID[2]}" "the database file $WORK/node2.db was replaced by another file"
mv "$WORK/node2.log" "$WORK/node2.1.log"
start_marmot 2 "$WORK/node2.toml"
sql "$WORK/node2.db" "INSERT INTO items VALUES (3, 'from node 2 on the new file')"
sql "$WORK/node1.db" "INSERT INTO items VALUES (4, 'from node 1 after the replacement')"
seen_within 30 "$WORK/node1.db" "SELECT count(*) FROM items WHERE id = 3" 1 || fail "node 2's new file is not captured"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM items WHERE id = 4" 1 || fail "node 2's new file is not applied to"

# Deleted.
rm -f "$WORK/node2.db" "$WORK/node2.db-wal" "$WORK/node2.db-shm"
expect_exit_1 "${NODE_PID[2]}" "the database file $WORK/node2.db was deleted"
stop_pid "${NODE_PID[1]}"
pass "a node whose database file is replaced or deleted says so and exits 1, and works on the new file when started again"
