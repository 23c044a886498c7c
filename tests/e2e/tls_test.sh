#!/usr/bin/env bash
# Auth and TLS on the embedded servers, set up as docs/OPERATIONS.md tells an operator to: a CA
# and one certificate per node made with the openssl CLI, three clustered nodes with [nats]
# user_name/user_password and cert_file/key_file/ca_file. Clients, cluster routes and marmot's
# own connections then use TLS with certificates the CA signed, and a password. Rows replicate;
# a client trusting another CA is refused, so is one without TLS, one without the password and one
# without a client certificate, each with the cause and what to check; the generated server configs are mode 0600 and no log holds the password.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v openssl >/dev/null || fail "openssl is missing"
SECRET="Tls-Cluster-Pw-91"
PKI="$WORK/pki"
mkdir -p "$PKI"
(
  cd "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=marmot test CA"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj "/CN=another CA"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >ext.cnf
  for n in 1 2 3; do
    openssl req -newkey rsa:2048 -nodes -keyout "node$n.key" -out "node$n.csr" -subj "/CN=marmot node $n"
    openssl x509 -req -in "node$n.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "node$n.pem" -days 2 \
      -extfile ext.cnf
  done
) >"$WORK/openssl.log" 2>&1 || fail "openssl: $(tail -5 "$WORK/openssl.log")"

for n in 1 2 3; do
  mkdir -p "$WORK/n$n"
  sql "$WORK/n$n/app.db" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  CLUSTER_PORT[$n]=$(free_port_pair)
  CLIENT_PORT[$n]=$(free_port)
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/n$n/app.db"
node_id = $n
[replication_log]
replicas = 3
[snapshot]
enabled = false
[nats]
bind_address = "127.0.0.1:${CLIENT_PORT[$n]}"
user_name = "marmot"
user_password = "$SECRET"
ca_file = "$PKI/ca.pem"
cert_file = "$PKI/node$n.pem"
key_file = "$PKI/node$n.key"
TOML
done
for n in 1 2 3; do start_cluster_node "$n" "$WORK/node$n.toml" 3; done
for n in 1 2 3; do wait_for 120 "node $n to start" grep -q "node $n running" "$WORK/node$n.log"; done
for n in 1 2 3; do
  conf="$WORK/n$n/nats/marmot-node-$n.conf"
  [ "$(stat -c %a "$conf")" = 600 ] || fail "$conf is mode $(stat -c %a "$conf")"
  [ "$(grep -c 'verify: true' "$conf")" -ge 3 ] || fail "$conf lacks TLS with verification for clients, routes, leafs"
done
for n in 1 2 3; do sql "$WORK/n$n/app.db" "INSERT INTO t VALUES ($n, 'from node $n over TLS');"; done
for n in 1 2 3; do seen_within 60 "$WORK/n$n/app.db" "SELECT count(*) FROM t" 3 || fail "node $n lacks rows"; done
same_dbs "$WORK/n1/app.db" "$WORK/n2/app.db" "$WORK/n3/app.db" || fail "nodes differ"
"$MARMOT" verify -config "$WORK/node1.toml" -nodes 3 -wait 30 >"$WORK/verify.out" 2>&1 ||
  fail "verify over TLS: $(cat "$WORK/verify.out")"

# Clients that must be refused by node 1's server.
refused() {  # refused NAME WHY NATS_KEYS...: a node with these [nats] keys exits 1 and its log matches WHY
  local name="$1" why="$2" rc=0
  shift 2
  mkdir -p "$WORK/$name"
  sql "$WORK/$name/app.db" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  {
    printf 'db_path = "%s"\nnode_id = 9\n[snapshot]\nenabled = false\n[nats]\n' "$WORK/$name/app.db"
    printf 'urls = ["nats://127.0.0.1:%s"]\nconnect_retries = 1\n' "${CLIENT_PORT[1]}"
    printf '%s\n' "$@"
  } >"$WORK/$name.toml"
  "$MARMOT" -config "$WORK/$name.toml" >"$WORK/$name.log" 2>&1 || rc=$?
  [ "$rc" = 1 ] || fail "$name: expected exit 1, got $rc"
  grep -qiE "$why" "$WORK/$name.log" || fail "$name: the log does not say why: $(tail -3 "$WORK/$name.log")"
}
# Each refusal names its cause and what to check (src/stream/nats_client.cpp ConnectHint).
refused wrong-ca "ssl.*TLS failed: check that \[nats\] ca_file" 'user_name = "marmot"' \
  "user_password = \"$SECRET\"" "ca_file = \"$PKI/other-ca.pem\"" "cert_file = \"$PKI/node1.pem\"" \
  "key_file = \"$PKI/node1.key\""
refused no-tls "TLS failed: check that \[nats\] ca_file is set" 'user_name = "marmot"' "user_password = \"$SECRET\""
refused no-password "Authorization Violation.*the server refused the credentials" "ca_file = \"$PKI/ca.pem\"" \
  "cert_file = \"$PKI/node1.pem\"" "key_file = \"$PKI/node1.key\""
refused no-client-cert "requires a client certificate: set \[nats\] cert_file and key_file" \
  'user_name = "marmot"' "user_password = \"$SECRET\"" "ca_file = \"$PKI/ca.pem\""
# Node 1's server logged those refusals as warnings: a refused client is not this node's error
# (the last error `marmot status` and the status page show).
grep -qE "warning \[nats\].* - cid:.*(authentication|TLS|certificate)" "$WORK/node1.log" ||
  fail "node 1's log does not mention the refused clients"
if grep -E "error \[nats\].* - cid:" "$WORK/node1.log"; then fail "a refused client is an error on node 1 (above)"; fi

for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
if grep -l -- "$SECRET" "$WORK"/*.log "$WORK"/*.out; then fail "the password appears in the files above"; fi
pass "3 nodes with auth and TLS (clients, routes) replicate; other CA, plain and password-less clients refused"
