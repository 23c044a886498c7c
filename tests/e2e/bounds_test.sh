#!/usr/bin/env bash
# Hostile or broken messages cost bounded memory and never pin a node (issue "bounds"). Node 1
# writes ordinary rows; messages crafted here (CBOR + zstd as docs/PROTOCOL.md says) go into the
# same stream; node 2 applies everything:
#   - six 6 KB messages that inflate to 200 MB each (before the fix: 1.7 GB on every node) are
#     dead-lettered, each with its own stream sequence, and node 2's peak RSS stays small;
#   - a message for a missing table with a 50 MB row is dead-lettered with a bounded excerpt (before:
#     a 200 MB dead-letter row);
#   - one chunk of a row whose other chunks never come (before: it pinned the stored position
#     forever, so every restart replayed the stream after it) is dead-lettered once max_entries
#     messages went by, and the position moves on.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_nats
URL="$NATS_URL"

for n in 1 2; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
[nats]
urls = ["$URL"]
[replication_log]
max_entries = 16
[snapshot]
enabled = false
TOML
  start_marmot "$n" "$WORK/node$n.toml"
done

# The crafted payloads: six bombs, one 50 MB row for a missing table, one orphan chunk.
/usr/bin/python3 - "$WORK" <<'PY'
import sys, cbor2, zstandard
work = sys.argv[1]
def message(table, columns, row):
    return cbor2.dumps({"v": 1, "node": 99, "seq": [1, 1], "h": [[table, columns]], "c": [[0, 1, row]]})
z = zstandard.ZstdCompressor(level=19)
bomb = z.compress(message("t", ["id", "v"], [424242, "x" * 200_000_000]))
assert len(bomb) < 64 * 1024, len(bomb)
open(f"{work}/bomb.bin", "wb").write(bomb)
open(f"{work}/missing.bin", "wb").write(z.compress(message("no_such_table", ["id", "v"], [1, "y" * 50_000_000])))
open(f"{work}/chunk.bin", "wb").write(b"the first of three chunks that never come")
PY
publish() { /usr/bin/python3 "$NATS_TOOL" publish "$URL" marmot-change-log-1 "$@" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["seq"])'; }

sql "$WORK/node1.db" "INSERT INTO t VALUES (1, 'before')"
seen_within 30 "$WORK/node2.db" "SELECT count(*) FROM t" 1 || fail "first row not on node 2"
bomb_seqs=()
for i in 1 2 3 4 5 6; do bomb_seqs+=("$(publish "$WORK/bomb.bin" --header "Nats-Msg-Id=bomb-$i")"); done
missing_seq=$(publish "$WORK/missing.bin" --header "Nats-Msg-Id=missing")
chunk_seq=$(publish "$WORK/chunk.bin" --header "Nats-Msg-Id=chunk" --header "Marmot-Chunk=orphan 0 3")
echo "bombs at ${bomb_seqs[*]}, missing table at $missing_seq, orphan chunk at $chunk_seq"

# Ordinary rows go on; the orphan expires after max(max_entries, count + 16) = 19 messages.
for i in $(seq 2 30); do sql "$WORK/node1.db" "INSERT INTO t VALUES ($i, 'after')"; done
seen_within 60 "$WORK/node2.db" "SELECT count(*) FROM t" 30 || fail "ordinary rows stopped after the crafted messages"
wait_for 30 "the orphan chunk to be dead-lettered" bash -c \
  "[ \"\$(sqlite3 '$WORK/node2.db' 'SELECT count(*) FROM __marmot__dead_letter WHERE stream_seq = $chunk_seq')\" = 1 ]"

dead() { sql "$WORK/node2.db" "$1"; }
for s in "${bomb_seqs[@]}"; do
  [ "$(dead "SELECT count(*) FROM __marmot__dead_letter WHERE stream_seq = $s AND reason LIKE '%max_message_bytes%'")" = 1 ] ||
    fail "bomb at $s not dead-lettered with its own sequence: $(dead "SELECT stream_seq, reason FROM __marmot__dead_letter")"
done
[ "$(dead "SELECT count(*) FROM t WHERE id = 424242")" = 0 ] || fail "a bomb was applied"
size=$(dead "SELECT length(statement) + length(reason) + coalesce(length(change), 0) FROM __marmot__dead_letter WHERE stream_seq = $missing_seq AND tbl = 'no_such_table'")
[ -n "$size" ] && [ "$size" -le 70000 ] || fail "the missing-table dead letter is $size bytes (or missing)"
position=$(dead "SELECT seq FROM __marmot__positions WHERE stream = 'marmot-changes-c-1'")
[ "$position" -gt "$chunk_seq" ] || fail "the orphan chunk still pins the position ($position <= $chunk_seq)"
peak_kb=$(awk '/VmHWM/ {print $2}' "/proc/${NODE_PID[2]}/status")
echo "node 2 peak RSS: $((peak_kb / 1024)) MB; dead letter for the 50 MB row: $size bytes; position $position"
[ "$peak_kb" -lt $((450 * 1024)) ] || fail "node 2 peaked at $((peak_kb / 1024)) MB"
for n in 1 2; do stop_pid "${NODE_PID[$n]}"; done

pass "compression bombs, huge dead letters and orphan chunks are bounded"
