#!/usr/bin/env bash
# `marmot verify` (issue 10, docs/VERIFY.md): three nodes on one external nats-server. Identical
# nodes agree (exit 0). Rows changed on node 2 behind marmot's back (triggers off, so nothing is
# captured) make verify exit 1 and name exactly those keys. `verify -repair -from 1` makes node 1
# publish its rows again; every node ends identical to node 1 and the verify after it agrees.
# A node that starts while verify -nodes 3 waits is waited for; fewer nodes than -nodes after
# -wait, and a NATS nobody listens on, are exit 2.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
SCHEMA="
CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);
CREATE TABLE kv (k BLOB PRIMARY KEY, v ANY) WITHOUT ROWID;
CREATE TABLE notes (msg TEXT);
"
for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL;" >/dev/null
  sql "$WORK/node$n.db" "$SCHEMA"
  write_node_config "$n" 'cleanup_interval = 500'
done
for n in 1 2 3; do start_marmot "$n" "$WORK/node$n.toml"; done

sql "$WORK/node1.db" "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 200)
  INSERT INTO items SELECT x, 'item ' || x FROM i;
  INSERT INTO kv VALUES (x'00ff', 1.5), (x'01', 'one'), (x'02', NULL);"
sql "$WORK/node2.db" "INSERT INTO notes VALUES ('from node 2'); INSERT INTO kv VALUES (x'03', 3);"
wait_for 60 "the three nodes to converge" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"

verify() {  # verify ARGS...: runs marmot verify, output in $WORK/verify.out, exit code in $RC
  RC=0
  "$MARMOT" verify -config "$WORK/node1.toml" -wait 60 "$@" >"$WORK/verify.out" 2>"$WORK/verify.err" || RC=$?
  cat "$WORK/verify.out" "$WORK/verify.err" >>"$WORK/verify.log"
}

verify -nodes 3
[ "$RC" = 0 ] || fail "verify of identical nodes exited $RC: $(cat "$WORK/verify.out" "$WORK/verify.err")"
grep -q "all 3 table(s) agree on 3 node(s)" "$WORK/verify.out" || fail "no agreement line: $(cat "$WORK/verify.out")"
grep -q "^items	200 rows" "$WORK/verify.out" || fail "items row count not shown: $(cat "$WORK/verify.out")"

# Behind marmot's back on node 2: triggers off, so none of this is captured or replicated.
sql "$WORK/node2.db" ".dbconfig enable_trigger off" \
  "UPDATE items SET v = 'changed on 2' WHERE id = 5; DELETE FROM items WHERE id = 7;
   INSERT INTO items VALUES (999, 'only on 2'); UPDATE kv SET v = 2.5 WHERE k = x'00ff';"

verify
[ "$RC" = 1 ] || fail "verify of differing nodes exited $RC: $(cat "$WORK/verify.out" "$WORK/verify.err")"
grep -q "^items	.*DIFFER$" "$WORK/verify.out" || fail "items not reported as differing: $(cat "$WORK/verify.out")"
grep -q "^kv	.*DIFFER$" "$WORK/verify.out" || fail "kv not reported as differing: $(cat "$WORK/verify.out")"
grep -q "^notes	.*agree$" "$WORK/verify.out" || fail "notes not reported as agreeing: $(cat "$WORK/verify.out")"
grep -q "^  items (5): node 1 row [0-9a-f]* node 2 row [0-9a-f]* node 3 row" "$WORK/verify.out" || fail "key 5 not listed: $(cat "$WORK/verify.out")"
grep -q "^  items (7): node 1 row [0-9a-f]* node 2 missing node 3 row" "$WORK/verify.out" || fail "key 7 not listed: $(cat "$WORK/verify.out")"
grep -q "^  items (999): node 1 missing node 2 row [0-9a-f]* node 3 missing" "$WORK/verify.out" || fail "key 999 not listed: $(cat "$WORK/verify.out")"
grep -q "^  kv (X'00FF'):" "$WORK/verify.out" || fail "kv key not listed: $(cat "$WORK/verify.out")"
[ "$(grep -c "^  items " "$WORK/verify.out")" = 3 ] || fail "more item keys listed than changed: $(cat "$WORK/verify.out")"

verify -repair -from 1
[ "$RC" = 0 ] || fail "verify -repair -from 1 did not end in agreement (exit $RC): $(cat "$WORK/verify.out" "$WORK/verify.err")"
grep -q "repair: node 1 publishes its version of 3 row(s) of table items again" "$WORK/verify.out" || fail "repair not reported: $(cat "$WORK/verify.out")"
wait_for 30 "the three nodes to be identical after the repair" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"
[ "$(sql "$WORK/node2.db" "SELECT v FROM items WHERE id = 5")" = "item 5" ] || fail "node 2 kept its changed row 5"
[ "$(sql "$WORK/node2.db" "SELECT count(*) FROM items WHERE id = 999")" = 0 ] || fail "node 2 kept row 999"
verify -nodes 3
[ "$RC" = 0 ] || fail "verify after the repair exited $RC: $(cat "$WORK/verify.out" "$WORK/verify.err")"

# A node that is not there yet when verify starts is waited for (up to -wait) with -nodes N.
stop_pid "${NODE_PID[3]}"
(verify -nodes 3; echo "$RC" >"$WORK/late.rc") &
verifier=$!
sleep 3
start_marmot 3 "$WORK/node3.toml"
wait "$verifier"
[ "$(cat "$WORK/late.rc")" = 0 ] ||
  fail "verify -nodes 3 with node 3 starting late exited $(cat "$WORK/late.rc"): $(cat "$WORK/verify.out" "$WORK/verify.err")"
grep -q "2 of 3 node(s) answered; asking again" "$WORK/verify.err" || fail "verify did not wait for node 3: $(cat "$WORK/verify.err")"
grep -q "all 3 table(s) agree on 3 node(s)" "$WORK/verify.out" || fail "no agreement with node 3 late: $(cat "$WORK/verify.out")"

verify -nodes 4 -wait 5
[ "$RC" = 2 ] || fail "verify -nodes 4 with 3 nodes exited $RC"
grep -q "3 node(s) answered, 4 expected" "$WORK/verify.err" || fail "no reason for exit 2: $(cat "$WORK/verify.err")"
verify -nats-url "nats://127.0.0.1:$(free_port)"
[ "$RC" = 2 ] || fail "verify against a NATS nobody listens on exited $RC"
for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
pass "verify agrees on identical nodes, names the differing keys, and -repair -from 1 makes every node identical"
