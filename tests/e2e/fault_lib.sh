# Steps the fault tests share (sourced after lib.sh): unique-key writers on nodes 1..3, the checks
# every fault test ends with.
FAULT_SECS="${FAULT_SECONDS:-20}"
WRITER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/torture_writer.py"

# start_unique_writers: on nodes 1..3, an application inserting unique rows into log_rows, one per
# transaction, for FAULT_SECS.
start_unique_writers() {
  UNIQUE_WRITERS=()
  local n
  for n in 1 2 3; do
    /usr/bin/python3 "$WRITER" unique "$WORK/node$n.db" "$n" "$FAULT_SECS" >"$WORK/written$n" 2>>"$WORK/writer$n.log" &
    UNIQUE_WRITERS+=($!)
    PIDS+=($!)
  done
}

# wait_unique_writers: waits for them; TOTAL is how many rows they committed.
wait_unique_writers() {
  local pid n
  for pid in "${UNIQUE_WRITERS[@]}"; do wait "$pid" || fail "a writer failed (see writer*.log)"; done
  TOTAL=0
  for n in 1 2 3; do TOTAL=$((TOTAL + $(cat "$WORK/written$n"))); done
}

# expect_every_unique_row SECONDS: every committed row is on every node within SECONDS, intact.
expect_every_unique_row() {
  local n want got
  for n in 1 2 3; do
    seen_within "$1" "$WORK/node$n.db" "SELECT count(*) FROM log_rows" "$TOTAL" ||
      fail "node $n has $(sql "$WORK/node$n.db" "SELECT count(*) FROM log_rows") of $TOTAL rows"
  done
  same_dbs "$WORK/node1.db" "$WORK/node2.db" "$WORK/node3.db" || fail "the nodes hold as many rows, but not the same"
  for n in 1 2 3; do
    want=$(cat "$WORK/written$n")
    got=$(sql "$WORK/node1.db" "SELECT count(*) FROM log_rows WHERE id BETWEEN $n * 1000000 AND $n * 1000000 + $want - 1 AND v = 'node $n row ' || (id - $n * 1000000)")
    [ "$got" = "$want" ] || fail "node $n committed $want rows, node 1 has $got of them intact"
  done
}

# verify_agrees CONFIG NODES: `marmot verify` finds NODES nodes and they agree (exit 0).
verify_agrees() {
  local rc=0
  "$MARMOT" verify -config "$1" -nodes "$2" -wait 120 >"$WORK/verify.log" 2>&1 || rc=$?
  [ "$rc" = 0 ] || fail "verify exited $rc: $(cat "$WORK/verify.log")"
}

# expect_clean DB...: no dead letters and no recorded gaps.
expect_clean() {
  local db
  for db in "$@"; do
    [ "$(sql "$db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] || fail "$db dead-lettered changes"
    [ "$(sql "$db" "SELECT count(*) FROM __marmot__gaps")" = 0 ] || fail "$db recorded gaps"
  done
}

# expect_clean_but_served DB...: no dead letters, and no recorded gaps but those of a message that
# nats-server delivered outside the stream's history (under server churn or around a partition,
# nats-server 2.9 delivers a message it then does not keep, in the middle of the stream or at its
# end; the node says so and applies the stream again, and all end identical: docs/CLUSTER.md).
# Says how many such gaps each node recorded.
expect_clean_but_served() {
  local db other served
  for db in "$@"; do
    [ "$(sql "$db" "SELECT count(*) FROM __marmot__dead_letter")" = 0 ] || fail "$db dead-lettered changes"
    other=$(sql "$db" "SELECT count(*) FROM __marmot__gaps WHERE reason NOT LIKE '%is not the one this node applied%'
      AND reason NOT LIKE '%it lost messages this node applied%'")
    [ "$other" = 0 ] || fail "$db recorded gaps: $(sql "$db" "SELECT reason FROM __marmot__gaps")"
    served=$(sql "$db" "SELECT count(*) FROM __marmot__gaps")
    [ "$served" = 0 ] || echo "$db was served a message outside the stream's history and said so ($served gap(s))"
  done
}
