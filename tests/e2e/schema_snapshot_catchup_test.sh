#!/usr/bin/env bash
# Schema changes while a node is away for longer than the streams keep (issue 12 with issue 9):
# three nodes on one nats-server, shard streams of max_entries 16, snapshots every 2 s. Node 3 is
# stopped; node 1 adds a column with a default, renames a column, creates a table and an index,
# and nodes 1 and 2 write far more than the stream keeps with the new schema; node 3's application
# writes one row under the old schema meanwhile. Node 3 restarted catches up (schema stream and a
# snapshot restore) and must end identical to the others: the same schema, the same rows, its own
# row with everyone under the renamed column, no dead letters, no gaps left, verify agrees.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
scan_max_changes = 4
[nats]
urls = ["$NATS_URL"]
[replication_log]
max_entries = 16
[snapshot]
store = "nats"
interval = 2000
TOML
done
# The application objects of DB, as SQLite stores them (marmot's and SQLite's own left out).
app_schema() {
  sql "$1" "SELECT type || ' ' || name || ': ' || sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite%'
    AND name NOT LIKE '__marmot__%' ORDER BY type, name"
}
same_schema() { [ "$(app_schema "$WORK/node1.db")" = "$(app_schema "$WORK/node$1.db")" ]; }

for n in 1 2 3; do start_marmot "$n" "$WORK/node$n.toml"; done
sql "$WORK/node1.db" "INSERT INTO items VALUES (1, 'one'), (2, 'two');"
seen_within 30 "$WORK/node3.db" "SELECT count(*) FROM items" 2 || fail "first rows not on node 3"

stop_pid "${NODE_PID[3]}"
mv "$WORK/node3.log" "$WORK/node3.first.log"
sql "$WORK/node1.db" "ALTER TABLE items ADD COLUMN extra TEXT NOT NULL DEFAULT 'd'"
sql "$WORK/node1.db" "ALTER TABLE items RENAME COLUMN v TO val"
sql "$WORK/node1.db" "CREATE TABLE later (id INTEGER PRIMARY KEY, w TEXT); CREATE INDEX items_extra ON items (extra);"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM sqlite_schema WHERE name = 'items_extra'" 1 ||
  fail "node 2 did not get the schema changes"
# node 3's application, marmot stopped: a row under the old schema (captured, not published yet)
sql "$WORK/node3.db" "INSERT INTO items (id, v) VALUES (9001, 'written on 3 while away')"
for i in $(seq 0 29); do
  sql "$WORK/node1.db" "INSERT INTO items (id, val, extra) VALUES ($((100 + i)), 'n1 $i', 'e$i'); INSERT INTO later VALUES ($i, 'w$i');"
  sql "$WORK/node2.db" "INSERT INTO items (id, val) VALUES ($((200 + i)), 'n2 $i'); UPDATE items SET val = 'n2 touched $i' WHERE id = 1;"
done
last=$(stream_last marmot-changes-c-1)
[ "$last" -gt 40 ] || fail "the stream holds only $last messages: not more than it keeps"
wait_for 60 "a snapshot covering sequence $last" snapshot_covers "$last"

start_marmot 3 "$WORK/node3.toml"
wait_for 120 "node 3 to end with the same schema" same_schema 3
wait_for 120 "node 3 to end identical" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"
if grep -q "restored snapshot" "$WORK/node3.log"; then echo "node 3 healed by a snapshot"; else echo "node 3 caught up from the streams"; fi
[ "$(sql "$WORK/node1.db" "SELECT val || '/' || extra FROM items WHERE id = 9001")" = "written on 3 while away/d" ] ||
  fail "node 3's row written under the old schema is not on node 1 as it should be: $(sql "$WORK/node1.db" "SELECT * FROM items WHERE id = 9001")"
[ "$(sql "$WORK/node3.db" "SELECT count(*) FROM later")" = 30 ] || fail "node 3 lacks rows of the new table"
for n in 1 2 3; do
  [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] || fail "dead letters on node $n"
  [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__gaps")" = 0 ] || fail "node $n still records gaps"
done
rc=0
"$MARMOT" verify -config "$WORK/node1.toml" -nodes 3 -wait 60 >"$WORK/verify.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "verify exited $rc: $(cat "$WORK/verify.log")"
for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
pass "a node away while the schema changed and the streams moved on ends identical, with its own row written under the old schema"
