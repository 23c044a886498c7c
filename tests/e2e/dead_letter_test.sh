#!/usr/bin/env bash
# The dead-letter tools, as an operator uses them. Node 2's `items` lacks column w, so every row
# node 1 writes is dead-lettered there; one of those rows is then deleted on node 1 (a delete needs
# only the key, so it applies on node 2 and supersedes that row's dead letter). `marmot dead-letter
# list` shows them; a replay before the fix keeps them (and drops the superseded one: replaying it
# would bring the deleted row back); after `ALTER TABLE items ADD COLUMN w` on node 2 a replay
# applies them, and both nodes hold the same rows (`marmot verify` agrees). `drop` removes the dead
# letters of a table node 2 does not have (its schema differed before the first start; a table
# created while running would reach node 2, docs/SCHEMA.md). /metrics counts all of it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats

# Node 1 also has a table node 2 lacks. Both schemas are there before the first start, so no
# schema change explains the difference (created while running, it would reach node 2:
# docs/SCHEMA.md).
sql "$WORK/node1.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT, w INTEGER);
  CREATE TABLE other (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
sql "$WORK/node2.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
HTTP_PORT=$(free_port)
for n in 1 2; do
  write_node_config "$n"
done
printf '[prometheus]\nenable = true\nbind = "127.0.0.1:%s"\n' "$HTTP_PORT" >>"$WORK/node2.toml"
start_marmot 1 "$WORK/node1.toml"
start_marmot 2 "$WORK/node2.toml"
dl() { "$MARMOT" dead-letter "$@"; }

for i in 1 2 3 4 5; do sql "$WORK/node1.db" "INSERT INTO items VALUES ($i, 'row $i', $((i * 10)));"; done
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM __marmot__dead_letter" 5 || fail "node 2 did not dead-letter the 5 rows"
sql "$WORK/node1.db" "DELETE FROM items WHERE id = 3;"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM __marmot__dead_letter WHERE superseded_seq IS NOT NULL" 1 ||
  fail "the delete of row 3 did not supersede its dead letter"

# A change for a table node 2 does not have: dropped by table.
sql "$WORK/node1.db" "INSERT INTO other VALUES (1, 'x');"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM __marmot__dead_letter WHERE tbl = 'other'" 1 || fail "no dead letter for other"
out=$(dl drop -config "$WORK/node2.toml" -table other)
grep -q "dropped 1 dead letter(s)" <<<"$out" || fail "drop -table: $out"
[ "$(sql "$WORK/node2.db" "SELECT count(*) FROM __marmot__dead_letter WHERE tbl = 'other'")" = 0 ] || fail "dead letters of other left"

# Node 1 drops it again (a schema change that reaches node 2, where there is nothing to drop).
sql "$WORK/node1.db" "DROP TABLE other;"

dl list -config "$WORK/node2.toml" >"$WORK/list.txt" || fail "dead-letter list failed"
cat "$WORK/list.txt"
[ "$(grep -c ' pending ' "$WORK/list.txt")" = 4 ] || fail "expected 4 pending dead letters"
[ "$(grep -c ' superseded ' "$WORK/list.txt")" = 1 ] || fail "expected 1 superseded dead letter"
grep -q 'not here: "w"' "$WORK/list.txt" || fail "the list does not show the reason"
grep -q "^5 dead letter(s)" "$WORK/list.txt" || fail "the list does not count them"
out=$(dl list -config "$WORK/node2.toml" -limit 2)
grep -q "the newest 2 shown" <<<"$out" || fail "-limit: $out"
out=$(dl list -config "$WORK/node2.toml" -table nope)
grep -q "^0 dead letter(s)" <<<"$out" || fail "-table filter: $out"

# Before the fix: nothing applies, the superseded one goes, exit 1.
rc=0
dl replay -config "$WORK/node2.toml" -all >"$WORK/replay1.txt" || rc=$?
cat "$WORK/replay1.txt"
[ "$rc" = 1 ] || fail "a replay that leaves dead letters should exit 1, got $rc"
grep -q "replayed 0, dropped 1 superseded, 4 kept" "$WORK/replay1.txt" || fail "unexpected replay summary"
[ "$(sql "$WORK/node2.db" 'SELECT count(*) FROM items')" = 0 ] || fail "rows applied before the fix?"

# The fix, while node 2 runs; then the replay applies the 4 changes.
sql "$WORK/node2.db" "ALTER TABLE items ADD COLUMN w INTEGER;"
dl replay -config "$WORK/node2.toml" -all >"$WORK/replay2.txt" || fail "replay after the fix failed: $(cat "$WORK/replay2.txt")"
grep -q "replayed 4, dropped 0 superseded, 0 kept" "$WORK/replay2.txt" || fail "unexpected summary: $(cat "$WORK/replay2.txt")"
same_dbs "$WORK/node1.db" "$WORK/node2.db" || {
  diff <(dump_db "$WORK/node1.db") <(dump_db "$WORK/node2.db") >&2
  fail "nodes differ after the replay"
}
[ "$(sql "$WORK/node2.db" 'SELECT count(*) FROM items WHERE id = 3')" = 0 ] || fail "the deleted row came back"
"$MARMOT" verify -config "$WORK/node2.toml" -nodes 2 -wait 30 >"$WORK/verify.txt" 2>&1 ||
  fail "verify after the replay: $(cat "$WORK/verify.txt")"

metrics=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics")
grep -q "^marmot_changes_dead_lettered_total 6$" <<<"$metrics" || fail "metrics: $(grep dead_letter <<<"$metrics")"
grep -q "^marmot_dead_letter_rows 0$" <<<"$metrics" || fail "metrics: $(grep dead_letter <<<"$metrics")"

rc=0
dl list -config "$WORK/nope.toml" >/dev/null 2>"$WORK/err.txt" || rc=$?
[ "$rc" = 1 ] && grep -q "does not exist" "$WORK/err.txt" || fail "a missing database: rc $rc, $(cat "$WORK/err.txt")"
for n in 1 2; do stop_pid "${NODE_PID[$n]}"; done
pass "dead letters listed, replayed after the fix (superseded one dropped), dropped by table"
