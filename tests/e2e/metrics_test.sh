#!/usr/bin/env bash
# Metrics, scraped the way an operator would: three clustered nodes with [prometheus] enabled (each
# on its own random loopback port) and a real Prometheus server (Debian's `prometheus`, started
# here with a generated config) scraping all three every second. Rows written on nodes 1 and 2
# must show up, exactly, in the counters Prometheus stores: captured and published where they were
# written, applied on the others, skipped as echoes on the writer; the per-stream positions agree
# with the stream; `promtool check metrics` accepts every node's output. A second round of writes
# must move the counters again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
  fail "prometheus and promtool are missing (scripts/setup.sh installs Debian's prometheus)"

for n in 1 2 3; do
  sql "$WORK/node$n.db" "PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  CLUSTER_PORT[$n]=$(free_port_pair)
  HTTP_PORT[$n]=$(free_port)
  cat >"$WORK/node$n.toml" <<TOML
db_path = "$WORK/node$n.db"
node_id = $n
[replication_log]
replicas = 3
max_entries = 100000
[snapshot]
enabled = false
[prometheus]
enable = true
bind = "127.0.0.1:${HTTP_PORT[$n]}"
namespace = "marmot"
subsystem = "test"
TOML
done
for n in 1 2 3; do start_cluster_node "$n" "$WORK/node$n.toml" 3; done
for n in 1 2 3; do wait_for 90 "node $n to start" grep -q "node $n running" "$WORK/node$n.log"; done
for n in 1 2 3; do
  grep -q "serving /metrics, /health and the status page /status on http://127.0.0.1:${HTTP_PORT[$n]}" "$WORK/node$n.log" ||
    fail "node $n does not say where it serves /metrics"
done

PROM_PORT=$(free_port)
cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: marmot
    static_configs:
      - targets: ["127.0.0.1:${HTTP_PORT[1]}"]
        labels: {node: "1"}
      - targets: ["127.0.0.1:${HTTP_PORT[2]}"]
        labels: {node: "2"}
      - targets: ["127.0.0.1:${HTTP_PORT[3]}"]
        labels: {node: "3"}
YAML
promtool check config "$WORK/prometheus.yml" >/dev/null || fail "promtool rejects the generated config"
start_bg prometheus prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom-data" \
  --web.listen-address="127.0.0.1:$PROM_PORT"

# query EXPR: the value of a PromQL expression that yields one sample ("" when none).
query() {
  curl -sf --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
    /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if len(r)==1 else "")'
}
# prom_says SECONDS EXPR EXPECTED: waits until Prometheus answers EXPECTED for EXPR.
prom_says() {
  local deadline=$((SECONDS + $1)) got=""
  while true; do
    got=$(query "$2" || true)
    [ "$got" = "$3" ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || fail "Prometheus says '$got' for $2, expected $3"
    sleep 0.5
  done
}
prom_says 60 'count(up{job="marmot"} == 1)' 3

# write N FROM TO: rows FROM..TO on node N, one transaction per 10 rows.
write() {
  local n="$1" from="$2" to="$3" i batch=""
  for i in $(seq "$from" "$to"); do
    batch+="INSERT INTO items VALUES ($i, 'node $n row $i');"
    if [ $((i % 10)) = 0 ] || [ "$i" = "$to" ]; then sql "$WORK/node$n.db" "BEGIN; $batch COMMIT;"; batch=""; fi
  done
}
write 1 1 300
write 2 1001 1200
for n in 1 2 3; do seen_within 60 "$WORK/node$n.db" "SELECT count(*) FROM items" 500 || fail "node $n lacks rows"; done

m=marmot_test
prom_says 30 "${m}_changes_captured_total{node=\"1\"}" 300
prom_says 30 "${m}_changes_captured_total{node=\"2\"}" 200
prom_says 30 "${m}_changes_captured_total{node=\"3\"}" 0
prom_says 30 "${m}_changes_published_total{node=\"1\"}" 300
prom_says 30 "${m}_changes_published_total{node=\"2\"}" 200
prom_says 30 "${m}_changes_applied_total{node=\"3\"}" 500
prom_says 30 "${m}_changes_applied_total{node=\"1\"}" 200
prom_says 30 "${m}_changes_skipped_total{node=\"1\",reason=\"echo\"}" 300
prom_says 30 "${m}_changes_applied_total{node=\"2\"}" 300
prom_says 30 "${m}_changes_skipped_total{node=\"2\",reason=\"echo\"}" 200
prom_says 30 "sum(${m}_changes_dead_lettered_total)" 0
prom_says 30 "sum(${m}_change_log_pending_rows)" 0
prom_says 30 "count(${m}_nats_connected == 1)" 3
prom_says 30 "count(${m}_build_info == 1)" 3
# Every node applied the whole stream, and says so: applied = last, lag 0, on all three.
last=$(sql "$WORK/node3.db" "SELECT seq FROM __marmot__positions")
[ -n "$last" ] && [ "$last" -gt 0 ] || fail "node 3 stored no stream position"
prom_says 30 "count(${m}_stream_applied_sequence == $last)" 3
prom_says 30 "count(${m}_stream_last_sequence == $last)" 3
prom_says 30 "sum(${m}_stream_lag_messages)" 0
prom_says 30 "count(${m}_stream_healthy == 1)" 3
# Histograms: one observation per applied transaction, on every node.
prom_says 30 "count(${m}_apply_seconds_count > 0)" 3
prom_says 30 "count(${m}_publish_ack_seconds_count > 0)" 2

for n in 1 2 3; do
  curl -sf "http://127.0.0.1:${HTTP_PORT[$n]}/metrics" >"$WORK/metrics$n.txt" || fail "GET /metrics on node $n"
  lint=$(promtool check metrics <"$WORK/metrics$n.txt" 2>&1) || fail "promtool check metrics (node $n): $lint"
  [ -z "$lint" ] || fail "promtool check metrics complains about node $n: $lint"
  grep -q "^# HELP ${m}_changes_applied_total " "$WORK/metrics$n.txt" || fail "no HELP text on node $n"
  code=$(curl -s -o "$WORK/health$n.json" -w '%{http_code}' "http://127.0.0.1:${HTTP_PORT[$n]}/health")
  [ "$code" = 200 ] || fail "node $n /health answered $code: $(cat "$WORK/health$n.json")"
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${HTTP_PORT[$n]}/nothing")
  [ "$code" = 404 ] || fail "node $n answered $code for an unknown path"
done

# The counters move with the next writes.
write 3 2001 2050
prom_says 30 "${m}_changes_captured_total{node=\"3\"}" 50
prom_says 30 "${m}_changes_applied_total{node=\"1\"}" 250
prom_says 30 "${m}_changes_applied_total{node=\"2\"}" 350
# (A rate over the window: the expression yields a sample only when it is positive.)
deadline=$((SECONDS + 30))
until [ -n "$(query "sum(rate(${m}_changes_applied_total{node=~\"1|2\"}[30s])) > 0")" ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "Prometheus sees no rate of applied changes"
  sleep 0.5
done

for n in 1 2 3; do stop_pid "${NODE_PID[$n]}"; done
pass "Prometheus scraped 3 nodes; every counter matched the rows written"
