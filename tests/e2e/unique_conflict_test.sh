#!/usr/bin/env bash
# A UNIQUE column besides the primary key (docs/CAPTURE.md, "Local writes that are not read yet
# win"): two nodes on one nats-server hold users 1 (email b) and 5 (email a). While node 2's marmot
# is stopped, its application renames user 1, and node 1 gives user 1 the email a, so node 1's
# REPLACE removes user 5. Node 2 starts again: node 1's change to user 1 arrives before node 2 has
# published its own newer write to user 1, so node 2 does not apply it; but it must still remove
# user 5, as node 1 did. Both nodes must end with user 1 as node 2 left it and without user 5.
# (Before the fix node 2 kept user 5, silently; verify found it.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
setup_nats
start_nodes 2 "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);"
sql "$WORK/node1.db" "INSERT INTO users VALUES (1, 'b', 'one'), (5, 'a', 'five')"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM users" 2 || fail "the first rows did not reach node 2"

stop_pid "${NODE_PID[2]}"
sql "$WORK/node2.db" "UPDATE users SET name = 'renamed on node 2' WHERE id = 1"
before=$(stream_last marmot-changes-c-1)
sql "$WORK/node1.db" "UPDATE OR REPLACE users SET email = 'a' WHERE id = 1"
published() { [ "$(stream_last marmot-changes-c-1)" -gt "$before" ]; }
wait_for 30 "node 1 to publish its change" published
[ "$(sql "$WORK/node1.db" "SELECT count(*) FROM users WHERE id = 5")" = 0 ] || fail "node 1's REPLACE kept user 5"

mv "$WORK/node2.log" "$WORK/node2.first.log"
start_marmot 2 "$WORK/node2.toml"
users() { sql "$1" "SELECT group_concat(id || ':' || email || ':' || name, ' ') FROM (SELECT * FROM users ORDER BY id)"; }
want="1:b:renamed on node 2"
converged() { [ "$(users "$WORK/node1.db")" = "$want" ] && [ "$(users "$WORK/node2.db")" = "$want" ]; }
if ! seen_within 30 "$WORK/node2.db" "SELECT group_concat(id || ':' || email || ':' || name, ' ') FROM (SELECT * FROM users ORDER BY id)" "$want" ||
  ! converged; then
  fail "expected '$want' on both nodes; node 1 has '$(users "$WORK/node1.db")', node 2 '$(users "$WORK/node2.db")'"
fi
verify_agrees "$WORK/node1.toml" 2
expect_clean "$WORK/node1.db" "$WORK/node2.db"
pass "a change that a newer local write supersedes still removes the row its REPLACE removed elsewhere"
