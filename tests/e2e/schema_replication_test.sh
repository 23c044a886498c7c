#!/usr/bin/env bash
# Online schema changes (issue 12): three nodes on one external nats-server, an application writer
# on every node inserting unique rows all the time, and schema changes made by any client on any
# node while everything runs (no restart). After each phase `marmot verify` must agree while the
# writers still write; then the writers pause and the three nodes must end with the same
# application objects in sqlite_schema (marmot's and SQLite's own left out), the same rows, and no
# dead letters:
#   a. ADD COLUMN with a default on node 1; then every writer writes the new column.
#   b. CREATE TABLE t2 on nodes 1 and 2 at once, with a row inserted in the same transaction as the
#      CREATE on node 1; writers on nodes 1 and 2 write into t2 from then on.
#   c. CREATE INDEX, VIEW and TRIGGER on node 3.
#   d. RENAME COLUMN v TO val on node 2; every writer switches to val at once (nodes 1 and 3 retry
#      until the rename reaches them: their rows written under the old name must wait, not die).
#   e. DROP TABLE and DROP COLUMN on node 1.
#   f. the same migration run by the application on all three nodes at the same moment (where
#      another node's identical ALTER arrived first, the application's fails with "duplicate column
#      name", as a migration tool that checks first would avoid: tolerated, the end state checked).
#   g. node 3 stopped; node 1 adds a column, creates a table, renames a column, a table, drops an
#      index, while nodes 1 and 2 write with the new schema; node 3 restarted catches up and writes
#      with the new schema too.
# Then `marmot verify -nodes 3` agrees, and every row any writer committed is on every node.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
CTL="$WORK/ctl"  # the writers' control files: stmt.N, pause.N, paused.N, ids.N, stop
mkdir -p "$CTL"

# The application: one writer per node, one transaction per round. It reads the statements to run
# from $CTL/stmt.N each round (one "TABLE<tab>SQL" per line, parameters :id, :node, :n), so the
# test can make it follow the schema; a failing round (no such column or table while a schema
# change is on its way, a busy database) is rolled back and retried after 0.2 s, and only committed
# rounds count: each committed row's table and id is appended to $CTL/ids.N. While $CTL/pause.N
# exists it writes nothing and says so with $CTL/paused.N; $CTL/stop ends it.
cat >"$WORK/schema_writer.py" <<'PY'
import os
import sqlite3
import sys
import time


def write(db, node, ctl):
    conn = sqlite3.connect(db, timeout=10, isolation_level=None)
    stmt_file, pause, paused = ["%s/%s.%d" % (ctl, f, node) for f in ("stmt", "pause", "paused")]
    ids = open("%s/ids.%d" % (ctl, node), "a")
    i = commits = 0
    errors = {}
    while not os.path.exists(ctl + "/stop"):
        if os.path.exists(pause):
            if not os.path.exists(paused):
                open(paused, "w").close()
            time.sleep(0.05)
            continue
        if os.path.exists(paused):
            os.remove(paused)
        with open(stmt_file) as f:
            lines = [l.rstrip("\n").split("\t", 1) for l in f if l.strip()]
        i += 1
        key = "%d-%d" % (node, i)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for table, sql in lines:
                conn.execute(sql, {"id": key, "node": node, "n": i})
            conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            msg = str(e)
            errors[msg] = errors.get(msg, 0) + 1
            if errors[msg] == 1:
                print("%.3f writer %d: %s (retrying)" % (time.time(), node, msg), file=sys.stderr, flush=True)
            time.sleep(0.2)
            continue
        commits += 1
        for table, _ in lines:
            ids.write("%s\t%s\n" % (table, key))
        ids.flush()
        time.sleep(0.02)
    print("writer %d: %d commits, retried %s" % (node, commits, errors or "never"), file=sys.stderr, flush=True)


def check(db, ctl):
    """Every row recorded in ctl/ids.* is in db; prints what is missing, exit status 1 if any."""
    want = {}
    for name in sorted(os.listdir(ctl)):
        if name.startswith("ids."):
            with open(os.path.join(ctl, name)) as f:
                for line in f:
                    table, key = line.rstrip("\n").split("\t")
                    want.setdefault(table, set()).add(key)
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    missing = 0
    for table, keys in sorted(want.items()):
        have = {r[0] for r in conn.execute('SELECT id FROM "%s"' % table)}
        lost = sorted(keys - have)
        missing += len(lost)
        print("%s: %s: %d of %d committed rows present%s" % (
            db, table, len(keys) - len(lost), len(keys), ", missing e.g. %s" % lost[:5] if lost else ""))
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown mode " + sys.argv[1])
PY

for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL;
    CREATE TABLE base (id TEXT PRIMARY KEY, node INTEGER, v TEXT, old TEXT);
    CREATE TABLE gone (id INTEGER PRIMARY KEY, v TEXT);
    CREATE INDEX gone_v ON gone (v);" >/dev/null
  write_node_config "$n"
done

# app_schema DB: the application's objects in sqlite_schema, marmot's and SQLite's own left out.
app_schema() {
  sql "$1" "SELECT type, name, tbl_name, sql FROM sqlite_schema
    WHERE substr(name, 1, 10) <> '__marmot__' AND substr(name, 1, 7) <> 'sqlite_' ORDER BY type, name"
}
identical() {  # the three nodes have the same application schema and the same rows
  local first n
  first=$(app_schema "$WORK/node1.db")
  for n in 2 3; do [ "$(app_schema "$WORK/node$n.db")" = "$first" ] || return 1; done
  same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db"
}
converge() {  # converge PHASE: the three nodes identical within 60 s, or fail showing how they differ
  local deadline=$((SECONDS + 60)) n
  until identical; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      for n in 2 3; do
        echo "== schema, node 1 vs node $n" >&2
        diff <(app_schema "$WORK/node1.db") <(app_schema "$WORK/node$n.db") >&2 || true
        echo "== rows, node 1 vs node $n (first lines)" >&2
        diff <(dump_db "$WORK/node1.db") <(dump_db "$WORK/node$n.db") >"$WORK/diff-1-$n.txt" || true
        head -n 20 "$WORK/diff-1-$n.txt" >&2
      done
      fail "phase $1: the three nodes are not identical after 60 s"
    fi
    sleep 0.5
  done
}
no_dead_letters() {  # no_dead_letters PHASE: no node dead-lettered anything, none recorded a gap
  local n
  for n in 1 2 3; do
    [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] ||
      fail "phase $1: node $n dead-lettered changes: $(sql "$WORK/node$n.db" "SELECT stream_seq, tbl, op, reason FROM __marmot__dead_letter LIMIT 5")"
    [ "$(sql "$WORK/node$n.db" "SELECT count(*) FROM __marmot__gaps")" = 0 ] || fail "phase $1: node $n recorded gaps"
  done
}
expect_all() {  # expect_all WHAT SQL EXPECTED: SQL prints EXPECTED on every node
  local n got
  for n in 1 2 3; do
    got=$(sql "$WORK/node$n.db" "$2")
    [ "$got" = "$3" ] || fail "node $n: $1: got '$got', expected '$3'"
  done
}
has_column() {  # has_column TABLE COLUMN: the SQL that prints 1 when TABLE has COLUMN
  echo "SELECT count(*) FROM pragma_table_info('$1') WHERE name = '$2'"
}

# The writers.
set_writes() {  # set_writes "NODES" TABLE SQL [TABLE SQL]...: what the writers on NODES commit each round
  local nodes="$1" body="" n
  shift
  while [ $# -gt 0 ]; do body+="$1"$'\t'"$2"$'\n'; shift 2; done
  for n in $nodes; do
    printf '%s' "$body" >"$CTL/stmt.$n.tmp"
    mv "$CTL/stmt.$n.tmp" "$CTL/stmt.$n"
  done
}
commits() {  # commits N: rounds writer N committed (each round writes base)
  if [ -e "$CTL/ids.$1" ]; then grep -c "^base"$'\t' "$CTL/ids.$1" || true; else echo 0; fi
}
committed_at_least() { [ "$(commits "$1")" -ge "$2" ]; }
writes_go_on() {  # writes_go_on "NODES" K: every writer on NODES commits K more rounds (within 60 s)
  local n
  local -a start=()
  for n in $1; do start[n]=$(commits "$n"); done
  for n in $1; do
    wait_for 60 "writer $n to commit $2 more rounds (see writer$n.log)" committed_at_least "$n" $((start[n] + $2))
  done
}
pause_writers() {  # pause_writers "NODES": each stops between two rounds
  local n
  for n in $1; do touch "$CTL/pause.$n"; done
  for n in $1; do wait_for 30 "writer $n to pause" test -e "$CTL/paused.$n"; done
}
resume_writers() {  # resume_writers "NODES"
  local n
  for n in $1; do rm -f "$CTL/pause.$n"; done
  for n in $1; do wait_for 30 "writer $n to resume" test ! -e "$CTL/paused.$n"; done
}
checkpoint() {  # checkpoint PHASE: verify agrees while the writers write; then writers paused, three identical nodes, no dead letters
  local rc=0
  "$MARMOT" verify -config "$WORK/node1.toml" -nodes 3 -wait 60 >"$WORK/verify-$1.log" 2>&1 || rc=$?
  [ "$rc" = 0 ] || fail "phase $1: verify while the writers write exited $rc: $(cat "$WORK/verify-$1.log")"
  pause_writers "1 2 3"
  converge "$1"
  no_dead_letters "$1"
  echo "phase $1: identical, $(sql "$WORK/node1.db" "SELECT count(*) FROM base") rows in base, no dead letters"
}
sql_bg() {  # sql_bg NAME DB SQL: the sqlite3 CLI in the background (log NAME.log); sets LAST_PID
  start_bg "$1" sqlite3 -bail -cmd ".timeout 10000" "$2" "$3"
}

for n in 1 2 3; do start_marmot "$n" "$WORK/node$n.toml"; done
sql "$WORK/node1.db" "INSERT INTO gone VALUES (1, 'one'), (2, 'two'), (3, 'three');"
converge "start"

BASE_START="INSERT INTO base (id, node, v) VALUES (:id, :node, 'start:' || :n)"
set_writes "1 2 3" base "$BASE_START"
WRITER_PIDS=()
for n in 1 2 3; do
  start_bg "writer$n" /usr/bin/python3 "$WORK/schema_writer.py" write "$WORK/node$n.db" "$n" "$CTL"
  WRITER_PIDS+=("$LAST_PID")
done
writes_go_on "1 2 3" 20

# a. ADD COLUMN with a default, on node 1; once every node has it, every writer writes it.
sql "$WORK/node1.db" "ALTER TABLE base ADD COLUMN extra INTEGER NOT NULL DEFAULT 7"
for n in 1 2 3; do
  seen_within 60 "$WORK/node$n.db" "$(has_column base extra)" 1 || fail "node $n did not get column base.extra"
done
BASE_A="INSERT INTO base (id, node, v, extra) VALUES (:id, :node, 'a:' || :n, 100 + :n % 10)"
set_writes "1 2 3" base "$BASE_A"
writes_go_on "1 2 3" 20
checkpoint a
expect_all "base.extra as declared" "SELECT type || ' ' || \"notnull\" || ' ' || dflt_value FROM pragma_table_info('base') WHERE name = 'extra'" "INTEGER 1 7"
expect_all "rows with extra written on every node" "SELECT count(DISTINCT node) FROM base WHERE extra >= 100" 3
expect_all "older rows read the default" "SELECT count(*) FROM base WHERE v LIKE 'start:%' AND extra <> 7" 0
resume_writers "1 2 3"

# b. CREATE TABLE t2 on nodes 1 and 2 at once (node 1 inserts a row in the same transaction);
# writers on nodes 1 and 2 write into it from then on.
T2="CREATE TABLE IF NOT EXISTS t2 (id TEXT PRIMARY KEY, node INTEGER, note TEXT)"
sql_bg create1 "$WORK/node1.db" "BEGIN; $T2; INSERT INTO t2 VALUES ('create-1', 1, 'same transaction as the CREATE'); COMMIT;"
create1=$LAST_PID
sql_bg create2 "$WORK/node2.db" "$T2;"
create2=$LAST_PID
wait "$create1" || fail "CREATE TABLE t2 on node 1 failed: $(cat "$WORK/create1.log")"
wait "$create2" || fail "CREATE TABLE t2 on node 2 failed: $(cat "$WORK/create2.log")"
T2_B="INSERT INTO t2 (id, node, note) VALUES (:id, :node, 'b:' || :n)"
set_writes "1 2" base "$BASE_A" t2 "$T2_B"
writes_go_on "1 2 3" 20
checkpoint b
expect_all "table t2" "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 't2'" 1
expect_all "the row inserted with the CREATE" "SELECT note FROM t2 WHERE id = 'create-1'" "same transaction as the CREATE"
expect_all "t2 rows of both writers" "SELECT count(DISTINCT node) FROM t2 WHERE note LIKE 'b:%'" 2
resume_writers "1 2 3"

# c. CREATE INDEX, VIEW and TRIGGER on node 3.
sql "$WORK/node3.db" "CREATE INDEX base_node ON base (node, extra);
  CREATE VIEW base_per_node AS SELECT node, count(*) AS rows_written FROM base GROUP BY node;
  CREATE TRIGGER base_check BEFORE INSERT ON base WHEN NEW.node < 0 BEGIN SELECT RAISE(ABORT, 'negative node'); END;"
writes_go_on "1 2 3" 10
checkpoint c
expect_all "index, view and trigger" "SELECT group_concat(type || ' ' || name, ', ') FROM (SELECT type, name FROM sqlite_schema WHERE name IN ('base_node', 'base_per_node', 'base_check') ORDER BY name)" \
  "trigger base_check, index base_node, view base_per_node"
expect_all "the view works" "SELECT (SELECT sum(rows_written) FROM base_per_node) = (SELECT count(*) FROM base)" 1
resume_writers "1 2 3"

# d. RENAME COLUMN v TO val on node 2; every writer writes val from now on (nodes 1 and 3 retry
# until the rename arrives).
sql "$WORK/node2.db" "ALTER TABLE base RENAME COLUMN v TO val"
BASE_D="INSERT INTO base (id, node, val, extra) VALUES (:id, :node, 'd:' || :n, 100 + :n % 10)"
set_writes "1 2" base "$BASE_D" t2 "$T2_B"
set_writes "3" base "$BASE_D"
writes_go_on "1 2 3" 20
checkpoint d
expect_all "base.val instead of base.v" "SELECT group_concat(name, ',') FROM pragma_table_info('base') WHERE name IN ('v', 'val')" val
expect_all "rows under the new name from every writer" "SELECT count(DISTINCT node) FROM base WHERE val LIKE 'd:%'" 3
expect_all "rows from before the rename kept their values" "SELECT count(*) FROM base WHERE val IS NULL" 0
resume_writers "1 2 3"

# e. DROP TABLE gone (and its index) and DROP COLUMN base.old on node 1.
sql "$WORK/node1.db" "DROP TABLE gone; ALTER TABLE base DROP COLUMN old;"
writes_go_on "1 2 3" 10
checkpoint e
expect_all "table gone and its index dropped" "SELECT count(*) FROM sqlite_schema WHERE name IN ('gone', 'gone_v')" 0
expect_all "column base.old dropped" "$(has_column base old)" 0
resume_writers "1 2 3"

# f. The same migration by every node's application at the same moment.
MIG="ALTER TABLE base ADD COLUMN m TEXT DEFAULT 'x'; CREATE TABLE IF NOT EXISTS mig (id INTEGER PRIMARY KEY, note TEXT);"
MIG_PIDS=()
for n in 1 2 3; do
  sql_bg "mig$n" "$WORK/node$n.db" "$MIG"
  MIG_PIDS[n]=$LAST_PID
done
for n in 1 2 3; do
  rc=0
  wait "${MIG_PIDS[n]}" || rc=$?
  echo "phase f: the migration on node $n exited $rc $(tr '\n' ' ' <"$WORK/mig$n.log")"
done
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM sqlite_schema WHERE name = 'mig'" 1 || fail "node 2 has no table mig"
sql "$WORK/node2.db" "INSERT INTO mig VALUES (2, 'written on node 2 after the migration')"
writes_go_on "1 2 3" 10
checkpoint f
expect_all "base.m as declared" "SELECT type || ' ' || dflt_value FROM pragma_table_info('base') WHERE name = 'm'" "TEXT 'x'"
expect_all "every row reads m = 'x'" "SELECT count(*) FROM base WHERE m IS NOT 'x'" 0
expect_all "the row in mig" "SELECT note FROM mig" "written on node 2 after the migration"
resume_writers "1 2 3"

# g. Node 3 stopped while node 1 migrates and nodes 1 and 2 write with the new schema; node 3
# restarted catches up, then writes with the new schema too.
pause_writers "3"
stop_pid "${NODE_PID[3]}"
mv "$WORK/node3.log" "$WORK/node3.first.log"
sql "$WORK/node1.db" "ALTER TABLE base ADD COLUMN late INTEGER"
sql "$WORK/node1.db" "CREATE TABLE t3 (id TEXT PRIMARY KEY, node INTEGER, w TEXT)"
sql "$WORK/node1.db" "ALTER TABLE t2 RENAME COLUMN note TO remark"
sql "$WORK/node1.db" "ALTER TABLE mig RENAME TO mig_done"
sql "$WORK/node1.db" "DROP INDEX base_node"
BASE_G="INSERT INTO base (id, node, val, extra, late) VALUES (:id, :node, 'g:' || :n, 100 + :n % 10, :n)"
T2_G="INSERT INTO t2 (id, node, remark) VALUES (:id, :node, 'g:' || :n)"
T3_G="INSERT INTO t3 (id, node, w) VALUES (:id, :node, 'g:' || :n)"
set_writes "1 2 3" base "$BASE_G" t2 "$T2_G" t3 "$T3_G"
writes_go_on "1 2" 20
start_marmot 3 "$WORK/node3.toml"
seen_within 60 "$WORK/node3.db" "SELECT count(*) FROM sqlite_schema WHERE name = 't3'" 1 || fail "node 3 did not catch up with table t3"
resume_writers "3"
writes_go_on "1 2 3" 10
checkpoint g
expect_all "base.late" "$(has_column base late)" 1
expect_all "t2.note renamed to t2.remark" "SELECT group_concat(name, ',') FROM pragma_table_info('t2') WHERE name IN ('note', 'remark')" remark
expect_all "mig renamed to mig_done, index base_node dropped" \
  "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema WHERE name IN ('mig', 'mig_done', 'base_node') ORDER BY name)" mig_done
expect_all "rows of t3 from every writer" "SELECT count(DISTINCT node) FROM t3" 3
expect_all "rows written with late from every writer" "SELECT count(DISTINCT node) FROM base WHERE late IS NOT NULL" 3

# The end: writers stopped, verify agrees, every committed row is on every node.
touch "$CTL/stop"
for pid in "${WRITER_PIDS[@]}"; do wait "$pid" || fail "a writer failed (see writer*.log)"; done
rc=0
"$MARMOT" verify -config "$WORK/node1.toml" -nodes 3 -wait 120 >"$WORK/verify.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "verify exited $rc: $(cat "$WORK/verify.log")"
for n in 1 2 3; do
  /usr/bin/python3 "$WORK/schema_writer.py" check "$WORK/node$n.db" "$CTL" >"$WORK/check$n.log" 2>&1 ||
    fail "node $n lacks committed rows: $(cat "$WORK/check$n.log")"
done
cat "$WORK/check1.log"
no_dead_letters "end"
for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
pass "schema changes on any node, while writers write, reach every node: one schema, the same rows, no dead letters, verify agrees"
