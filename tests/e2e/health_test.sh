#!/usr/bin/env bash
# /health follows what the node can do: 200 and "ready" while it replicates; 503 naming NATS as the
# reason while the external nats-server is down (the node keeps capturing writes meanwhile); 200
# again after it returns and the writes went out; 503 naming the recorded gap when this node's copy
# may be incomplete. Also: a [prometheus] bind that is taken stops the node with a clear error.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats

HTTP_PORT=$(free_port)
sql "$WORK/node1.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
cat >"$WORK/node1.toml" <<TOML
db_path = "$WORK/node1.db"
node_id = 1
[nats]
urls = ["$NATS_URL"]
reconnect_wait_seconds = 1
[snapshot]
enabled = false
[prometheus]
enable = true
bind = "127.0.0.1:$HTTP_PORT"
TOML
start_marmot 1 "$WORK/node1.toml"
HEALTH="http://127.0.0.1:$HTTP_PORT/health"

# health_is CODE SECONDS: waits until /health answers CODE; its body is then in $WORK/health.json.
health_is() {
  local deadline=$((SECONDS + $2)) code=""
  while true; do
    code=$(curl -s -o "$WORK/health.json" -w '%{http_code}' "$HEALTH" || true)
    [ "$code" = "$1" ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || fail "/health answered $code, expected $1: $(cat "$WORK/health.json" 2>/dev/null)"
    sleep 0.2
  done
}
field() { /usr/bin/python3 -c "import json,sys; d=json.load(open('$WORK/health.json')); print($1)"; }

sql "$WORK/node1.db" "INSERT INTO items VALUES (1, 'one');"
health_is 200 30
[ "$(field 'd["status"]')" = ready ] || fail "200 without status ready: $(cat "$WORK/health.json")"
[ "$(field 'd["nats"]["connected"]')" = True ] || fail "ready but not connected?"
[ "$(field 'len(d["streams"])')" = 1 ] || fail "expected one stream in /health"

kill -KILL "$NATS_PID"
health_is 503 30
[ "$(field 'd["status"]')" = "not ready" ] || fail "503 without status 'not ready'"
field '"\n".join(d["reasons"])' | grep -q "NATS is not connected" || fail "503 without the NATS reason: $(cat "$WORK/health.json")"
# Writes during the outage wait in the change log, and /health counts them.
sql "$WORK/node1.db" "INSERT INTO items VALUES (2, 'two'); INSERT INTO items VALUES (3, 'three');"
deadline=$((SECONDS + 20))
until curl -s -o "$WORK/health.json" "$HEALTH" && [ "$(field 'd["change_log_pending"]')" = 2 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "/health does not count the 2 waiting changes: $(cat "$WORK/health.json")"
  sleep 0.2
done

start_nats
health_is 200 60
# Ready means connected and caught up; the 2 waiting changes go out right after (their confirmation
# reaches the count a moment after the stream holds them).
deadline=$((SECONDS + 20))
until curl -s -o "$WORK/health.json" "$HEALTH" && [ "$(field 'd["change_log_pending"]')" = 0 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the waiting changes did not go out: $(cat "$WORK/health.json")"
  sleep 0.2
done
health_is 200 10
[ "$(field 'd["streams"][0]["applied_seq"] == d["streams"][0]["last_seq"]')" = True ] || fail "ready but behind"
metrics=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics")  # not `curl | grep -q`: pipefail and SIGPIPE
grep -q '^marmot_nats_reconnects_total [1-9]' <<<"$metrics" || fail "/metrics does not count the reconnect"

# A recorded gap (this copy may lack changes) makes the node not ready until it is dealt with.
sql "$WORK/node1.db" "INSERT INTO __marmot__gaps(stream, first_missing, last_missing, reason) VALUES ('marmot-changes-c-1', 5, 9, 'test');" ||
  fail "cannot record a gap (did __marmot__gaps change shape?)"
health_is 503 10
field '"\n".join(d["reasons"])' | grep -q "gap(s) recorded in __marmot__gaps" || fail "503 without the gap reason"
sql "$WORK/node1.db" "DELETE FROM __marmot__gaps;"
health_is 200 10
stop_pid "${NODE_PID[1]}"

# A port that is taken: exit 1, saying which address and what to do.
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$HTTP_PORT)); s.listen(); time.sleep(60)" &
HOLDER=$!
PIDS+=("$HOLDER")
sleep 0.5
rc=0
"$MARMOT" -config "$WORK/node1.toml" >"$WORK/taken.log" 2>&1 || rc=$?
kill "$HOLDER" 2>/dev/null || true
[ "$rc" = 1 ] || fail "a taken [prometheus] bind should exit 1, got $rc"
grep -q "cannot listen for HTTP on 127.0.0.1:$HTTP_PORT" "$WORK/taken.log" || fail "no clear error: $(cat "$WORK/taken.log")"
pass "/health: ready, not ready without NATS (and why), ready again, not ready with a gap"
