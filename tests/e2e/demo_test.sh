#!/usr/bin/env bash
# The README's "run" command as a new user meets it: examples/run-cluster.sh starts three nodes
# (here in a temp dir, on random ports), the sample rows are there, an insert with the sqlite3 CLI
# on any node appears on the two others within a few seconds (a second without sanitizers and
# load), and Ctrl-C/SIGTERM stops all three.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

ports="$(free_port_pair) $(free_port_pair) $(free_port_pair)"
MARMOT_DEMO_DIR="$WORK" MARMOT_DEMO_PORTS="$ports" MARMOT_BIN="$MARMOT" \
  start_bg demo bash "$root/examples/run-cluster.sh"
demo=$LAST_PID
wait_for 60 "three nodes running" bash -c "[ \$(grep -c 'running on' '$WORK/demo.log') = 3 ]"
grep -q "sqlite3 $WORK/marmot-1.db" "$WORK/demo.log" || fail "the demo does not print what to type next"
node_pids=$(pgrep -f "$WORK/node-[123]-config.toml" | grep -v "^$demo\$" || true)
[ "$(wc -w <<<"$node_pids")" = 3 ] || fail "expected three marmot processes, found: $node_pids"

for n in 1 2 3; do
  [ "$(sql "$WORK/marmot-$n.db" "SELECT count(*) FROM Books")" = 7 ] || fail "node $n lacks the sample rows"
done

# A first write while the freshly formed cluster settles (stream leader, consumers): generous
# bound, as CI runs this under ASan on 2 busy cores.
sql "$WORK/marmot-2.db" "INSERT INTO Books (title, author, publication_year) VALUES ('Warm-up', 'test', 2000)"
for n in 1 3; do
  seen_within 30 "$WORK/marmot-$n.db" "SELECT count(*) FROM Books WHERE title = 'Warm-up'" 1 ||
    fail "the first write did not reach node $n within 30 s"
done

# What the demo tells the user to type, on a different node each time.
sql "$WORK/marmot-1.db" "INSERT INTO Books (title, author, publication_year) VALUES ('Dune', 'Frank Herbert', 1965)"
seen_within 3 "$WORK/marmot-3.db" "SELECT publication_year FROM Books WHERE title = 'Dune'" 1965 ||
  fail "Dune not on node 3 within 3 s"
sql "$WORK/marmot-2.db" "UPDATE Books SET publication_year = 1966 WHERE title = 'Dune'"
seen_within 3 "$WORK/marmot-1.db" "SELECT publication_year FROM Books WHERE title = 'Dune'" 1966 ||
  fail "the update not on node 1 within 3 s"
sql "$WORK/marmot-3.db" "DELETE FROM Books WHERE title = '1984'"
seen_within 3 "$WORK/marmot-2.db" "SELECT count(*) FROM Books WHERE title = '1984'" 0 ||
  fail "the delete not on node 2 within 3 s"
wait_for 10 "identical databases" same_dbs "$WORK/marmot-1.db" "$WORK/marmot-2.db" "$WORK/marmot-3.db"

# Ctrl-C in the terminal sends SIGINT to the whole group; the script's trap stops the nodes with
# SIGTERM, so SIGTERM to the script is the same path.
kill -TERM "$demo"
for _ in $(seq 1 300); do kill -0 "$demo" 2>/dev/null || break; sleep 0.1; done
kill -0 "$demo" 2>/dev/null && fail "the demo script did not stop within 30 s"
for pid in $node_pids; do
  kill -0 "$pid" 2>/dev/null && fail "marmot $pid still runs after the demo stopped"
done
[ -z "$(pgrep -f "$WORK/nats/" || true)" ] || fail "a nats-server of the demo still runs"
grep -q "stopping the three nodes" "$WORK/demo.log" || fail "the demo did not say it stops the nodes"
pass "demo: three nodes, sample rows, writes on any node everywhere within 3 s, clean stop"
