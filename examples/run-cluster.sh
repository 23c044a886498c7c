#!/usr/bin/env bash
# The 3-node demo: creates /tmp/marmot-{1,2,3}.db with a Books table and starts three marmot
# nodes, each with its own embedded nats-server, clustered over loopback. Ctrl-C stops all three.
#
# For tests (tests/e2e/demo_test.sh): MARMOT_DEMO_DIR puts the databases and configs elsewhere,
# MARMOT_DEMO_PORTS="p1 p2 p3" picks the cluster ports (each also uses port + 1), and MARMOT_BIN
# runs that binary instead of installing and building.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${MARMOT_DEMO_DIR:-/tmp}"
marmot="${MARMOT_BIN:-}"
if [ -z "$marmot" ]; then
  bash "$root/scripts/setup.sh" >/dev/null
  marmot="$root/build/marmot"
fi

create_db() {
  local db="$1"
  rm -f "$db" "$db-wal" "$db-shm"
  rm -rf "$dir"/nats/marmot-node-*
  sqlite3 "$db" >/dev/null <<'SQL'
PRAGMA journal_mode=WAL;
CREATE TABLE Books (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  title TEXT NOT NULL,
  author TEXT NOT NULL,
  publication_year INTEGER
);
INSERT INTO Books (title, author, publication_year) VALUES
  ('The Hitchhiker''s Guide to the Galaxy', 'Douglas Adams', 1979),
  ('The Lord of the Rings', 'J.R.R. Tolkien', 1954),
  ('Harry Potter and the Sorcerer''s Stone', 'J.K. Rowling', 1997),
  ('The Catcher in the Rye', 'J.D. Salinger', 1951),
  ('To Kill a Mockingbird', 'Harper Lee', 1960),
  ('1984', 'George Orwell', 1949),
  ('The Great Gatsby', 'F. Scott Fitzgerald', 1925);
SQL
}

for n in 1 2 3; do create_db "$dir/marmot-$n.db"; done

# The example configs name /tmp/marmot-N.db; elsewhere, a copy names the other directory.
config() {
  local example="$root/examples/node-$1-config.toml"
  if [ "$dir" = /tmp ]; then echo "$example"; return; fi
  sed "s|\"/tmp/marmot-|\"$dir/marmot-|" "$example" >"$dir/node-$1-config.toml"
  echo "$dir/node-$1-config.toml"
}

# Cluster route ports; each node also opens a leaf-node listener on its port + 1.
read -r -a ports <<<"${MARMOT_DEMO_PORTS:-4221 4231 4241}"
pids=()
stop_all() {
  trap - INT TERM EXIT
  echo; echo "stopping the three nodes..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop_all INT TERM EXIT

for n in 1 2 3; do
  peers=""
  for m in 1 2 3; do
    [ "$m" = "$n" ] && continue
    peers+="${peers:+,}nats://127.0.0.1:${ports[$((m - 1))]}/"
  done
  "$marmot" -config "$(config "$n")" -cluster-addr "127.0.0.1:${ports[$((n - 1))]}" \
    -cluster-peers "$peers" 2> >(sed -u "s/^/[node $n] /" >&2) &
  pids+=($!)
done

cat <<TXT

Three marmot nodes are starting (logs below, prefixed [node N]). In another terminal, try:

  sqlite3 $dir/marmot-1.db "INSERT INTO Books (title, author, publication_year) VALUES ('Dune', 'Frank Herbert', 1965)"
  sqlite3 $dir/marmot-3.db "SELECT * FROM Books WHERE title = 'Dune'"
  sqlite3 $dir/marmot-2.db "UPDATE Books SET publication_year = 1966 WHERE title = 'Dune'"
  sqlite3 $dir/marmot-1.db "SELECT * FROM Books WHERE title = 'Dune'"

Writes on any node appear on the two others within a second. Press Ctrl-C here to stop.

TXT
wait
