#!/usr/bin/env bash
# Fault suite, two nodes with one node_id (issue 10): nodes A and B run with node_id 7 (clones of
# one machine derive the default node_id from the same /etc/machine-id), C with 3. B starts with a
# warning naming A's database; all three write at once and end identical; `marmot verify -nodes 3`
# sees three nodes ("node 7" and "node 7#2") and agrees; `-repair -from 7` is refused as ambiguous.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
names=(x a b c)
for n in 1 2 3; do
  name=${names[$n]}
  sql "$WORK/$name.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  cat >"$WORK/$name.toml" <<TOML
db_path = "$WORK/$name.db"
node_id = $([ "$name" = c ] && echo 3 || echo 7)
cleanup_interval = 500
[nats]
urls = ["$NATS_URL"]
[snapshot]
enabled = false
TOML
  start_marmot "$n" "$WORK/$name.toml"
done
grep -q "node_id 7 is also used by a running node (database $WORK/a.db" "$WORK/node2.log" ||
  fail "node B did not warn about the shared node_id: $(grep -i node_id "$WORK/node2.log")"
writers=()
for n in 1 2 3; do
  sql "$WORK/${names[$n]}.db" "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 100)
    INSERT INTO items SELECT $n * 1000 + x, 'from ${names[$n]}' FROM i;" &
  writers+=($!)
done
for pid in "${writers[@]}"; do wait "$pid" || fail "a write failed"; done
for name in a b c; do
  seen_within 60 "$WORK/$name.db" "SELECT count(*) FROM items" 300 || fail "$name has $(sql "$WORK/$name.db" "SELECT count(*) FROM items") of 300 rows"
done
same_dbs "$WORK/a.db" "$WORK/b.db" "$WORK/c.db" || fail "the nodes differ"
rc=0
"$MARMOT" verify -config "$WORK/c.toml" -nodes 3 -wait 60 >"$WORK/verify.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "verify exited $rc: $(cat "$WORK/verify.out")"
grep -q "^table	node 3	node 7	node 7#2	result" "$WORK/verify.out" || fail "verify did not tell the two nodes 7 apart: $(cat "$WORK/verify.out")"
sql "$WORK/b.db" ".dbconfig enable_trigger off" "DELETE FROM items WHERE id = 2001" >/dev/null
rc=0
"$MARMOT" verify -config "$WORK/c.toml" -repair -from 7 -wait 60 >"$WORK/verify.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "verify -repair -from 7 with two nodes 7 exited $rc: $(cat "$WORK/verify.out")"
grep -q "more than one running node has that node_id" "$WORK/verify.out" || fail "no reason: $(cat "$WORK/verify.out")"
for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
pass "two nodes sharing a node_id replicate, are warned about, and are told apart by verify"
