#!/usr/bin/env bash
# Table selection (issue 12): `[replication] include/exclude` globs, case-insensitive on table
# names. Two nodes on one external nats-server, excluding ["cache_*", "sessions"]:
#   - rows of `keep` replicate both ways;
#   - rows written into cache_pages, CACHE_Thumbs and sessions are never captured (no trigger on
#     those tables), never published (the change stream does not move) and stay local on each node
#     (checked after a later `keep` row has arrived, so the pipeline has passed them);
#   - CREATE TABLE cache_new is not replicated, CREATE TABLE other (made after it) is;
#   - node 1 restarted with exclude = ["cache_*"] logs "table selection changed" naming sessions;
#     while node 2 still excludes sessions, node 1's new sessions rows are not applied there;
#     node 2 restarted the same way: sessions rows replicate both ways, cache_* rows stay local;
#   - a malformed selection (not a list, not strings, an empty pattern) stops marmot with exit 2
#     naming the key, before it creates the database.
# No node dead-letters anything.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

expect_exit() {  # expect_exit CODE PATTERN CMD...: runs CMD, checks exit code and output
  local code="$1" pattern="$2"; shift 2
  local out rc=0
  out=$(timeout 30 "$@" 2>&1) || rc=$?
  [ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code; output: $out"
  grep -qE -- "$pattern" <<<"$out" || fail "'$*' output lacks /$pattern/: $out"
}

# A malformed selection: exit 2 before anything starts, the key named.
printf 'db_path = "%s"\nnode_id = 9\n[replication]\nexclude = "notalist"\n' "$WORK/bad.db" >"$WORK/bad1.toml"
expect_exit 2 "replication\.exclude" "$MARMOT" -config "$WORK/bad1.toml"
printf 'db_path = "%s"\nnode_id = 9\n[replication]\nexclude = ["cache_*", 3]\n' "$WORK/bad.db" >"$WORK/bad2.toml"
expect_exit 2 "replication\.exclude" "$MARMOT" -config "$WORK/bad2.toml"
printf 'db_path = "%s"\nnode_id = 9\n[replication]\nexclude = [""]\n' "$WORK/bad.db" >"$WORK/bad3.toml"
expect_exit 2 "replication\.exclude" "$MARMOT" -config "$WORK/bad3.toml"
[ ! -e "$WORK/bad.db" ] || fail "a bad configuration touched the database"

setup_nats
# write_config N EXCLUDE: node N's configuration, excluding EXCLUDE (a TOML array). Node 1 spells
# out include = ["*"], node 2 relies on it being the default.
write_config() {
  local include=""
  if [ "$1" = 1 ]; then include='include = ["*"]'; fi
  write_node_config "$1" "[replication]" "$include" "exclude = $2"
}
for n in 1 2; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL;
    CREATE TABLE keep (id INTEGER PRIMARY KEY, v TEXT);
    CREATE TABLE cache_pages (url TEXT PRIMARY KEY, body TEXT);
    CREATE TABLE CACHE_Thumbs (id INTEGER PRIMARY KEY, img BLOB);
    CREATE TABLE sessions (sid TEXT PRIMARY KEY, user TEXT);" >/dev/null
  write_config "$n" '["cache_*", "sessions"]'
  start_marmot "$n" "$WORK/node$n.toml"
done
db1="$WORK/node1.db"
db2="$WORK/node2.db"

# triggers DB TABLE...: how many triggers DB has on those tables (names compared case-insensitively)
triggers() {
  local db="$1" list=""; shift
  local t
  for t in "$@"; do list+="${list:+, }'$t'"; done
  sql "$db" "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND lower(tbl_name) IN ($list)"
}
# keep_row_arrives FROM TO ID: a keep row written on node FROM is on node TO within 60 s
keep_row_arrives() {
  sql "$WORK/node$1.db" "INSERT INTO keep VALUES ($3, 'written on node $1')"
  seen_within 60 "$WORK/node$2.db" "SELECT v FROM keep WHERE id = $3" "written on node $1" ||
    fail "keep row $3 did not go from node $1 to node $2"
}
rows() { sql "$1" "SELECT group_concat(k, ',') FROM (SELECT $2 AS k FROM $3 ORDER BY 1)"; }  # rows DB KEYCOL TABLE
no_dead_letters() {
  local n
  for n in 1 2; do
    [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] ||
      fail "node $n dead-lettered changes: $(sql "$WORK/node$n.db" "SELECT stream_seq, tbl, op, reason FROM __marmot__dead_letter LIMIT 5")"
  done
}

# keep replicates both ways.
keep_row_arrives 1 2 1
keep_row_arrives 2 1 2

# No capture on the excluded tables (and capture on keep, so the query finds marmot's triggers).
for n in 1 2; do
  [ "$(triggers "$WORK/node$n.db" keep)" -gt 0 ] || fail "node $n has no trigger on keep"
  [ "$(triggers "$WORK/node$n.db" cache_pages cache_thumbs sessions)" = 0 ] ||
    fail "node $n has triggers on excluded tables: $(sql "$WORK/node$n.db" "SELECT name, tbl_name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name <> 'keep'")"
done

# Rows of excluded tables (also the same key with other values on each node): nothing published...
before=$(stream_last marmot-changes-c-1)
sql "$db1" "INSERT INTO cache_pages VALUES ('/a', 'page a of node 1'), ('/only1', 'x');
  INSERT INTO CACHE_Thumbs VALUES (1, x'0101');
  INSERT INTO sessions VALUES ('s-1', 'alice'), ('s-shared', 'node 1');
  UPDATE cache_pages SET body = 'page a of node 1, updated' WHERE url = '/a';"
sql "$db2" "INSERT INTO cache_pages VALUES ('/a', 'page a of node 2'), ('/only2', 'y');
  INSERT INTO sessions VALUES ('s-2', 'bob'), ('s-shared', 'node 2');
  DELETE FROM sessions WHERE sid = 's-2';"
sleep 3
[ "$(stream_last marmot-changes-c-1)" = "$before" ] ||
  fail "writes to excluded tables were published (stream went from $before to $(stream_last marmot-changes-c-1))"
# ... and after later keep rows have gone through, each node still holds only its own rows.
keep_row_arrives 1 2 3
keep_row_arrives 2 1 4
sleep 3
[ "$(rows "$db1" url cache_pages)" = "/a,/only1" ] || fail "node 1 cache_pages: $(sql "$db1" "SELECT * FROM cache_pages")"
[ "$(rows "$db2" url cache_pages)" = "/a,/only2" ] || fail "node 2 cache_pages: $(sql "$db2" "SELECT * FROM cache_pages")"
[ "$(sql "$db1" "SELECT body FROM cache_pages WHERE url = '/a'")" = "page a of node 1, updated" ] || fail "node 1's /a changed"
[ "$(sql "$db2" "SELECT body FROM cache_pages WHERE url = '/a'")" = "page a of node 2" ] || fail "node 2's /a changed"
[ "$(rows "$db2" id CACHE_Thumbs)" = "" ] || fail "node 1's CACHE_Thumbs row reached node 2 (globs are case-insensitive)"
[ "$(rows "$db1" sid sessions)" = "s-1,s-shared" ] || fail "node 1 sessions: $(sql "$db1" "SELECT * FROM sessions")"
[ "$(rows "$db2" sid sessions)" = "s-shared" ] || fail "node 2 sessions: $(sql "$db2" "SELECT * FROM sessions")"
[ "$(sql "$db1" "SELECT user FROM sessions WHERE sid = 's-shared'")" = "node 1" ] || fail "node 1's s-shared changed"
[ "$(sql "$db2" "SELECT user FROM sessions WHERE sid = 's-shared'")" = "node 2" ] || fail "node 2's s-shared changed"

# CREATE TABLE of an excluded name is not replicated; one of another name (made later) is.
sql "$db1" "CREATE TABLE cache_new (k TEXT PRIMARY KEY, v TEXT); INSERT INTO cache_new VALUES ('a', 'b');"
sql "$db1" "CREATE TABLE other (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO other VALUES (1, 'other row');"
seen_within 60 "$db2" "SELECT count(*) FROM sqlite_schema WHERE name = 'other'" 1 || fail "table other did not reach node 2"
seen_within 60 "$db2" "SELECT v FROM other WHERE id = 1" "other row" || fail "other's row did not reach node 2"
keep_row_arrives 1 2 5
sleep 3
[ "$(sql "$db2" "SELECT count(*) FROM sqlite_schema WHERE name = 'cache_new'")" = 0 ] || fail "table cache_new reached node 2"
[ "$(triggers "$db1" cache_new)" = 0 ] || fail "node 1 captures cache_new"
[ "$(triggers "$db1" other)" -gt 0 ] || fail "node 1 does not capture other"
no_dead_letters

# Selection changed on node 1: sessions moves in.
stop_pid "${NODE_PID[1]}"
mv "$WORK/node1.log" "$WORK/node1.first.log"
write_config 1 '["cache_*"]'
start_marmot 1 "$WORK/node1.toml"
line=$(grep "table selection changed" "$WORK/node1.log" || true)
[ -n "$line" ] || fail "node 1 did not log that the table selection changed"
[[ "$line" == *sessions* ]] || fail "node 1's 'table selection changed' line does not name sessions: $line"
[[ "$line" != *cache_pages* ]] || fail "node 1's 'table selection changed' line names cache_pages, which did not move: $line"
seen_within 30 "$db1" "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'sessions'" 1 ||
  fail "node 1 does not capture sessions after the change"
[ "$(triggers "$db1" cache_pages cache_thumbs cache_new)" = 0 ] || fail "node 1 captures cache_* tables after the change"

# While node 2 still excludes sessions, node 1's sessions rows are published but not applied there.
sql "$db1" "INSERT INTO sessions VALUES ('s-while-2-excludes', 'carol')"
keep_row_arrives 1 2 6
sleep 3
[ "$(sql "$db2" "SELECT count(*) FROM sessions WHERE sid = 's-while-2-excludes'")" = 0 ] ||
  fail "node 2 applied a row of sessions, which it excludes"
no_dead_letters

# Selection changed on node 2 too: sessions replicates both ways, cache_* still does not.
stop_pid "${NODE_PID[2]}"
mv "$WORK/node2.log" "$WORK/node2.first.log"
write_config 2 '["cache_*"]'
start_marmot 2 "$WORK/node2.toml"
line=$(grep "table selection changed" "$WORK/node2.log" || true)
[[ "$line" == *sessions* ]] || fail "node 2 did not log a 'table selection changed' line naming sessions: '$line'"
sql "$db1" "INSERT INTO sessions VALUES ('s-10', 'dave')"
sql "$db2" "INSERT INTO sessions VALUES ('s-20', 'erin')"
seen_within 60 "$db2" "SELECT user FROM sessions WHERE sid = 's-10'" dave || fail "node 1's new sessions row did not reach node 2"
seen_within 60 "$db1" "SELECT user FROM sessions WHERE sid = 's-20'" erin || fail "node 2's new sessions row did not reach node 1"
sql "$db1" "INSERT INTO cache_pages VALUES ('/after', 'still local')"
sql "$db2" "INSERT INTO CACHE_Thumbs VALUES (2, x'02')"
keep_row_arrives 1 2 7
keep_row_arrives 2 1 8
sleep 3
[ "$(sql "$db2" "SELECT count(*) FROM cache_pages WHERE url = '/after'")" = 0 ] || fail "cache_pages row reached node 2 after the change"
[ "$(sql "$db1" "SELECT count(*) FROM CACHE_Thumbs WHERE id = 2")" = 0 ] || fail "CACHE_Thumbs row reached node 1 after the change"
[ "$(rows "$db1" id keep)" = "1,2,3,4,5,6,7,8" ] || fail "node 1 keep: $(rows "$db1" id keep)"
[ "$(rows "$db2" id keep)" = "1,2,3,4,5,6,7,8" ] || fail "node 2 keep: $(rows "$db2" id keep)"
no_dead_letters
for n in 1 2; do stop_pid "${NODE_PID[$n]}"; done
pass "excluded tables stay local (not captured, published or applied, not even created elsewhere); a changed selection takes effect at the next start and is logged"
