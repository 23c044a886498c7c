#!/usr/bin/env bash
# Fault suite, poison input (issue 10): messages published straight into the stream (the format of
# docs/PROTOCOL.md, written with Python's cbor2 and zstandard): random bytes, a real message cut in
# half, a message of a future format version, a change for a column node 2 does not have, one for a
# table it does not have, and a row that breaks a CHECK constraint only node 2 has. Each lands in
# node 2's dead-letter table with its own stream sequence and a reason; ordinary rows before and
# after them replicate, and node 2 goes on applying. (A UNIQUE index only one node has is another
# matter: an upsert replaces the conflicting row there, see docs/CAPTURE.md.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
for n in 1 2; do
  check=""
  [ "$n" = 2 ] && check="CHECK (v <> 'forbidden on node 2')"  # a constraint only node 2 has
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT $check);" >/dev/null
  write_node_config "$n"
done
for n in 1 2; do start_marmot "$n" "$WORK/node$n.toml"; done

sql "$WORK/node1.db" "INSERT INTO t VALUES (1, 'before')"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM t" 1 || fail "first row not on node 2"
/usr/bin/python3 "$NATS_TOOL" get-msg "$NATS_URL" marmot-changes-c-1 1 --out "$WORK/real.bin" >/dev/null
/usr/bin/python3 - "$WORK" <<'PY'
import os, sys, cbor2, zstandard
work = sys.argv[1]
z = zstandard.ZstdCompressor()
def message(table, columns, row, version=1):
    return z.compress(cbor2.dumps({"v": version, "node": 99, "seq": [1, 1], "h": [[table, columns]], "c": [[0, 1, row]]}))
real = open(f"{work}/real.bin", "rb").read()
payloads = {
    "garbage": os.urandom(3000),
    "truncated": real[: len(real) // 2],
    "future": message("t", ["id", "v"], [500, "from the future"], version=9),
    "column": message("t", ["id", "v", "extra"], [501, "has extra", 1]),
    "table": message("no_such_table", ["id"], [502]),
    "check": message("t", ["id", "v"], [503, "forbidden on node 2"]),
}
for name, data in payloads.items():
    open(f"{work}/{name}.bin", "wb").write(data)
PY
declare -A SEQ
for name in garbage truncated future column table check; do
  SEQ[$name]=$(/usr/bin/python3 "$NATS_TOOL" publish "$NATS_URL" marmot-change-log-1 "$WORK/$name.bin" \
    --header "Nats-Msg-Id=poison-$name" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["seq"])')
done
for i in $(seq 2 20); do sql "$WORK/node1.db" "INSERT INTO t VALUES ($i, 'after $i')"; done
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM t" 20 || fail "ordinary rows stopped after the poison"

reason() { sql "$WORK/node2.db" "SELECT reason FROM __marmot__dead_letter WHERE stream_seq = ${SEQ[$1]}"; }
expect_dead() {  # expect_dead NAME PATTERN: the message NAME is dead-lettered with a reason matching PATTERN
  local r; r=$(reason "$1")
  [ -n "$r" ] || fail "the $1 message (seq ${SEQ[$1]}) is not in node 2's dead letters: $(sql "$WORK/node2.db" "SELECT stream_seq, reason FROM __marmot__dead_letter")"
  echo "$r" | grep -qiE "$2" || fail "the $1 message's reason does not say why: $r"
  echo "$1 (seq ${SEQ[$1]}): $r" | cut -c1-160
}
expect_dead garbage "decod|zstd|frame"
expect_dead truncated "decod|zstd|frame|truncat"
expect_dead future "version"
expect_dead column "extra"
expect_dead table "no_such_table"
expect_dead check "CHECK"
[ "$(sql "$WORK/node2.db" "SELECT count(*) FROM t WHERE id >= 500")" = 0 ] || fail "a poison row was applied"
[ "$(sql "$WORK/node1.db" "SELECT v FROM t WHERE id = 503")" = "forbidden on node 2" ] || fail "node 1 did not apply the row only node 2 forbids"
position=$(sql "$WORK/node2.db" "SELECT seq FROM __marmot__positions WHERE stream = 'marmot-changes-c-1'")
[ "$position" -gt "${SEQ[check]}" ] || fail "node 2's position $position did not move past the poison"
for n in 1 2; do stop_pid "${NODE_PID[$n]}"; done
pass "poison messages are dead-lettered with their reasons and replication goes on"
