#!/usr/bin/env bash
# Table renames that marmot could not publish at once (issue 12): a table renamed on node 2 while
# its marmot is stopped, and one renamed while NATS is away (node 2's marmot then SIGKILLed, so
# the rename must survive a restart before it is published). Each must reach node 1 as a rename:
# published as a drop and a create, node 1 would drop the table and lose every row it had. The
# found rename is recorded with capture (capture.h UnpublishedTableRenames) until published.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
start_nodes 2 "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT);"
sql "$WORK/node1.db" "INSERT INTO books VALUES (1, 'a'), (2, 'b'), (3, 'c')"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM books" 3 || fail "the first rows did not reach node 2"

# 1. Renamed while node 2's marmot is stopped, then renamed again (chained: books -> novels -> tales).
stop_pid "${NODE_PID[2]}"
sql "$WORK/node2.db" "ALTER TABLE books RENAME TO novels; INSERT INTO novels VALUES (4, 'd');
  ALTER TABLE novels RENAME TO tales"
start_marmot 2 "$WORK/node2.toml"
wait_for 30 "node 2 to publish the rename" grep -q 'publishing the rename of table "books" to "tales"' "$WORK/node2.log"
seen_within 30 "$WORK/node1.db" "SELECT count(*) FROM tales" 4 || fail "node 1 lacks rows of the renamed table"
verify_agrees() {
  "$MARMOT" verify -config "$WORK/node1.toml" -nodes 2 -wait 30 >"$WORK/verify.out" 2>&1 ||
    fail "verify: $(cat "$WORK/verify.out")"
}
verify_agrees

# 2. Renamed while NATS is away; marmot is killed before it could publish, and starts again later.
kill "$NATS_PID"
wait "$NATS_PID" 2>/dev/null || true
wait_for 30 "node 2 to notice NATS is gone" grep -q "disconnected from NATS" "$WORK/node2.log"
reinstalls=$(grep -c "re-installing capture" "$WORK/node2.log" || true)
reinstalled() { [ "$(grep -c "re-installing capture" "$WORK/node2.log")" -gt "$reinstalls" ]; }
sql "$WORK/node2.db" "ALTER TABLE tales RENAME TO stories; INSERT INTO stories VALUES (5, 'e')"
wait_for 30 "node 2 to see the rename (capture re-installed)" reinstalled
kill -9 "${NODE_PID[2]}"
wait "${NODE_PID[2]}" 2>/dev/null || true
start_nats
start_marmot 2 "$WORK/node2.toml"
wait_for 60 "node 2 to publish the rename" grep -q 'publishing the rename of table "tales" to "stories"' "$WORK/node2.log"
seen_within 30 "$WORK/node1.db" "SELECT count(*) FROM stories" 5 || fail "node 1 lacks rows of the table renamed offline"
[ "$(sql "$WORK/node1.db" "SELECT count(*) FROM sqlite_schema WHERE name IN ('books', 'novels', 'tales')")" = 0 ] ||
  fail "node 1 still has an old name of the table"
verify_agrees
same_dbs "$WORK/node1.db" "$WORK/node2.db" || fail "nodes differ"
pass "tables renamed while marmot was stopped, and while NATS was away, arrive as renames with every row"
