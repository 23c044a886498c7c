// Node's HTTP endpoints ([prometheus] enable): /metrics and /health (docs/OPERATIONS.md).
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "db/marmot_tables.h"
#include "db/publish_state.h"
#include "db/sqlite.h"
#include "node/node.h"
#include "telemetry/http_listener.h"
#include "telemetry/metrics.h"
#include "util/host_port.h"

// The status page, src/node/status_page.html, compiled in (cmake/embed_file.cmake).
extern const char kStatusPageHtml[];

namespace marmot {
namespace {

// What the node reads from its database for /metrics and /health; `error` set when it cannot.
struct DatabaseCounts {
  uint64_t change_log_last = 0;  // the newest change-log entry's sequence (0: empty)
  uint64_t persisted_confirmed = 0;
  uint64_t dead_letters = 0;
  uint64_t gaps = 0;
  std::string error;
};

// A connection of its own on every call (a scrape, a health check, a heartbeat every 2 s), not one
// kept open: an open connection goes on reading a file that has become unreadable or was deleted,
// and /health must say so. The cost is within the metrics-on figure of `marmot_bench metrics_cost`.
DatabaseCounts ReadDatabaseCounts(const std::string& db_path) {
  DatabaseCounts counts;
  Database::Options read;
  read.read_only = true;
  read.busy_timeout_ms = 1000;
  Result<Database> db = Database::Open(db_path, read);
  if (!db.ok()) {
    counts.error = db.status().message();
    return counts;
  }
  Result<int64_t> last = db->QueryInt("SELECT coalesce(max(seq), 0) FROM " + QuoteIdent(kChangeLogTable));
  Result<int64_t> dead = db->QueryInt("SELECT count(*) FROM " + QuoteIdent(kDeadLetterTable));
  Result<int64_t> gaps = db->QueryInt("SELECT count(*) FROM " + QuoteIdent(kGapsTable));
  Result<PublishState> state = LoadPublishState(*db);
  for (const Status* s : {&last.status(), &dead.status(), &gaps.status(), &state.status()}) {
    if (!s->ok()) {
      counts.error = "reading marmot's tables in " + db_path + ": " + s->message();
      return counts;
    }
  }
  counts.change_log_last = static_cast<uint64_t>(*last);
  counts.dead_letters = static_cast<uint64_t>(*dead);
  counts.gaps = static_cast<uint64_t>(*gaps);
  counts.persisted_confirmed = state->confirmed_seq;
  return counts;
}

}  // namespace

Status Node::StartHttpListener() {
  if (!options_.prometheus.enable) return Status();
  std::map<std::string, HttpRoute> routes;
  routes["/metrics"] = [this] {
    RefreshNodeState();
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics_->Serialize()};
  };
  routes["/status"] = [] { return HttpResponse{200, "text/html; charset=utf-8", kStatusPageHtml}; };
  routes["/status.json"] = [this] { return HttpResponse{200, "application/json", StatusJson()}; };
  routes["/health"] = [this] {
    HttpResponse r;
    r.content_type = "application/json";
    r.body = HealthJson(&r.status);
    return r;
  };
  Result<std::unique_ptr<HttpListener>> listener = HttpListener::Start(options_.prometheus.bind, routes);
  if (!listener.ok()) return listener.status();
  http_ = std::move(*listener);
  Result<HostPort> bound = ParseHostPort(http_->address());
  if (bound.ok() && !IsLoopbackHost(bound->host)) {
    spdlog::warn(
        "serving /metrics, /health and /status on http://{} to the network, without authentication: they "
        "show "
        "table names, stream positions and error messages; bind [prometheus] to 127.0.0.1 or firewall the "
        "port",
        http_->address());
  } else {
    spdlog::info("serving /metrics, /health and the status page /status on http://{}", http_->address());
  }
  return Status();
}

void Node::RefreshNodeState() {
  std::lock_guard<std::mutex> lock(refresh_mu_);
  NodeState state;
  if (NatsClient* client = health_client_.load()) {
    state.nats_connected = client->connected();
    state.nats_reconnects = client->reconnects();
  }
  if (EmbeddedNatsServer* server = health_server_.load()) state.server_restarts = server->restarts();
  DatabaseCounts counts = ReadDatabaseCounts(options_.db_path);
  uint64_t confirmed = std::max(counts.persisted_confirmed, metrics_->confirmed_seq());
  state.change_log_pending = counts.change_log_last > confirmed ? counts.change_log_last - confirmed : 0;
  state.dead_letters = counts.dead_letters;
  state.recorded_gaps = counts.gaps;
  metrics_->SetNodeState(state);
  last_state_ = state;
  last_database_error_ = counts.error;
}

Node::Health Node::CheckHealth() {
  RefreshNodeState();
  Health h;
  {
    std::lock_guard<std::mutex> lock(refresh_mu_);
    h.state = last_state_;
    h.database_error = last_database_error_;
  }
  const NodeState& state = h.state;
  const std::string& database_error = h.database_error;
  std::vector<std::string>& reasons = h.reasons;
  if (!database_error.empty()) reasons.push_back("database: " + database_error);
  if (!pipeline_up_.load())
    reasons.emplace_back("starting (or restoring a snapshot): the pipeline is not running yet");
  if (!state.nats_connected) reasons.emplace_back("NATS is not connected");
  const uint64_t max_lag = static_cast<uint64_t>(options_.prometheus.health_max_lag);
  h.streams = metrics_->Streams();
  const std::vector<StreamHealth>& seen = h.streams;
  for (const StreamHealth& s : seen) {
    if (!s.ok) reasons.push_back("stream " + s.stream + ": " + s.error);
    if (s.lag() > max_lag) {
      reasons.push_back(
          "stream " + s.stream + " is " + std::to_string(s.lag()) +
          " messages behind (more than [prometheus] health_max_lag = " + std::to_string(max_lag) + ")");
    }
  }
  if (options_.replicate && pipeline_up_.load() &&
      seen.size() < static_cast<size_t>(options_.layout.shards)) {
    reasons.emplace_back("not every shard stream is being consumed yet");
  }
  if (state.recorded_gaps > 0) {
    reasons.push_back(
        std::to_string(state.recorded_gaps) +
        " gap(s) recorded in __marmot__gaps: this copy may lack changes until a snapshot is restored "
        "(or, after checking with `marmot verify`, the rows are deleted)");
  }
  if (state.dead_letters > 0) {
    h.warnings.push_back(
        std::to_string(state.dead_letters) +
        " change(s) in the dead-letter table __marmot__dead_letter: those rows may differ from "
        "other nodes");
  }
  {
    std::lock_guard<std::mutex> lock(cluster_mu_);
    for (const std::string& difference : schema_differences_) h.warnings.push_back("schema: " + difference);
  }
  h.ready = reasons.empty();
  return h;
}

nlohmann::json Node::StreamsJson(const std::vector<StreamHealth>& streams) {
  nlohmann::json out = nlohmann::json::array();
  for (const StreamHealth& s : streams) {
    out.push_back({{"stream", s.stream},
                   {"ok", s.ok},
                   {"applied_seq", s.applied_seq},
                   {"last_seq", s.last_seq},
                   {"lag", s.lag()},
                   {"error", s.error}});
  }
  return out;
}

std::string Node::HealthJson(int* http_status) {
  Health h = CheckHealth();
  *http_status = h.ready ? 200 : 503;
  nlohmann::json body = {
      {"status", h.ready ? "ready" : "not ready"},
      {"node_id", options_.node_id},
      {"database", {{"path", options_.db_path}, {"ok", h.database_error.empty()}}},
      {"nats", {{"connected", h.state.nats_connected}, {"reconnects", h.state.nats_reconnects}}},
      {"streams", StreamsJson(h.streams)},
      {"health_max_lag", options_.prometheus.health_max_lag},
      {"change_log_pending", h.state.change_log_pending},
      {"dead_letters", h.state.dead_letters},
      {"recorded_gaps", h.state.recorded_gaps},
      {"reasons", h.reasons},
      {"warnings", h.warnings},
  };
  return body.dump(2) + "\n";
}

}  // namespace marmot
