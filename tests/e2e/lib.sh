# Shared helpers for the end-to-end tests. Source it; it sets `set -euo pipefail`, makes a temp
# dir ($WORK), and on exit stops every process started with `start_bg` (by PID) and removes $WORK
# (kept when KEEP_WORK=1 or the test failed, for inspection).
set -euo pipefail
MARMOT="${1:?usage: $0 path/to/marmot}"
WORK="$(mktemp -d /tmp/marmot-e2e-XXXXXX)"
PIDS=()
FAILED=1

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ] || [ "$FAILED" = 1 ]; then
    echo "FAILED (work dir kept: $WORK); last log lines:" >&2
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 30 "$f" >&2; }; done
  elif [ "${KEEP_WORK:-0}" != 1 ]; then
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { FAILED=0; echo "PASS: $*"; }

# Ports come from below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default):
# a port the kernel handed out for a moment can go to any outgoing connection of a test running in
# parallel before our server binds it; a random port below that range can only collide with another
# test's random pick. free_port: one such port, free now; free_port_pair: two consecutive ones
# (cluster port and its leaf-node port + 1). tests/common/loopback_ports.h is the same rule in C++.
free_port() { free_ports 1; }
free_port_pair() { free_ports 2; }
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
count = int(sys.argv[1])
low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
first, last = (10000, low - count) if low > 11000 else (high + 1, 65535 - count)
while True:
    port = random.randrange(first, last)
    try:
        for p in range(port, port + count):
            s = socket.socket(); s.bind(("127.0.0.1", p)); s.close()
        print(port); break
    except OSError:
        pass
PY
}

# start_bg NAME CMD...: runs CMD in the background, output to $WORK/NAME.log; sets LAST_PID.
start_bg() {
  local name="$1"; shift
  "$@" >>"$WORK/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# A process that aborts or crashes leaves a core (core_pattern permitting) that stop_pid turns into
# backtraces; a process that hangs gets its stacks printed by dump_stacks (both need gdb).
ulimit -c unlimited 2>/dev/null || true
dump_stacks() {  # dump_stacks PID: every thread's backtrace, to stderr
  command -v gdb >/dev/null || return 0
  echo "== stacks of process $1" >&2
  gdb -p "$1" -batch -ex "thread apply all bt" 2>/dev/null | grep -E "^Thread|^#" >&2 || true
}
dump_core() {  # dump_core PID: the backtraces in the core a crashed process left here, to stderr
  local core
  for core in "core.$1" core; do
    [ -f "$core" ] && command -v gdb >/dev/null || continue
    echo "== backtraces from $core (process $1)" >&2
    gdb -batch -ex "thread apply all bt" "$MARMOT" "$core" 2>/dev/null | grep -E "^Thread|^#" >&2 || true
    mv "$core" "$WORK/core.$1"
    return 0
  done
}

stop_pid() {  # stop_pid PID: SIGTERM, wait for it to exit, and require exit status 0
  local pid="$1" rc=0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" || rc=$?
      [ "$rc" -lt 128 ] || dump_core "$pid"
      [ "$rc" = 0 ] || fail "process $pid exited with status $rc after SIGTERM (sanitizer report or error in its log)"
      return 0
    fi
    sleep 0.1
  done
  dump_stacks "$pid"
  fail "process $pid did not stop within 30 s"
}

# wait_for SECONDS DESCRIPTION CMD...: retries CMD until it succeeds.
wait_for() {
  local seconds="$1" what="$2"; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${seconds}s waiting for: $what"
    sleep 0.2
  done
}

sql() { sqlite3 -cmd ".timeout 10000" "$@"; }

# seen_within SECONDS DB SQL EXPECTED: runs SQL on DB every 50 ms until it prints EXPECTED; false
# after SECONDS. (Not `wait_for ... test "$(sql ...)"`: that runs the query once, before waiting.)
seen_within() {
  local deadline=$((SECONDS + $1))
  until [ "$(sql "$2" "$3")" = "$4" ]; do
    [ "$SECONDS" -le "$deadline" ] || return 1
    sleep 0.05
  done
}

# A dump of every row of every table (marmot's own excluded), each value as typeof:quote(value)
# (quote() of a REAL round-trips exactly), ordered by the table's first columns.
dump_db() {
  local db="$1" t cols q
  local tables
  tables=$(sql "$db" "SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite%' AND substr(name,1,10) <> '__marmot__' ORDER BY name")
  while IFS= read -r t; do
    [ -n "$t" ] || continue
    q="\"${t//\"/\"\"}\""
    cols=$(sql "$db" "SELECT group_concat('typeof(\"' || replace(name, '\"', '\"\"') || '\") || '':'' || quote(\"' || replace(name, '\"', '\"\"') || '\")', ' || ''|'' || ') FROM pragma_table_info(${t@Q})")
    echo "== $t"
    sql "$db" "SELECT $cols FROM $q ORDER BY 1"
  done <<<"$tables"
}

same_dbs() {  # same_dbs DB...: true when every DB's dump equals the first one's
  local first; first=$(dump_db "$1")
  shift
  for db in "$@"; do [ "$(dump_db "$db")" = "$first" ] || return 1; done
}

# An external nats-server with JetStream on a random loopback port, its store in $WORK/js:
# sets NATS_PORT and NATS_URL; start_nats (again after a kill) sets NATS_PID.
NATS_TOOL="$(dirname "${BASH_SOURCE[0]}")/nats_tool.py"
setup_nats() {
  NATS_PORT=$(free_port)
  NATS_URL="nats://127.0.0.1:$NATS_PORT"
  mkdir -p "$WORK/js"
  printf 'listen: "127.0.0.1:%s"\njetstream { store_dir: "%s/js" }\n' "$NATS_PORT" "$WORK" >"$WORK/nats.conf"
  start_nats
}
start_nats() { start_bg nats nats-server -c "$WORK/nats.conf"; NATS_PID=$LAST_PID; }

# stream_last STREAM: the stream's last sequence on $NATS_URL (or on $2).
stream_last() {
  /usr/bin/python3 "$NATS_TOOL" stream-info "${2:-$NATS_URL}" "$1" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["last_seq"])'
}

# start_cluster_node N CONFIG COUNT: node N of COUNT nodes with embedded servers clustered over
# loopback, on the ports in CLUSTER_PORT[1..COUNT] (free_port_pair each); sets NODE_PID[N].
start_cluster_node() {
  local n="$1" config="$2" count="$3" peers="" m
  for m in $(seq 1 "$count"); do
    [ "$m" = "$n" ] && continue
    peers+="${peers:+,}nats://127.0.0.1:${CLUSTER_PORT[$m]}/"
  done
  start_bg "node$n" "$MARMOT" -config "$config" -cluster-addr "127.0.0.1:${CLUSTER_PORT[$n]}" -cluster-peers "$peers"
  NODE_PID[$n]=$LAST_PID
}

# write_node_config N [LINE...]: $WORK/nodeN.toml for node N on $NATS_URL (setup_nats), database
# $WORK/nodeN.db, snapshots off. The LINEs before the first "[section]" line are top-level keys
# (e.g. 'cleanup_interval = 500'); that line and the rest are appended as they are (more sections).
write_node_config() {
  local n="$1"; shift
  {
    printf 'db_path = "%s"\nnode_id = %s\n' "$WORK/node$n.db" "$n"
    while [ $# -gt 0 ] && [ "${1#[}" = "$1" ]; do printf '%s\n' "$1"; shift; done
    printf '[nats]\nurls = ["%s"]\n[snapshot]\nenabled = false\n' "$NATS_URL"
    local line
    for line in "$@"; do printf '%s\n' "$line"; done
  } >"$WORK/node$n.toml"
}

# start_nodes COUNT SQL [LINE...]: nodes 1..COUNT on $NATS_URL (setup_nats), each database made in
# WAL mode with SQL, configured by write_node_config with the LINEs, started in turn (start_marmot).
start_nodes() {
  local count="$1" schema="$2" n
  shift 2
  for n in $(seq 1 "$count"); do
    sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; $schema" >/dev/null
    write_node_config "$n" "$@"
    start_marmot "$n" "$WORK/node$n.toml"
  done
}

# snapshot_covers SEQ [LOG...]: some node's log ($WORK/node*.log unless given) says it saved a
# snapshot whose position in stream marmot-changes-c-1 is at least SEQ.
snapshot_covers() {
  local want="$1"; shift
  [ $# -gt 0 ] || set -- "$WORK"/node*.log
  grep -ho "saved snapshot .* positions marmot-changes-c-1=[0-9]*" "$@" 2>/dev/null |
    sed 's/.*=//' | awk -v want="$want" '$1 >= want { found = 1 } END { exit !found }'
}

# start_marmot N CONFIG: node N in the background (log $WORK/nodeN.log, pid NODE_PID[N]), waits
# until it runs.
start_marmot() {
  start_bg "node$1" "$MARMOT" -config "$2"
  NODE_PID[$1]=$LAST_PID
  wait_for 90 "node $1 to start" grep -q "node .* running on" "$WORK/node$1.log"
}
