#!/usr/bin/env bash
# Schema changes made by the application while marmot runs never make it publish or apply wrong
# values, and never stall it. Two nodes on one external nats-server:
#   1. RENAME COLUMN on node 1, then a write: before the fix node 1's prepared SELECT "who" fell back
#      to SQLite's double-quoted string literal and published the text 'who' as the value, which
#      node 2 stored. Now the rename reaches node 2 through the schema stream (docs/SCHEMA.md) and
#      the row arrives under the new name there.
#   2. ADD COLUMN on both nodes while running (the same migration twice: one schema), then a write
#      on node 1: before the fix node 1 kept its old column list and never published the new
#      column's value.
#   3. DROP TABLE on node 1 with a change of that table still unread: before the fix every later
#      change of node 1 stalled behind "no such table". The drop reaches node 2 too.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

setup_nats

for n in 1 2; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL;
    CREATE TABLE k (id INTEGER PRIMARY KEY, who TEXT);
    CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT);
    CREATE TABLE d (id INTEGER PRIMARY KEY, v TEXT);
    CREATE TABLE e (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  write_node_config "$n"
  start_marmot "$n" "$WORK/node$n.toml"
done

# Every table written once, so node 1's reader has its statements prepared.
sql "$WORK/node1.db" "INSERT INTO k VALUES (1, 'bob'); INSERT INTO a VALUES (1, 'one');
  INSERT INTO d VALUES (1, 'd'); INSERT INTO e VALUES (1, 'e');"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM e" 1 || fail "first rows not on node 2"

# 1. RENAME COLUMN on node 1 only.
sql "$WORK/node1.db" "ALTER TABLE k RENAME COLUMN who TO owner; INSERT INTO k VALUES (2, 'alice');"
seen_within 30 "$WORK/node2.db" "SELECT owner FROM k WHERE id = 2" alice ||
  fail "node 2 lacks the row written under the renamed column: $(sql "$WORK/node2.db" "SELECT * FROM k")"
[ "$(sql "$WORK/node2.db" "SELECT count(*) FROM k WHERE owner = 'who'")" = 0 ] ||
  fail "node 2 stored the column's old name as a value"
[ "$(sql "$WORK/node2.db" "SELECT owner FROM k WHERE id = 1")" = bob ] || fail "node 2 lost the renamed column's values"
[ "$(sql "$WORK/node1.db" "SELECT owner FROM k WHERE id = 2")" = alice ] || fail "node 1 lost its own write"

# 2. ADD COLUMN on both nodes, then a write that uses it.
# The second ALTER fails with "duplicate column name" when the first has reached node 2 already (a
# migration tool checks first); either way both end with one schema.
sql "$WORK/node1.db" "ALTER TABLE a ADD COLUMN y TEXT"
sql "$WORK/node2.db" "ALTER TABLE a ADD COLUMN y TEXT" 2>/dev/null || true
sql "$WORK/node1.db" "INSERT INTO a VALUES (2, 'two', 'yes'); UPDATE a SET y = 'later' WHERE id = 1;"
seen_within 30 "$WORK/node2.db" "SELECT group_concat(id || '=' || ifnull(y, 'NULL'), ',') FROM a ORDER BY id" "1=later,2=yes" ||
  fail "node 2 lacks the new column's values: $(sql "$WORK/node2.db" "SELECT * FROM a")"

# 3. DROP TABLE with a change of it not read yet, then more writes.
sql "$WORK/node1.db" "BEGIN; INSERT INTO d VALUES (2, 'gone'); DROP TABLE d; COMMIT;"
sql "$WORK/node1.db" "INSERT INTO e VALUES (2, 'after the drop')"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM e WHERE id = 2" 1 || fail "publishing stalled after DROP TABLE"
if grep -q "no such table" "$WORK/node1.log"; then fail "node 1 tripped over the dropped table: $(grep 'no such table' "$WORK/node1.log" | head -1)"; fi
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM sqlite_schema WHERE name = 'd'" 0 || fail "the drop did not reach node 2"
for n in 1 2; do
  [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] ||
    fail "node $n dead-lettered: $(sql "$WORK/node$n.db" "SELECT reason FROM __marmot__dead_letter")"
done

pass "schema changes while running replicate: no wrong values, no stale columns, no stall, no dead letters"
