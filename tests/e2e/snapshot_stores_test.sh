#!/usr/bin/env bash
# Every snapshot store, as a user runs it (issue 9), each against a real server started here:
# nats (the NATS object store on the test's nats-server), s3 (s3rver from npm), webdav (rclone
# serve webdav) and sftp (rclone serve sftp). Per store:
#   - `marmot -save-snapshot` four times: exit 0 each, the store keeps the newest 3 ([snapshot]
#     keep), and a second, independent client (boto3, the official JavaScript object store
#     client, or the server's own directory) finds each data object's SHA-256 equal to the one
#     in its manifest;
#   - a new node with an empty database starts from the newest snapshot and holds the same rows;
#   - a damaged data object is refused (a new node logs it and keeps its database untouched);
#   - wrong credentials and an unreachable server make -save-snapshot exit 1 naming the store and
#     the reason, and leave the database untouched.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
declare -A NODE_PID  # nodes are named a-nats, b-s3, ...
NPM="$(cd "$(dirname "${BASH_SOURCE[0]}")/../npm" && pwd)/node_modules"
UNIT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../unit" && pwd)"
[ -x "$NPM/.bin/s3rver" ] || fail "s3rver is missing: run scripts/test.sh (npm ci in tests/npm)"
command -v rclone >/dev/null || fail "rclone is missing: run scripts/setup.sh"
setup_nats

S3_PORT=$(free_port)
mkdir -p "$WORK/s3data" "$WORK/dav" "$WORK/sftp"
start_bg s3rver node --openssl-legacy-provider "$NPM/.bin/s3rver" -d "$WORK/s3data" -a 127.0.0.1 -p "$S3_PORT" \
  --configure-bucket snaps
DAV_PORT=$(free_port)
start_bg webdav rclone serve webdav "$WORK/dav" --addr "127.0.0.1:$DAV_PORT" --user marmot --pass dav-pass \
  --config /dev/null
SFTP_PORT=$(free_port)
ssh-keygen -q -t ed25519 -N "" -f "$WORK/host_key"
start_bg sftp rclone serve sftp "$WORK/sftp" --addr "127.0.0.1:$SFTP_PORT" --user marmot --pass sftp-pass \
  --key "$WORK/host_key" --config /dev/null
port_open() { python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)"; }
for p in "$S3_PORT" "$DAV_PORT" "$SFTP_PORT"; do wait_for 30 "a store server on port $p" port_open "$p"; done
CLOSED=$(free_port)

store_section() {  # store_section STORE [wrong|closed]
  local how="${2:-}"
  case "$1" in
    nats) printf '[snapshot]\nstore = "nats"\nkeep = 3\n' ;;
    s3)
      local port=$S3_PORT key=S3RVER
      [ "$how" = closed ] && port=$CLOSED
      [ "$how" = wrong ] && key=NOT-A-KEY
      printf '[snapshot]\nstore = "s3"\nkeep = 3\n[snapshot.s3]\nendpoint = "127.0.0.1:%s"\nbucket = "snaps"\npath = "cluster-a"\naccess_key = "%s"\nsecret = "S3RVER"\n' "$port" "$key" ;;
    webdav)
      local port=$DAV_PORT pass=dav-pass
      [ "$how" = closed ] && port=$CLOSED
      [ "$how" = wrong ] && pass=wrong-pass
      printf '[snapshot]\nstore = "webdav"\nkeep = 3\n[snapshot.webdav]\nurl = "http://127.0.0.1:%s/?dir=/snapshots&login=marmot&secret=%s"\n' "$port" "$pass" ;;
    sftp)
      local port=$SFTP_PORT pass=sftp-pass
      [ "$how" = closed ] && port=$CLOSED
      [ "$how" = wrong ] && pass=wrong-pass
      printf '[snapshot]\nstore = "sftp"\nkeep = 3\n[snapshot.sftp]\nurl = "sftp://marmot:%s@127.0.0.1:%s/snapshots"\n' "$pass" "$port" ;;
  esac
}
node_config() {  # node_config NAME STORE [wrong|closed]
  cat >"$WORK/$1.toml" <<TOML
db_path = "$WORK/$1.db"
node_id = 1
[nats]
urls = ["$NATS_URL"]
stream_prefix = "st-$2"
subject_prefix = "sub-$2"
TOML
  store_section "$2" "${3:-}" >>"$WORK/$1.toml"
}
# The stored snapshots as "<id> <sha256 of the data object>" lines, read by an independent client.
independent_listing() {
  local store="$1" dir="$WORK/listing-$store"
  rm -rf "$dir" && mkdir -p "$dir"
  case "$store" in
    nats)
      local name
      for name in $(node "$UNIT/obj_check.mjs" "$NPM" "$NATS_URL" st-nats-snapshot-store list | awk '{print $1}' | grep '\.db\.zst$'); do
        echo "${name%.db.zst} $(node "$UNIT/obj_check.mjs" "$NPM" "$NATS_URL" st-nats-snapshot-store sha256 "$name")"
      done ;;
    s3)
      /usr/bin/python3 "$UNIT/s3_check.py" "127.0.0.1:$S3_PORT" snaps cluster-a list-get "$dir" |
        awk '$1 ~ /\.db\.zst$/ { sub(/\.db\.zst$/, "", $1); print $1, $3 }' ;;
    webdav | sftp)
      local f
      for f in "$WORK/${store/webdav/dav}/snapshots/"*.db.zst; do
        [ -f "$f" ] && echo "$(basename "${f%.db.zst}") $(sha256sum "$f" | cut -d' ' -f1)"
      done ;;
  esac | sort
}
manifest_sha() {  # manifest_sha STORE ID: the SHA-256 that the manifest of ID names, read independently
  local store="$1" id="$2" json
  case "$store" in
    nats) json=$(node "$UNIT/obj_check.mjs" "$NPM" "$NATS_URL" st-nats-snapshot-store text "$id.manifest.json") ;;
    s3) json=$(cat "$WORK/listing-s3/$id.manifest.json") ;;
    webdav | sftp) json=$(cat "$WORK/${store/webdav/dav}/snapshots/$id.manifest.json") ;;
  esac
  /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["sha256"])' "$json"
}
corrupt_newest() {  # flips bytes in the newest data object of STORE, where the server keeps it
  local store="$1" f
  case "$store" in
    nats)
      local id; id=$(independent_listing nats | tail -1 | cut -d' ' -f1)
      head -c 4096 /dev/urandom >"$WORK/garbage"
      node "$UNIT/obj_check.mjs" "$NPM" "$NATS_URL" st-nats-snapshot-store put "$id.db.zst" "$WORK/garbage" ;;
    s3) f=$(find "$WORK/s3data" -path '*cluster-a*' -name '*.db.zst*' -type f -size +1k | sort | tail -1)
      [ -n "$f" ] || f=$(find "$WORK/s3data" -type f -path '*.db.zst*' -size +1k | sort | tail -1)
      printf 'XXXXXXXX' | dd of="$f" bs=1 seek=200 conv=notrunc status=none ;;
    webdav | sftp) f=$(ls "$WORK/${store/webdav/dav}/snapshots/"*.db.zst | sort | tail -1)
      printf 'XXXXXXXX' | dd of="$f" bs=1 seek=200 conv=notrunc status=none ;;
  esac
}

for store in nats s3 webdav sftp; do
  echo "== $store"
  node_config "a-$store" "$store"
  sql "$WORK/a-$store.db" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
    WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 5000) INSERT INTO t SELECT x, hex(randomblob(40)) FROM i;" >/dev/null
  if [ "$store" = nats ]; then
    # On a terminal, progress is also a bar redrawn in place ("\r[###   ] ...").
    script -qefc "$MARMOT -config $WORK/a-$store.toml -save-snapshot" /dev/null >"$WORK/tty.log" 2>&1 ||
      fail "-save-snapshot on a terminal failed: $(tail -3 "$WORK/tty.log")"
    grep -q $'\r\[[# ]*\] [0-9]' "$WORK/tty.log" || fail "no progress bar on a terminal: $(head -c 600 "$WORK/tty.log" | od -c | head)"
  fi
  for i in 1 2 3 4; do
    "$MARMOT" -config "$WORK/a-$store.toml" -save-snapshot >"$WORK/save-$store-$i.log" 2>&1 ||
      fail "$store: -save-snapshot exited $?: $(tail -3 "$WORK/save-$store-$i.log")"
    grep -q "saved snapshot" "$WORK/save-$store-$i.log" || fail "$store: -save-snapshot did not say it saved"
  done
  listing=$(independent_listing "$store")
  [ "$(echo "$listing" | grep -c .)" = 3 ] || fail "$store: the store should keep 3 snapshots, has: $listing"
  newest_saved=$(grep -ho "saved snapshot [^ ]*" "$WORK/save-$store-4.log" | cut -d' ' -f3)
  echo "$listing" | tail -1 | grep -q "^$newest_saved " || fail "$store: the newest snapshot $newest_saved is not listed last: $listing"
  # The second client read each data object through its own protocol: its SHA-256 must be the one
  # the manifest names.
  while read -r id sha; do
    [ "$(manifest_sha "$store" "$id")" = "$sha" ] || fail "$store: $id's data differs from its manifest's SHA-256"
  done <<<"$listing"
  if [ "$store" = webdav ] || [ "$store" = sftp ]; then
    ! ls "$WORK/${store/webdav/dav}/snapshots/" | grep -q partial || fail "$store: a .partial object was left"
  fi

  node_config "b-$store" "$store"
  start_marmot "b-$store" "$WORK/b-$store.toml"
  wait_for 60 "b-$store to restore" grep -q "restored snapshot $newest_saved" "$WORK/nodeb-$store.log"
  [ "$(dump_db "$WORK/b-$store.db")" = "$(dump_db "$WORK/a-$store.db")" ] || fail "$store: the restored node differs"
  stop_pid "${NODE_PID[b-$store]}"

  before=$(dump_db "$WORK/a-$store.db")
  for how in wrong closed; do
    [ "$store" = nats ] && continue  # NATS credentials and reachability are the node's own (cluster tests)
    node_config "a-$store-$how" "$store" "$how"
    sed -i "s|db_path = .*|db_path = \"$WORK/a-$store.db\"|" "$WORK/a-$store-$how.toml"
    rc=0
    "$MARMOT" -config "$WORK/a-$store-$how.toml" -save-snapshot >"$WORK/save-$store-$how.log" 2>&1 || rc=$?
    [ "$rc" = 1 ] || fail "$store ($how): -save-snapshot exited $rc, want 1"
    want="wrong credentials"
    [ "$how" = closed ] && want="unreachable"
    grep -q "error.*$store store.*$want" "$WORK/save-$store-$how.log" ||
      fail "$store ($how): the error does not name the store and '$want': $(grep error "$WORK/save-$store-$how.log")"
    ! grep -qE "dav-pass|sftp-pass|wrong-pass" "$WORK/save-$store-$how.log" || fail "$store: a password was logged"
    [ "$(dump_db "$WORK/a-$store.db")" = "$before" ] || fail "$store ($how): the database changed"
  done

  corrupt_newest "$store"
  node_config "c-$store" "$store"
  start_marmot "c-$store" "$WORK/c-$store.toml"
  wait_for 60 "c-$store to refuse the damaged snapshot" grep -qE "damaged|digest|SHA-256" "$WORK/nodec-$store.log"
  ! grep -q "restored snapshot" "$WORK/nodec-$store.log" || fail "$store: a damaged snapshot was restored"
  [ -z "$(dump_db "$WORK/c-$store.db")" ] || fail "$store: the database of the refused restore changed"
  stop_pid "${NODE_PID[c-$store]}"
done
pass "save, retention, independent read back, restore, damage, wrong credentials and unreachable servers for nats, s3, webdav and sftp"
