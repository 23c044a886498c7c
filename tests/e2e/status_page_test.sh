#!/usr/bin/env bash
# Cluster status: three clustered nodes put heartbeats into the status bucket. `marmot status`
# lists all three as ready (exit 0); a gap recorded on node 2 shows it NOT READY with the reason
# (exit 1). Node 1's status page, opened in real headless Chromium, shows the three nodes, a lag
# chart with data, and the dead letter node 1 recorded; the screenshot is kept in
# build/test-artifacts/status-page.png.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || fail "chromium is missing (scripts/setup.sh installs Debian's chromium)"
ARTIFACTS="$(cd "$(dirname "$MARMOT")" && pwd)/test-artifacts"
mkdir -p "$ARTIFACTS"

for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  CLUSTER_PORT[$n]=$(free_port_pair)
  HTTP_PORT[$n]=$(free_port)
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
[replication_log]
replicas = 3
[snapshot]
enabled = false
[prometheus]
enable = true
bind = "127.0.0.1:${HTTP_PORT[$n]}"
TOML
done
sql "$WORK/node3.db" "CREATE TABLE solo (id INTEGER PRIMARY KEY, v TEXT);"  # node 3 only: node 1 dead-letters its rows
for n in 1 2 3; do start_cluster_node "$n" "$WORK/node$n.toml" 3; done
for n in 1 2 3; do wait_for 90 "node $n to start" grep -q "node $n running" "$WORK/node$n.log"; done

for i in $(seq 1 20); do sql "$WORK/node$((i % 3 + 1)).db" "INSERT INTO items VALUES ($i, 'v$i');"; done
sql "$WORK/node3.db" "INSERT INTO solo VALUES (1, 'only on node 3');"
seen_within 30 "$WORK/node1.db" "SELECT count(*) FROM __marmot__dead_letter WHERE tbl = 'solo'" 1 || fail "no dead letter on node 1"

# `marmot status` from node 1's configuration (the embedded server's URL is found next to the database).
status_says() {  # status_says SECONDS EXIT PATTERN...: until `marmot status` exits EXIT and prints every PATTERN
  local deadline=$((SECONDS + $1)) want="$2" rc p ok
  shift 2
  while true; do
    rc=0
    "$MARMOT" status -config "$WORK/node1.toml" >"$WORK/status.txt" 2>&1 || rc=$?
    ok=1
    [ "$rc" = "$want" ] || ok=0
    for p in "$@"; do grep -q -- "$p" "$WORK/status.txt" || ok=0; done
    [ "$ok" = 1 ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || fail "marmot status (exit $rc, wanted $want): $(cat "$WORK/status.txt")"
    sleep 0.5
  done
}
status_says 30 0 "^node 1 " "^node 2 " "^node 3 " "3 node(s), 0 not ready"
cat "$WORK/status.txt"

# The page, once every node has at least two lag samples.
samples() {
  curl -sf "http://127.0.0.1:${HTTP_PORT[1]}/status.json" |
    /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); h=d["lag_history"]; print(min([len(v) for v in h.values()] or [0]) if len(h)==3 else 0)'
}
deadline=$((SECONDS + 30))
until [ "$(samples || echo 0)" -ge 2 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "/status.json has no lag history for 3 nodes: $(curl -s "http://127.0.0.1:${HTTP_PORT[1]}/status.json")"
  sleep 0.5
done
URL="http://127.0.0.1:${HTTP_PORT[1]}/status"
chrome() {
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
    --user-data-dir="$WORK/chrome" --virtual-time-budget=5000 "$@" "$URL" 2>>"$WORK/chromium.log"
}
chrome --dump-dom >"$WORK/page.html" || fail "chromium failed: $(tail -5 "$WORK/chromium.log")"
/usr/bin/python3 - "$WORK/page.html" <<'PY' || fail "the page does not show what it should (DOM in $WORK/page.html)"
import re, sys
dom = open(sys.argv[1], encoding="utf-8").read()
rows = re.findall(r'<tr class="node-row" data-node="(\d+)"', dom)
assert sorted(rows) == ["1", "2", "3"], f"node rows: {rows}"
assert dom.count('>ready<') == 3, "not every node shows ready"
lines = re.findall(r'<polyline class="lag-line"[^>]*points="([^"]*)"', dom)
assert len(lines) == 3, f"{len(lines)} lag lines"
for points in lines:
    assert len(points.split()) >= 2, f"a lag line with fewer than 2 points: {points!r}"
assert 'class="dead-letter-row"' in dom and "solo" in dom, "the dead letter is not listed"
print("page: 3 node rows, 3 lag lines, the dead letter")
PY
chrome --screenshot="$ARTIFACTS/status-page.png" --window-size=1100,900 >/dev/null || fail "no screenshot"
[ -s "$ARTIFACTS/status-page.png" ] || fail "empty screenshot"
echo "screenshot: $ARTIFACTS/status-page.png"

# A node that is not ready says so in `marmot status`, with the reason, and the exit code is 1.
sql "$WORK/node2.db" "INSERT INTO __marmot__gaps(stream, first_missing, last_missing, reason) VALUES ('marmot-changes-c-1', 5, 9, 'test');"
status_says 20 1 "NOT READY" "gap(s) recorded" "3 node(s), 1 not ready"
cat "$WORK/status.txt"

for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
rc=0
"$MARMOT" status -config "$WORK/node1.toml" >"$WORK/status.txt" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "marmot status with no node running should exit 2, got $rc: $(cat "$WORK/status.txt")"
pass "marmot status and the status page show the cluster"
