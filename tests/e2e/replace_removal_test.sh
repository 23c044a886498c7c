#!/usr/bin/env bash
# A row that the application's own REPLACE removes (docs/CAPTURE.md, "Rows removed by REPLACE"):
# SQLite fires no delete trigger for it. While node 1's marmot is stopped, its application gives
# user 1 the email of user 5 with INSERT OR REPLACE (removing user 5) and then changes user 1's
# email again, so the value that caused the removal is gone before marmot reads the change. It
# also runs an INSERT OR IGNORE that removes nothing. When marmot starts, node 2 must lose user 5
# too and keep user 6. (Before capture logged these removals node 2 kept user 5, silently.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
setup_nats
start_nodes 2 "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);"
sql "$WORK/node1.db" "INSERT INTO users VALUES (5, 'a', 'five'), (6, 'b', 'six')"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM users" 2 || fail "the first rows did not reach node 2"

stop_pid "${NODE_PID[1]}"
sql "$WORK/node1.db" "INSERT OR REPLACE INTO users VALUES (1, 'a', 'one');
  UPDATE users SET email = 'c' WHERE id = 1;
  INSERT OR IGNORE INTO users VALUES (2, 'b', 'two');"
[ "$(sql "$WORK/node1.db" "SELECT group_concat(id) FROM (SELECT id FROM users ORDER BY id)")" = "1,6" ] ||
  fail "node 1's REPLACE did not remove user 5"

mv "$WORK/node1.log" "$WORK/node1.first.log"
start_marmot 1 "$WORK/node1.toml"
users() { sql "$1" "SELECT group_concat(id || ':' || email, ' ') FROM (SELECT * FROM users ORDER BY id)"; }
want="1:c 6:b"
if ! seen_within 30 "$WORK/node2.db" "SELECT group_concat(id || ':' || email, ' ') FROM (SELECT * FROM users ORDER BY id)" "$want" ||
  [ "$(users "$WORK/node1.db")" != "$want" ]; then
  fail "expected '$want' on both nodes; node 1 has '$(users "$WORK/node1.db")', node 2 '$(users "$WORK/node2.db")'"
fi
verify_agrees "$WORK/node1.toml" 2
expect_clean "$WORK/node1.db" "$WORK/node2.db"
pass "a row removed by the application's REPLACE is removed on every node, also when the writing row changed again"
