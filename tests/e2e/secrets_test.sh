#!/usr/bin/env bash
# Credentials stay secret and open servers are said to be open:
#   - an external nats-server that requires a password: a node with the password in its URL and
#     one with user_name/user_password work; one with a wrong password is refused (exit 1);
#   - an embedded server with credentials: its generated config is mode 0600, a node without
#     credentials is refused by it;
#   - an embedded server bound to every interface without credentials starts with a warning;
#   - and no secret appears in any log line or command output of the whole run (debug level on).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
URL_SECRET="Url-S3cr3t-81"
PW_SECRET="Pw-S3cr3t-82"
WRONG_SECRET="Wr0ng-S3cr3t-83"
EMBEDDED_SECRET="Emb-S3cr3t-84"

PORT=$(free_port)
mkdir -p "$WORK/js"
cat >"$WORK/nats.conf" <<CONF
listen: "127.0.0.1:$PORT"
jetstream { store_dir: "$WORK/js" }
authorization {
  users = [ { user: "urluser", password: "$URL_SECRET" }, { user: "app", password: "$PW_SECRET" } ]
}
CONF
start_bg nats nats-server -c "$WORK/nats.conf"

node_config() {  # node_config N NATS_KEYS...: a node's config with the given [nats] lines
  local n="$1"
  shift
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  {
    printf 'db_path = "%s"\nnode_id = %s\n[snapshot]\nenabled = false\n[logging]\nverbose = true\n[nats]\n' "$WORK/node$n.db" "$n"
    printf '%s\n' "$@"
  } >"$WORK/node$n.toml"
}
node_config 1 "urls = [\"nats://urluser:$URL_SECRET@127.0.0.1:$PORT\"]"
node_config 2 "urls = [\"nats://127.0.0.1:$PORT\"]" 'user_name = "app"' "user_password = \"$PW_SECRET\""
node_config 3 "urls = [\"nats://127.0.0.1:$PORT\"]" 'user_name = "app"' "user_password = \"$WRONG_SECRET\"" \
  'connect_retries = 1'
start_marmot 1 "$WORK/node1.toml"
start_marmot 2 "$WORK/node2.toml"
sql "$WORK/node1.db" "INSERT INTO t VALUES (1, 'through a password in the URL');"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM t" 1 || fail "the row did not replicate"
"$MARMOT" status -config "$WORK/node1.toml" >"$WORK/status.out" 2>&1 || true
"$MARMOT" verify -config "$WORK/node1.toml" -nodes 2 -wait 20 >"$WORK/verify.out" 2>&1 || fail "verify: $(cat "$WORK/verify.out")"

rc=0
"$MARMOT" -config "$WORK/node3.toml" >"$WORK/node3.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "a wrong password should stop the node with exit 1, got $rc"
grep -qi "authorization" "$WORK/node3.log" || fail "the refusal does not say why: $(tail -3 "$WORK/node3.log")"

# An embedded server with credentials: config 0600, a client without them refused.
EMB_PORT=$(free_port)
node_config 4 "bind_address = \"127.0.0.1:$EMB_PORT\"" 'user_name = "emb"' "user_password = \"$EMBEDDED_SECRET\""
mkdir -p "$WORK/n4" && sed -i "s|^db_path = .*|db_path = \"$WORK/n4/node4.db\"|" "$WORK/node4.toml"
mv "$WORK/node4.db" "$WORK/n4/node4.db"
start_marmot 4 "$WORK/node4.toml"
conf="$WORK/n4/nats/marmot-node-4.conf"
[ -f "$conf" ] || fail "no generated server config at $conf"
[ "$(stat -c %a "$conf")" = 600 ] || fail "the generated server config is mode $(stat -c %a "$conf"), not 600"
node_config 5 "urls = [\"nats://127.0.0.1:$EMB_PORT\"]" 'connect_retries = 1'
rc=0
"$MARMOT" -config "$WORK/node5.toml" >"$WORK/node5.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "a client without credentials should be refused by the embedded server, got exit $rc"
grep -qi "authorization" "$WORK/node5.log" || fail "the refusal does not say why: $(tail -3 "$WORK/node5.log")"

# Open to the network without credentials: a warning.
node_config 6 'bind_address = "0.0.0.0:-1"'
mkdir -p "$WORK/n6" && sed -i "s|^db_path = .*|db_path = \"$WORK/n6/node6.db\"|" "$WORK/node6.toml"
mv "$WORK/node6.db" "$WORK/n6/node6.db"
start_marmot 6 "$WORK/node6.toml"
grep -q "without credentials: every machine that reaches it can read and change the replicated data" "$WORK/node6.log" ||
  fail "no warning for an open embedded server"
for n in 1 2 4 6; do stop_pid "${NODE_PID[$n]}"; done

for secret in "$URL_SECRET" "$PW_SECRET" "$WRONG_SECRET" "$EMBEDDED_SECRET"; do
  if grep -rl -- "$secret" "$WORK"/*.log "$WORK"/*.out; then fail "a secret ($secret) appears in the files above"; fi
done
pass "credentials required and refused as configured, 0600 config, warning when open, no secret in any log"
