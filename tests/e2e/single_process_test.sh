#!/usr/bin/env bash
# One marmot per database, and starts that fail say why and nothing else:
#   - a second marmot on the same config is refused (before the fix both ran, shared one JetStream
#     store and corrupted the stream), naming the pid of the first; so is -cleanup while it runs;
#   - two databases in one directory under the same node id would share the embedded NATS store:
#     the second is refused;
#   - a start that fails (NATS unreachable) exits 1 without "stopping: publishing what is captured";
#     a SIGTERM during a start that waits stops it at once;
#   - a database directory the user cannot write to gets advice about the directory, not about WAL.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

expect_exit() {  # expect_exit CODE PATTERN CMD...
  local code="$1" pattern="$2"; shift 2
  local out rc=0
  out=$(timeout 30 "$@" 2>&1) || rc=$?
  [ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code; output: $out"
  grep -qE -- "$pattern" <<<"$out" || fail "'$*' output lacks /$pattern/: $out"
  LAST_OUT="$out"
}

sql "$WORK/app.db" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY);" >/dev/null
printf 'db_path = "%s/app.db"\nnode_id = 4\n[snapshot]\nenabled = false\n' "$WORK" >"$WORK/app.toml"
start_bg first "$MARMOT" -config "$WORK/app.toml"
first=$LAST_PID
wait_for 30 "the first marmot to start" grep -q "node 4 running" "$WORK/first.log"

expect_exit 1 "another marmot process \\(pid $first\\) is running on database $WORK/app.db" "$MARMOT" -config "$WORK/app.toml"
expect_exit 1 "-cleanup: another marmot process \\(pid $first\\)" "$MARMOT" -config "$WORK/app.toml" -cleanup
[ "$(sql "$WORK/app.db" "SELECT count(*) FROM sqlite_schema WHERE name = '__marmot__change_log'")" = 1 ] ||
  fail "-cleanup removed capture under a running node"

# Another database in the same directory, same node id: same embedded store directory.
sql "$WORK/other.db" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY);" >/dev/null
printf 'db_path = "%s/other.db"\nnode_id = 4\n[snapshot]\nenabled = false\n' "$WORK" >"$WORK/other.toml"
expect_exit 1 "another marmot process \\(pid $first\\) is running on the embedded NATS store" "$MARMOT" -config "$WORK/other.toml"

# The first one is undisturbed and still replicates its own writes into its stream.
kill -0 "$first" || fail "the first marmot died"
sql "$WORK/app.db" "INSERT INTO t VALUES (1)"
wait_for 10 "the first marmot to publish" bash -c "[ \"\$(sqlite3 '$WORK/app.db' 'SELECT count(*) FROM __marmot__change_log WHERE seq > ifnull((SELECT value FROM __marmot__state WHERE name = \"reader_confirmed_seq\"), 0)')\" = 0 ] || grep -q 'published' '$WORK/first.log'"
stop_pid "$first"

# After it stopped (or was killed), the lock is free again.
start_bg second "$MARMOT" -config "$WORK/app.toml"
second=$LAST_PID
wait_for 30 "marmot to start after the first stopped" grep -q "node 4 running" "$WORK/second.log"
kill -KILL "$second"
wait "$second" 2>/dev/null || true
: >"$WORK/second.log"
start_bg second "$MARMOT" -config "$WORK/app.toml"
second=$LAST_PID
wait_for 30 "marmot to start after a SIGKILL" grep -q "node 4 running" "$WORK/second.log"
stop_pid "$second"

# A start that fails says why, and does not pretend to stop a running node.
printf 'db_path = "%s/app.db"\n[nats]\nurls = ["nats://127.0.0.1:%s"]\nconnect_retries = 0\n' "$WORK" "$(free_port)" >"$WORK/nonats.toml"
expect_exit 1 "cannot connect to NATS" "$MARMOT" -config "$WORK/nonats.toml"
if grep -q "stopping: publishing" <<<"$LAST_OUT"; then fail "a failed start logged a stop of a running node: $LAST_OUT"; fi

# A signal while the start waits (here: for an R3 stream a single server can never hold) stops it
# at once, exit 0.
setup_nats
printf 'db_path = "%s/app.db"\n[nats]\nurls = ["%s"]\n[replication_log]\nreplicas = 3\n' "$WORK" "$NATS_URL" >"$WORK/r3.toml"
start_bg r3 "$MARMOT" -config "$WORK/r3.toml"
r3=$LAST_PID
wait_for 30 "the start to wait for the stream" grep -q "retrying" "$WORK/r3.log"
kill -TERM "$r3"
for _ in $(seq 1 30); do kill -0 "$r3" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$r3" 2>/dev/null; then fail "SIGTERM did not stop a start that waits"; fi
rc=0
wait "$r3" || rc=$?
[ "$rc" = 0 ] || fail "a start stopped by SIGTERM exited $rc"
grep -q "stopped during start" "$WORK/r3.log" || fail "no log line about the stop during start"

# A directory the user cannot write to.
mkdir -p "$WORK/ro"
sql "$WORK/ro/app.db" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY);" >/dev/null
chmod 755 "$WORK" "$WORK/ro"
chmod 644 "$WORK/ro/app.db"
printf 'db_path = "%s/ro/app.db"\n' "$WORK" >"$WORK/ro.toml"
chmod 644 "$WORK/ro.toml"
expect_exit 1 "directory $WORK/ro of database .* is not writable" setpriv --reuid=65534 --regid=65534 --clear-groups "$MARMOT" -config "$WORK/ro.toml"
if grep -qE "journal_mode|switched to WAL" <<<"$LAST_OUT"; then fail "the advice for an unwritable directory is about WAL: $LAST_OUT"; fi

pass "one marmot per database and per NATS store; failed starts say why"
