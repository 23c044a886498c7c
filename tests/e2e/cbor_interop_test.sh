#!/usr/bin/env bash
# Our messages decoded by an independent CBOR library: one marmot node (node_id 7, publishing
# only) on an external nats-server (with a user and password) publishes every SQLite value type
# (NULL, INTEGER incl. -2^63, 2^63-1 and the CBOR length boundaries, REAL incl. -0.0, 1.5e300, a
# denormal and infinities, TEXT with unicode and TEXT that is not UTF-8, BLOB incl. empty) through
# inserts, updates, deletes and a key change in a rowid table, an INTEGER PRIMARY KEY table (with
# generated columns, which are not sent) and a WITHOUT ROWID table. Each statement is one
# transaction and is waited for in the stream, so each is one message. The stored messages are
# fetched with nats_tool.py and decoded with Debian's python3-cbor2 and python3-zstandard exactly
# as docs/PROTOCOL.md ("Reading it from another language") says, and checked against what SQLite
# held after each statement: v, node, seq ranges, key order, headers, ops and every value (REAL
# bit for bit, always as float64). Run once with compress = true (stream marmot-changes-c-1) and
# once with compress = false (marmot-changes-1).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY=/usr/bin/python3  # Debian's Python: python3-cbor2 and python3-zstandard are installed for it
"$PY" -c 'import cbor2, zstandard' || fail "$PY lacks cbor2/zstandard (apt-get install python3-cbor2 python3-zstandard)"

cat >"$WORK/interop.py" <<'PY'
"""write: runs each statement with the sqlite3 CLI, waits for its message in the stream and
snapshots the tables (Python's sqlite3 module reads the same file; TEXT as bytes, REAL as the
stored double). check: fetches every message and compares it with the snapshots."""
import json, pickle, sqlite3, struct, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
import cbor2, zstandard, nats_tool

mode, url, stream, db, compress, state_file = sys.argv[2:8]
compress = compress == "true"

# Upsert columns (every stored column, generated ones excluded, the rowid first for a table keyed
# by rowid) and key columns (in key order) of each table.
COLUMNS = {"kinds": ["id", "i", "r", "t", "b", "anything"], "loose": ["rowid", "a", "b"],
           "pairs": ["k1", "k2", "v"]}
KEYS = {"kinds": ["id"], "loose": ["rowid"], "pairs": ["k2", "k1"]}
U, D = 1, 2
MIN, MAX = -(2**63), 2**63 - 1
# (statement: one transaction, so one message; change-log entries it makes; expected changes
# (table, op, key) in log order).
STEPS = [
    ("""INSERT INTO kinds (id, i, r, t, b, anything) VALUES
          (1, NULL, NULL, NULL, NULL, NULL),
          (2, -9223372036854775808, -0.0, 'héllo wörld ✓ 日本語 🐹', x'', -0.0),
          (3, 9223372036854775807, 1.5e300, '', x'00ff7f80', 1.5e300),
          (4, 0, 4.9406564584124654e-324, 'quote '' and "', zeroblob(3), 9e999),
          (5, -1, 0.1, CAST(x'ff41' AS TEXT), x'deadbeef', -9e999),
          (6, 23, -2.5, 'six', x'06', -0.0),
          (7, 24, 255.0, '7', x'07', 'text in an untyped column'),
          (8, -24, 256.5, '8', x'08', x'0102'),
          (9, -25, 1e-310, '9', x'09', 65535),
          (10, 65536, -1.7976931348623157e308, '10', x'0a', 4294967295),
          (11, 4294967296, 2.0, '11', x'0b', -4294967297),
          (12, -9223372036854775807, 3.0, '12', x'0c', 18446744073709551615)""",
     12, [("kinds", U, (k,)) for k in range(1, 13)]),
    ("INSERT INTO loose (a, b) VALUES (x'', 'a'), ('b', 2), (3.25, NULL)",
     3, [("loose", U, (k,)) for k in (1, 2, 3)]),
    ("""INSERT INTO pairs VALUES ('k', 1, 'one'), ('ü', -9223372036854775808, x'00'),
          ('', 9223372036854775807, NULL), ('k', 2, -0.0)""",
     4, [("pairs", U, (1, "k")), ("pairs", U, (MIN, "ü")), ("pairs", U, (MAX, "")), ("pairs", U, (2, "k"))]),
    ("""BEGIN; UPDATE kinds SET t = 'changed ✓', r = -0.0, anything = x'' WHERE id IN (3, 4);
        UPDATE loose SET a = 'updated', b = 1.5e300 WHERE rowid = 2; COMMIT""",
     3, [("kinds", U, (3,)), ("kinds", U, (4,)), ("loose", U, (2,))]),
    ("""BEGIN; DELETE FROM kinds WHERE id = 1; DELETE FROM loose WHERE rowid = 1;
        DELETE FROM pairs WHERE k1 = 'k' AND k2 = 1; COMMIT""",
     3, [("kinds", D, (1,)), ("loose", D, (1,)), ("pairs", D, (1, "k"))]),
    # A key change: a delete of the old key and an upsert of the new one (their order in the
    # message is the order of the two triggers, which the format leaves open).
    ("UPDATE kinds SET id = 100, i = 100 WHERE id = 6",
     2, {("kinds", D, (6,)), ("kinds", U, (100,))}),
]


def snapshot():
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.text_factory = bytes
    tables = {}
    for table, columns in COLUMNS.items():
        select = ", ".join(f"typeof({c}), {c}" for c in columns)
        rows = {}
        for r in con.execute(f"SELECT {select} FROM {table}"):
            row = {c: (r[2 * i].decode(), r[2 * i + 1]) for i, c in enumerate(columns)}
            rows[tuple(row[k][1].decode() if row[k][0] == "text" else row[k][1] for k in KEYS[table])] = row
        tables[table] = rows
    con.close()
    return tables


def same(got, expected):
    """got: a decoded CBOR value; expected: (typeof, value) as SQLite holds it."""
    kind, v = expected
    if kind == "null":
        return got is None
    if kind == "integer":
        return type(got) is int and got == v
    if kind == "real":
        return type(got) is float and struct.pack(">d", got) == struct.pack(">d", v)
    if kind == "text":
        try:
            text = v.decode("utf-8")
        except UnicodeDecodeError:  # not UTF-8: tag 50000 around the bytes
            return isinstance(got, cbor2.CBORTag) and got.tag == 50000 and got.value == v
        return type(got) is str and got == text
    if kind == "blob":
        return type(got) is bytes and got == v
    raise AssertionError(f"unknown type {kind}")


def write():
    conn = nats_tool.NatsConnection(url)
    snapshots = [snapshot()]
    for n, (statement, _, _) in enumerate(STEPS, 1):
        subprocess.run(["sqlite3", "-cmd", ".timeout 10000", db, statement], check=True)
        snapshots.append(snapshot())
        deadline = time.monotonic() + 30
        while nats_tool.stream_info(conn, stream)["state"]["last_seq"] < n:
            assert time.monotonic() < deadline, f"no message in {stream} for statement {n}"
            time.sleep(0.05)
    with open(state_file, "wb") as f:
        pickle.dump(snapshots, f)


def check():
    with open(state_file, "rb") as f:
        snapshots = pickle.load(f)
    conn = nats_tool.NatsConnection(url)
    state = nats_tool.stream_info(conn, stream)["state"]
    assert state["messages"] == state["last_seq"] == len(STEPS), f"{stream}: {state} for {len(STEPS)} statements"
    msgs = nats_tool.all_msgs(conn, stream)
    ids = [m["headers"].get("Nats-Msg-Id") for m in msgs]
    assert None not in ids and len(set(ids)) == len(ids), ids
    next_seq = None
    for n, (m, (_, entries, expected)) in enumerate(zip(msgs, STEPS), 1):
        payload = m["payload"]
        if compress:  # one zstd frame, read exactly as docs/PROTOCOL.md shows
            assert payload[:4] == b"\x28\xb5\x2f\xfd", f"message {n} is not a zstd frame: {payload[:8].hex()}"
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(payload)
        else:
            raw = payload
        msg = cbor2.loads(raw)
        where = f"{stream} message {n}"
        assert list(msg) == ["v", "node", "seq", "h", "c"], f"{where}: keys {list(msg)}"
        assert msg["v"] == 1 and msg["node"] == 7, f"{where}: v {msg['v']} node {msg['node']}"
        first, last = msg["seq"]
        assert last - first + 1 == entries, f"{where}: seq {msg['seq']} for {entries} log entries"
        assert next_seq is None or first == next_seq, f"{where}: seq {msg['seq']} after {next_seq - 1}"
        next_seq = last + 1
        headers = [(t, tuple(c)) for t, c in msg["h"]]
        assert len(set(headers)) == len(headers), f"{where}: repeated headers {headers}"
        used = set()
        before, after = snapshots[n - 1], snapshots[n]
        got = []
        for header_index, op, values in msg["c"]:
            table, columns = msg["h"][header_index]
            used.add(header_index)
            assert op in (U, D), f"{where}: op {op}"
            assert columns == (COLUMNS if op == U else KEYS)[table], f"{where}: {table} op {op} columns {columns}"
            assert len(values) == len(columns), f"{where}: {columns} {values}"
            row = dict(zip(columns, values))
            key = tuple(row[k] for k in KEYS[table])
            got.append((table, op, key))
            if op == U:
                held = after[table].get(key)
                assert held is not None, f"{where}: upsert of {table} {key}, which SQLite does not hold"
            else:
                assert key not in after[table] and key in before[table], f"{where}: delete of {table} {key}"
                held = before[table][key]
            for c in columns:
                assert same(row[c], held[c]), f"{where}: {table} {key} {c}: decoded {row[c]!r}, SQLite holds {held[c]!r}"
                # REAL always as float64 (major 7, 27), so every bit survives
                if held[c][0] == "real":
                    assert b"\xfb" + struct.pack(">d", held[c][1]) in raw, f"{where}: {table} {key} {c} not a float64"
        assert used == set(range(len(headers))), f"{where}: unused headers {headers}"
        ok = (set(got) == expected and len(got) == len(expected)) if isinstance(expected, set) else got == expected
        assert ok, f"{where}: changes {got}, expected {expected}"
    # The snippet of docs/PROTOCOL.md itself runs on these messages.
    for m in msgs:
        payload = m["payload"]
        msg = cbor2.loads(zstandard.ZstdDecompressor().decompressobj().decompress(payload)) if compress else cbor2.loads(payload)
        for header_index, op, values in msg["c"]:
            table, columns = msg["h"][header_index]
            print("upsert" if op == 1 else "delete", table, dict(zip(columns, values)))


write() if mode == "write" else check()
PY

run_case() {  # run_case COMPRESS STREAM: a fresh nats-server and node 7 writing to STREAM, then the checks
  local compress="$1" stream="$2" name="node-$1"
  local db="$WORK/$name.db"
  # Its own server each time: both cases use the same subject, which two streams cannot share.
  local port; port=$(free_port)
  mkdir -p "$WORK/js-$compress"
  cat >"$WORK/nats-$compress.conf" <<CONF
listen: "127.0.0.1:$port"
jetstream { store_dir: "$WORK/js-$compress" }
authorization { user: "interop", password: "p@ss/word" }
CONF
  start_bg "nats-$compress" nats-server -c "$WORK/nats-$compress.conf"  # stopped on exit (lib.sh)
  local url="nats://interop:p%40ss%2Fword@127.0.0.1:$port"  # for nats_tool.py
  sql "$db" "PRAGMA journal_mode=WAL;
    CREATE TABLE kinds (id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB, anything,
                        g INTEGER GENERATED ALWAYS AS (id * 2) VIRTUAL, s TEXT GENERATED ALWAYS AS (t || '!') STORED);
    CREATE TABLE loose (a, b);
    CREATE TABLE pairs (k1 TEXT, k2 INTEGER, v, PRIMARY KEY (k2, k1)) WITHOUT ROWID;" >/dev/null
  cat >"$WORK/$name.toml" <<TOML
db_path = "$db"
node_id = 7
replicate = false  # publish only: nothing but the sqlite3 CLI writes the rows (no own changes applied back)
[replication_log]
compress = $compress
[nats]
urls = ["nats://127.0.0.1:$port"]
user_name = "interop"
user_password = "p@ss/word"
connect_retries = 30
reconnect_wait_seconds = 1
[snapshot]
enabled = false
TOML
  start_bg "$name" "$MARMOT" -config "$WORK/$name.toml"
  local pid=$LAST_PID
  wait_for 60 "node 7 (compress = $compress) to start" grep -q "running on" "$WORK/$name.log"
  "$PY" "$WORK/interop.py" "$HERE" write "$url" "$stream" "$db" "$compress" "$WORK/$name.pickle" ||
    fail "writing the statements (compress = $compress)"
  stop_pid "$pid"  # nothing more can be published: the stream is final
  "$PY" "$WORK/interop.py" "$HERE" check "$url" "$stream" "$db" "$compress" "$WORK/$name.pickle" >"$WORK/$name.decoded" ||
    fail "the messages in $stream do not decode to what SQLite holds"
  grep -q "^upsert kinds {'id': 2, 'i': -9223372036854775808, 'r': 0.0, 't': 'héllo wörld ✓ 日本語 🐹', 'b': b'', 'anything': -0.0}$" \
    "$WORK/$name.decoded" || fail "PROTOCOL.md's snippet printed something else: $(head -3 "$WORK/$name.decoded")"
}

run_case true marmot-changes-c-1
run_case false marmot-changes-1
pass "every value type, op and header decodes with cbor2 (and zstandard) to exactly what SQLite holds, compressed and not"
