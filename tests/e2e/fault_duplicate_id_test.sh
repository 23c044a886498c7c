#!/usr/bin/env bash
# Fault suite, two nodes with one node_id (issue 10): node A runs with node_id 7; node B, on its own
# database, is started with node_id 7 too (by mistake, e.g. a copied config). B must refuse to
# start with exit code 1 and a message naming A's database; A goes on replicating with node C.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
for name in a b c; do
  sql "$WORK/$name.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  id=7
  [ "$name" = c ] && id=3
  cat >"$WORK/$name.toml" <<TOML
db_path = "$WORK/$name.db"
node_id = $id
[nats]
urls = ["$NATS_URL"]
[snapshot]
enabled = false
TOML
done
start_marmot 1 "$WORK/a.toml"
start_marmot 3 "$WORK/c.toml"
rc=0
timeout 60 "$MARMOT" -config "$WORK/b.toml" >"$WORK/b.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "node B with a duplicate node_id exited $rc: $(tail -5 "$WORK/b.log")"
grep -q "node_id 7 is already used by a running node (database $WORK/a.db" "$WORK/b.log" ||
  fail "node B's refusal does not say why: $(tail -5 "$WORK/b.log")"
sql "$WORK/a.db" "INSERT INTO items VALUES (1, 'from A')"
seen_within 30 "$WORK/c.db" "SELECT count(*) FROM items" 1 || fail "A stopped replicating"
for n in 1 3; do stop_pid "${NODE_PID[$n]}"; done
pass "a second node with a node_id in use refuses to start and names the first"
