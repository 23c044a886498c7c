#!/usr/bin/python3
"""Writers for the fault suite (tests/e2e/fault_*_test.sh), standing in for an application.

  torture_writer.py conflict DB SECONDS SEED     random writes with Python's sqlite3 module
  torture_writer.py conflict-sql SECONDS SEED    the same writes as SQL on stdout, for the sqlite3 CLI
  torture_writer.py unique DB NODE SECONDS       one new row per transaction, keys NODE*10^6 + i;
                                                 prints how many were committed

Conflict writes go to keys 1..40 of `items` (id INTEGER PRIMARY KEY, v, n INTEGER),
`pairs` (k TEXT, j INTEGER, v BLOB, PRIMARY KEY (k, j)) WITHOUT ROWID and `users` (id INTEGER
PRIMARY KEY, email TEXT UNIQUE, n INTEGER), which every node writes too: inserts, updates, deletes
and primary-key changes, with every SQLite value type; in `users` rows take each other's emails
(10 of them), so REPLACE removes the row that held one. `conflict` leaves `users` out where the
database has no such table.
"""
import random
import sqlite3
import sys
import time


def random_value(rng):
    kind = rng.randrange(8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.randrange(-2**63, 2**63)
    if kind == 2:
        return rng.choice([0.0, -0.0, 1e308, -1e-308, 0.1, float(rng.randrange(1000)) / 7])
    if kind == 3:
        return "".join(rng.choice("aé€𝄞 \"'\n") for _ in range(rng.randrange(12)))
    if kind == 4:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(16)))
    return rng.randrange(100)


def statements(rng, users=True):
    """Yields (sql, params) forever; with users=False none for the users table."""
    while True:
        op = rng.randrange(10 if users else 7)
        a, b = rng.randrange(1, 41), rng.randrange(1, 41)
        email = "e%d" % rng.randrange(10)
        if op == 0:
            yield "INSERT OR REPLACE INTO items VALUES (?, ?, ?)", (a, random_value(rng), rng.randrange(1000))
        elif op == 1:
            yield "UPDATE items SET v = ?, n = n + 1 WHERE id = ?", (random_value(rng), a)
        elif op == 2:
            yield "DELETE FROM items WHERE id = ?", (a,)
        elif op == 3:
            yield "UPDATE OR REPLACE items SET id = ? WHERE id = ?", (b, a)  # a key change
        elif op == 4:
            yield "INSERT OR REPLACE INTO pairs VALUES (?, ?, ?)", ("k%d" % a, a % 3, random_value(rng))
        elif op == 5:
            yield "DELETE FROM pairs WHERE k = ? AND j = ?", ("k%d" % a, a % 3)
        elif op == 6:
            yield "UPDATE OR REPLACE pairs SET k = ? WHERE k = ?", ("k%d" % b, "k%d" % a)
        elif op == 7:
            yield "INSERT OR REPLACE INTO users VALUES (?, ?, ?)", (a, email, rng.randrange(1000))
        elif op == 8:
            yield "UPDATE OR REPLACE users SET email = ?, n = n + 1 WHERE id = ?", (email, a)
        else:
            yield "DELETE FROM users WHERE id = ?", (a,)


def sql_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bytes):
        return "x'" + v.hex() + "'"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, float):
        return repr(v) if v == v and abs(v) != float("inf") else "NULL"
    return str(v)


def conflict(db, seconds, seed):
    rng = random.Random(seed)
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    deadline = time.monotonic() + seconds
    has_users = conn.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'users'").fetchone()[0] > 0
    gen = statements(rng, users=has_users)
    while time.monotonic() < deadline:
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(rng.randrange(1, 5)):
            sql, params = next(gen)
            conn.execute(sql, params)
        conn.execute("COMMIT")
        time.sleep(rng.random() * 0.02)


def conflict_sql(seconds, seed):
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    gen = statements(rng)
    out = sys.stdout
    while time.monotonic() < deadline:
        sql, params = next(gen)
        for p in params:
            sql = sql.replace("?", sql_literal(p), 1)
        out.write(sql + ";\n")
        out.flush()
        time.sleep(rng.random() * 0.02)


def unique(db, node, seconds):
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        conn.execute("INSERT INTO log_rows VALUES (?, ?)", (node * 10**6 + i, "node %d row %d" % (node, i)))
        i += 1
        time.sleep(0.005)
    print(i)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "conflict":
        conflict(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    elif mode == "conflict-sql":
        conflict_sql(float(sys.argv[2]), int(sys.argv[3]))
    elif mode == "unique":
        unique(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit("unknown mode " + mode)
