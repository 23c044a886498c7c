#!/usr/bin/env bash
# Tables replaced where marmot could not capture them (issue 12): capture triggers go with a dropped
# table, so writes to a table dropped and created again, or rebuilt with SQLite's 12-step ALTER, are
# not captured until marmot installs capture again. The installation finds such a table by its
# missing trigger and publishes all its rows again (capture.cpp ReplacedTables):
#   1. a 12-step rebuild in one transaction on node 2 (new table, rows copied with a change, old
#      table dropped, new renamed, one more row): node 1 ends identical, verify agrees;
#   2. a table dropped and created again while node 2's marmot is stopped, with new rows: the new
#      rows reach node 1, node 2 warns that rows it lost are not deleted elsewhere, verify finds
#      them, and `verify -repair -from 2` makes the nodes agree.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
start_nodes 2 "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT);"
sql "$WORK/node1.db" "INSERT INTO books VALUES (1, 'a'), (2, 'b'), (3, 'c')"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM books" 3 || fail "the first rows did not reach node 2"
verify() { "$MARMOT" verify -config "$WORK/node1.toml" -nodes 2 -wait 30 "$@" >"$WORK/verify.out" 2>&1; }

# 1. A 12-step rebuild (a column becomes NOT NULL, titles upper-cased), in one transaction.
sql "$WORK/node2.db" "BEGIN;
  CREATE TABLE new_books (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
  INSERT INTO new_books SELECT id, upper(title) FROM books;
  DROP TABLE books;
  ALTER TABLE new_books RENAME TO books;
  INSERT INTO books VALUES (4, 'D');
  COMMIT;"
seen_within 30 "$WORK/node1.db" "SELECT group_concat(title, '') FROM (SELECT title FROM books ORDER BY id)" ABCD ||
  fail "node 1 lacks the rebuilt table's rows: $(sql "$WORK/node1.db" "SELECT * FROM books")"
verify || fail "verify after the rebuild: $(cat "$WORK/verify.out")"
same_dbs "$WORK/node1.db" "$WORK/node2.db" || fail "nodes differ after the rebuild"

# 2. Dropped and created again while node 2's marmot is stopped.
stop_pid "${NODE_PID[2]}"
sql "$WORK/node2.db" "DROP TABLE books; CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
  INSERT INTO books VALUES (9, 'Z')"
start_marmot 2 "$WORK/node2.toml"
grep -q 'table "books" was dropped and created again, or rebuilt' "$WORK/node2.log" ||
  fail "node 2 did not warn about the replaced table"
seen_within 30 "$WORK/node1.db" "SELECT count(*) FROM books WHERE id = 9" 1 || fail "the new row did not reach node 1"
if verify; then fail "verify agreed although node 1 still has rows node 2 dropped"; fi
grep -q "DIFFER" "$WORK/verify.out" || fail "verify did not name the difference: $(cat "$WORK/verify.out")"
verify -repair -from 2 || fail "verify -repair -from 2: $(cat "$WORK/verify.out")"
[ "$(sql "$WORK/node1.db" "SELECT group_concat(id) FROM books")" = 9 ] ||
  fail "after the repair node 1 has $(sql "$WORK/node1.db" "SELECT group_concat(id) FROM books")"
same_dbs "$WORK/node1.db" "$WORK/node2.db" || fail "nodes differ after the repair"
pass "a rebuilt table replicates whole; a table replaced while marmot was stopped is published again, warned about and repaired"
