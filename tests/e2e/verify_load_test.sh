#!/usr/bin/env bash
# `marmot verify` under write load (issue 10, docs/VERIFY.md): three nodes on one nats-server, and
# on every node an application that never pauses: random inserts, updates, deletes and key changes
# on 40 keys that every node writes too (also in a table whose rows take each other's UNIQUE
# emails, so that REPLACE removes rows), and unique inserts. While they write, verify must give a
# true answer: it agrees (exit 0) three times in a row, with the streams growing during each run;
# rows changed behind marmot's back (one in a table nobody writes, one in a table every node keeps
# inserting into) are named, exactly those keys; -repair -from 1 under load ends in agreement.
# After the writers stop the dumps are identical. (Before verify compared at barriers, it waited
# for a quiet moment and exited 2 here.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
setup_nats
for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL;
    CREATE TABLE items (id INTEGER PRIMARY KEY, v, n INTEGER);
    CREATE TABLE pairs (k TEXT, j INTEGER, v BLOB, PRIMARY KEY (k, j)) WITHOUT ROWID;
    CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INTEGER);
    CREATE TABLE log_rows (id INTEGER PRIMARY KEY, v TEXT);
    CREATE TABLE quiet (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  write_node_config "$n" "[replication_log]" "max_entries = 1000000"
done
for n in 1 2 3; do start_marmot "$n" "$WORK/node$n.toml"; done
sql "$WORK/node1.db" "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 50)
  INSERT INTO quiet SELECT x, 'quiet ' || x FROM i;"
wait_for 60 "the quiet rows everywhere" seen_within 1 "$WORK/node3.db" "SELECT count(*) FROM quiet" 50

# Writers that go on until they are stopped below (600 s is only a bound).
for n in 1 2 3; do
  start_bg "writer$n" /usr/bin/python3 "$WRITER" conflict "$WORK/node$n.db" 600 "$((n * 7919 + RANDOM))"
  start_bg "unique$n" /usr/bin/python3 "$WRITER" unique "$WORK/node$n.db" "$n" 600
done
STREAM=marmot-changes-c-1
stream_beyond() { [ "$(stream_last "$STREAM")" -gt "$1" ]; }
wait_for 30 "the writers to be writing" stream_beyond 100

verify() {  # verify ARGS...: output in $WORK/verify.out, exit code in $RC; the stream's growth in GREW
  local before after
  before=$(stream_last "$STREAM")
  RC=0
  "$MARMOT" verify -config "$WORK/node1.toml" -nodes 3 -wait 60 "$@" >"$WORK/verify.out" 2>"$WORK/verify.err" || RC=$?
  after=$(stream_last "$STREAM")
  GREW=$((after - before))
  { cat "$WORK/verify.out" "$WORK/verify.err"; echo "(the stream grew by $GREW messages meanwhile)"; } >>"$WORK/verify.log"
}

for round in 1 2 3; do
  verify
  [ "$RC" = 0 ] || fail "verify $round under load exited $RC: $(cat "$WORK/verify.out" "$WORK/verify.err")"
  grep -q "all 5 table(s) agree on 3 node(s)" "$WORK/verify.out" || fail "no agreement line: $(cat "$WORK/verify.out")"
  [ "$GREW" -gt 10 ] || fail "the stream grew by only $GREW messages during verify $round: not under load"
done

# Behind marmot's back (triggers off: nothing captured): on node 2 in a table nobody writes, on
# node 3 an old row of a table that every node keeps inserting into.
sql "$WORK/node2.db" ".dbconfig enable_trigger off" "UPDATE quiet SET v = 'changed on 2' WHERE id = 17;"
sql "$WORK/node3.db" ".dbconfig enable_trigger off" "UPDATE log_rows SET v = 'changed on 3' WHERE id = 1000005;"
verify
[ "$RC" = 1 ] || fail "verify of a changed row under load exited $RC: $(cat "$WORK/verify.out" "$WORK/verify.err")"
grep -q "^quiet	.*DIFFER$" "$WORK/verify.out" || fail "quiet not reported as differing: $(cat "$WORK/verify.out")"
grep -q "^  quiet (17): node 1 row [0-9a-f]* node 2 row [0-9a-f]* node 3 row" "$WORK/verify.out" ||
  fail "key 17 not listed: $(cat "$WORK/verify.out")"
grep -q "^log_rows	.*DIFFER$" "$WORK/verify.out" || fail "log_rows not reported as differing: $(cat "$WORK/verify.out")"
grep -q "^  log_rows (1000005): node 1 row [0-9a-f]* node 2 row [0-9a-f]* node 3 row" "$WORK/verify.out" ||
  fail "key 1000005 not listed: $(cat "$WORK/verify.out")"
[ "$(grep -c "^  " "$WORK/verify.out")" = 2 ] || fail "other keys listed than the two changed: $(cat "$WORK/verify.out")"
for t in items pairs; do
  grep -q "^$t	.*agree$" "$WORK/verify.out" || fail "$t does not agree under load: $(cat "$WORK/verify.out")"
done

verify -repair -from 1
[ "$RC" = 0 ] || fail "verify -repair -from 1 under load exited $RC: $(cat "$WORK/verify.out" "$WORK/verify.err")"
grep -q "repair: node 1 publishes its version of 1 row(s) of table quiet again" "$WORK/verify.out" ||
  fail "repair not reported: $(cat "$WORK/verify.out")"
grep -q "repair: node 1 publishes its version of 1 row(s) of table log_rows again" "$WORK/verify.out" ||
  fail "repair not reported: $(cat "$WORK/verify.out")"
[ "$(sql "$WORK/node2.db" "SELECT v FROM quiet WHERE id = 17")" = "quiet 17" ] || fail "node 2 kept its changed row"
[ "$(sql "$WORK/node3.db" "SELECT v FROM log_rows WHERE id = 1000005")" = "node 1 row 5" ] || fail "node 3 kept its changed row"

for n in 1 2 3; do
  kill -0 "$(pgrep -f "torture_writer.py conflict $WORK/node$n.db" | head -1)" 2>/dev/null ||
    fail "the writer of node $n stopped early (see writer$n.log)"
done
for pid in $(pgrep -f "torture_writer.py .*$WORK/"); do kill -TERM "$pid"; done
wait_for 120 "the three nodes to converge once the writers stopped" same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"
verify
[ "$RC" = 0 ] || fail "verify after the writers stopped exited $RC: $(cat "$WORK/verify.out" "$WORK/verify.err")"
grep -q "left out" "$WORK/verify.out" && fail "rows left out on a quiet cluster: $(cat "$WORK/verify.out")"
expect_clean "$WORK"/node[123].db
for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
pass "verify agrees three times under constant writes on every node, names the one row changed behind marmot's back, and repairs it under load"
