#!/usr/bin/env bash
# The binary as a user meets it: bad flags and config (exit 2, key named), a non-WAL database
# (switched when marmot is alone, refused when another process holds it), a file that is not a
# database, -cleanup leaving schema and rows exactly as before, the embedded nats-server dying with
# marmot even on SIGKILL, JSON logs, and no nats-server installed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

expect_exit() {  # expect_exit CODE PATTERN CMD...: runs CMD, checks exit code and output
  local code="$1" pattern="$2"; shift 2
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code; output: $out"
  grep -qE -- "$pattern" <<<"$out" || fail "'$*' output lacks /$pattern/: $out"
}

# Flags and config.
expect_exit 2 "unknown flag -bogus" "$MARMOT" -bogus
expect_exit 2 "flag -config needs a value" "$MARMOT" -config
expect_exit 0 "marmot [0-9]" "$MARMOT" -version
expect_exit 0 "-cluster-peers" "$MARMOT" --help
printf 'db_path = "%s/app.db"\nbogus_key = 1\n' "$WORK" >"$WORK/bad1.toml"
expect_exit 2 "unknown key 'bogus_key'" "$MARMOT" -config "$WORK/bad1.toml"
printf '[replication_log]\nshards = 0\n' >"$WORK/bad2.toml"
expect_exit 2 "replication_log.shards = 0 must be at least 1" "$MARMOT" -config="$WORK/bad2.toml"
printf 'db_path = "/no/such/dir/app.db"\n' >"$WORK/bad3.toml"
expect_exit 2 "directory /no/such/dir does not exist" "$MARMOT" --config "$WORK/bad3.toml"
printf '[logging]\nformat = 7\n' >"$WORK/bad4.toml"
expect_exit 2 "logging.format must be a string" "$MARMOT" -config "$WORK/bad4.toml"

# A file that is not a database.
head -c 4096 /dev/urandom >"$WORK/garbage.db"
printf 'db_path = "%s/garbage.db"\n' "$WORK" >"$WORK/garbage.toml"
expect_exit 1 "garbage.db.*(not a database|encrypted)" "$MARMOT" -config "$WORK/garbage.toml"

# A rollback-journal database: switched to WAL when nobody else has it open.
cat >"$WORK/app.toml" <<TOML
db_path = "$WORK/app.db"
node_id = 7
[logging]
format = "json"
TOML
sql "$WORK/app.db" "PRAGMA journal_mode=DELETE;
  CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE, n REAL);
  CREATE INDEX t_n ON t(n);
  CREATE TABLE audit (what TEXT);
  CREATE TRIGGER t_audit AFTER INSERT ON t BEGIN INSERT INTO audit VALUES ('insert ' || NEW.id); END;
  CREATE VIEW t_view AS SELECT id FROM t;
  INSERT INTO t VALUES (1, 'one', 1.5), (2, 'two', NULL);" >/dev/null
schema_before=$(sql "$WORK/app.db" "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name")

start_bg app "$MARMOT" -config "$WORK/app.toml"
pid=$LAST_PID
wait_for 30 "marmot to start" grep -q "node 7 running" "$WORK/app.log"
grep -q "switched .*app.db to WAL" "$WORK/app.log" || fail "no log line about switching to WAL"
[ "$(sql "$WORK/app.db" 'PRAGMA journal_mode')" = wal ] || fail "database not in WAL mode"
# JSON logs: every line is an object with time, level, logger and msg.
python3 - "$WORK/app.log" <<'PY' || fail "log lines are not JSON objects"
import json, sys
for line in open(sys.argv[1]):
    record = json.loads(line)
    assert {"time", "level", "logger", "msg"} <= record.keys(), record
PY
# A node that has published nothing yet stops cleanly (exit 0); then it runs on for the rest.
stop_pid "$pid"
: >"$WORK/app.log"
start_bg app "$MARMOT" -config "$WORK/app.toml"
pid=$LAST_PID
wait_for 30 "marmot to start again" grep -q "node 7 running" "$WORK/app.log"
sql "$WORK/app.db" "INSERT INTO t VALUES (3, 'three', -0.25); UPDATE t SET v = 'uno' WHERE id = 1;"
# SIGKILL: marmot cannot clean up, but its nats-server must not outlive it.
nats_pid=$(pgrep -f "nats-server -c $WORK/nats/marmot-node-7.conf" | head -1)
[ -n "$nats_pid" ] || fail "no embedded nats-server found"
kill -KILL "$pid"
wait_for 10 "nats-server $nats_pid to exit after marmot was killed" bash -c "! kill -0 $nats_pid 2>/dev/null"
wait "$pid" 2>/dev/null || true  # reaped: its database lock is released (the server can exit first)

# -cleanup leaves the application's schema and rows exactly as they were.
rows_before=$(sql "$WORK/app.db" "SELECT * FROM t ORDER BY id; SELECT * FROM audit ORDER BY rowid")
[ "$(sql "$WORK/app.db" "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\_\_marmot\_\_%' ESCAPE '\\'")" -gt 0 ] ||
  fail "capture was not installed"
expect_exit 0 "removed marmot's triggers and tables" "$MARMOT" -config "$WORK/app.toml" -cleanup
[ "$(sql "$WORK/app.db" "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name")" = "$schema_before" ] ||
  fail "schema differs after -cleanup"
[ "$(sql "$WORK/app.db" "SELECT * FROM t ORDER BY id; SELECT * FROM audit ORDER BY rowid")" = "$rows_before" ] ||
  fail "rows differ after -cleanup"
[ "$(sql "$WORK/app.db" "SELECT count(*) FROM t")" = 3 ] || fail "rows lost"
printf 'db_path = "%s/missing.db"\n' "$WORK" >"$WORK/missing.toml"
expect_exit 1 "database .*missing.db does not exist" "$MARMOT" -config "$WORK/missing.toml" -cleanup

# A rollback-journal database that another process has open is refused, with what to do.
sql "$WORK/other.db" "PRAGMA journal_mode=DELETE; CREATE TABLE t (id INTEGER PRIMARY KEY);" >/dev/null
printf 'db_path = "%s/other.db"\n' "$WORK" >"$WORK/other.toml"
# The holder prints a line once its read transaction has the database (SHARED lock until COMMIT).
(echo "BEGIN; SELECT * FROM t; SELECT 'holding the lock';"; sleep 15) | sqlite3 "$WORK/other.db" >"$WORK/holder.out" &
holder=$!
PIDS+=("$holder")
wait_for 10 "the holder to open its read transaction" grep -q "holding the lock" "$WORK/holder.out"
expect_exit 1 "could not be switched to WAL.*Stop the applications" "$MARMOT" -config "$WORK/other.toml"
kill "$holder" 2>/dev/null || true

# No nats-server on PATH: exit 1 at once (not after the 30-s readiness wait), saying what to do.
mkdir -p "$WORK/nopath"
sql "$WORK/nopath/app.db" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY);" >/dev/null
printf 'db_path = "%s/nopath/app.db"\n[snapshot]\nenabled = false\n' "$WORK" >"$WORK/nopath.toml"
started=$SECONDS
expect_exit 1 "cannot run nats-server .*install nats-server" env PATH=/nonexistent "$MARMOT" -config "$WORK/nopath.toml"
[ $((SECONDS - started)) -lt 15 ] || fail "a missing nats-server took $((SECONDS - started)) s to report"

pass "flags, config errors, WAL handling, non-databases, -cleanup, child process on SIGKILL, JSON logs, no nats-server"
