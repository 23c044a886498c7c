// Node's part of the cluster status (docs/OPERATIONS.md, "Cluster status"): the heartbeat it puts
// into the status bucket, and /status.json for the status page.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "db/marmot_tables.h"
#include "db/schema_applier.h"
#include "db/schema_objects.h"
#include "db/sqlite.h"
#include "node/node.h"
#include "node/status_board.h"
#include "telemetry/http_listener.h"
#include "telemetry/logging.h"
#include "telemetry/retried_failure.h"
#include "util/clock.h"
#include "util/host_port.h"

namespace marmot {
namespace {

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The newest `limit` dead letters of `db_path`, for the status page.
nlohmann::json RecentDeadLetters(const std::string& db_path, int limit) {
  nlohmann::json out = nlohmann::json::array();
  Database::Options read;
  read.read_only = true;
  read.busy_timeout_ms = 1000;
  Result<Database> db = Database::Open(db_path, read);
  if (!db.ok()) return out;
  Result<Statement> q =
      db->Prepare("SELECT id, at, coalesce(stream, ''), coalesce(stream_seq, 0), tbl, op, reason FROM " +
                  QuoteIdent(kDeadLetterTable) + " ORDER BY id DESC LIMIT " + std::to_string(limit));
  if (!q.ok()) return out;
  while (true) {
    Result<bool> row = q->Step();
    if (!row.ok() || !*row) break;
    out.push_back({{"id", q->ColumnInt(0)},
                   {"at", q->ColumnText(1)},
                   {"stream", q->ColumnText(2)},
                   {"stream_seq", q->ColumnInt(3)},
                   {"table", q->ColumnText(4)},
                   {"op", q->ColumnText(5)},
                   {"reason", q->ColumnText(6).substr(0, 300)}});
  }
  return out;
}

}  // namespace

nlohmann::json Node::Heartbeat() {
  Health h = CheckHealth();
  uint64_t lag = 0;
  for (const StreamHealth& s : h.streams) lag += s.lag();
  LoggedError error = LastLoggedError();
  return {
      {"node_id", options_.node_id},
      {"instance", instance_},
      {"host", LocalHostName().empty() ? "?" : LocalHostName()},
      {"http", http_ ? http_->address() : ""},
      {"version", MARMOT_VERSION},
      {"db_path", options_.db_path},
      {"time", UnixNow()},
      {"ready", h.ready},
      {"reasons", h.reasons},
      {"warnings", h.warnings},
      {"nats_connected", h.state.nats_connected},
      {"streams", StreamsJson(h.streams)},
      {"lag", lag},
      {"change_log_pending", h.state.change_log_pending},
      {"dead_letters", h.state.dead_letters},
      {"recorded_gaps", h.state.recorded_gaps},
      {"last_error", error.message.substr(0, 500)},
      {"last_error_time", error.unix_time},
      {"schema", SchemaJson()},
  };
}

nlohmann::json Node::SchemaJson() {
  Result<Database> db = Database::Open(options_.db_path);
  if (!db.ok()) return nullptr;
  Result<SchemaObjects> live = ReadLiveSchema(*db);
  Result<SchemaObjects> canon = LoadSchemaRecord(*db, kCanonRecord);
  Result<bool> in_flight = OwnSchemaChangeInFlight(*db);
  if (!live.ok() || !canon.ok() || !in_flight.ok()) return nullptr;
  return {{"tables", TableDigests(*live)}, {"settled", !*in_flight && *live == *canon}};
}

void Node::CompareSchemas(const nlohmann::json& mine, const std::vector<nlohmann::json>& nodes) {
  const std::string self = std::to_string(options_.node_id) + "-" + instance_;
  auto settled = [](const nlohmann::json& heartbeat) {
    return heartbeat.contains("schema") && heartbeat["schema"].is_object() &&
           heartbeat["schema"].value("settled", false) && heartbeat["schema"].contains("tables");
  };
  std::map<std::string, std::string> now;  // "table|node" -> message
  if (settled(mine)) {
    const nlohmann::json& ours = mine["schema"]["tables"];
    for (const nlohmann::json& node : nodes) {
      std::string id = std::to_string(node.value("node_id", uint64_t{0})) + "-" + node.value("instance", "");
      if (id == self || !settled(node)) continue;
      const nlohmann::json& theirs = node["schema"]["tables"];
      std::set<std::string> tables;
      for (const auto& [table, digest] : ours.items()) tables.insert(table);
      for (const auto& [table, digest] : theirs.items()) tables.insert(table);
      for (const std::string& table : tables) {
        std::string a = ours.value(table, "");
        std::string b = theirs.value(table, "");
        if (a == b) continue;
        std::string other = "node " + std::to_string(node.value("node_id", uint64_t{0}));
        now[table + "|" + id] = "the definition of table " + QuoteIdent(table) +
                                " (or of its indexes or triggers) differs from " + other + "'s" +
                                (a.empty()   ? " (it is not here)"
                                 : b.empty() ? " (" + other + " does not have it)"
                                             : "");
      }
    }
  }
  std::vector<std::string> reported;
  for (const auto& [key, message] : now) {
    int rounds = ++schema_diff_rounds_[key];
    if (rounds == kSchemaDiffRounds) {
      spdlog::error(
          "schema: {}, and no schema change in flight explains it: rows of that table may be applied "
          "differently "
          "on the two nodes (docs/SCHEMA.md, schemas that differ); make the definitions equal",
          message);
    }
    if (rounds >= kSchemaDiffRounds) reported.push_back(message);
  }
  for (auto it = schema_diff_rounds_.begin(); it != schema_diff_rounds_.end();) {
    if (now.count(it->first) > 0) {
      ++it;
      continue;
    }
    if (it->second >= kSchemaDiffRounds)
      spdlog::info("schema: {} agrees again", it->first.substr(0, it->first.find('|')));
    it = schema_diff_rounds_.erase(it);
  }
  metrics_->SchemaDifferences(reported.size());
  std::lock_guard<std::mutex> lock(cluster_mu_);
  schema_differences_ = std::move(reported);
}

void Node::HeartbeatLoop() {
  RetriedFailure failure(SystemClock::Get());
  const std::string key = std::to_string(options_.node_id) + "-" + instance_;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(supervisor_mu_);
      if (supervisor_cv_.wait_for(lock, kHeartbeatEvery, [this] { return shutdown_.load(); })) return;
    }
    Status s;
    if (!board_) {
      Result<std::unique_ptr<StatusBoard>> board = StatusBoard::Open(
          client_.get(), StatusBoard::Bucket(options_.layout.stream_prefix), options_.layout.replicas, true);
      if (board.ok()) board_ = std::move(*board);
      s = board.status();
    }
    nlohmann::json heartbeat;
    if (board_) {
      heartbeat = Heartbeat();
      s = board_->Publish(key, heartbeat);
    }
    if (s.ok() && board_) {
      Result<std::vector<nlohmann::json>> all = board_->ReadAll();
      if (all.ok()) CompareSchemas(heartbeat, *all);
      if (all.ok() && http_) {
        double now = UnixNow();
        std::lock_guard<std::mutex> lock(cluster_mu_);
        cluster_ = std::move(*all);
        for (const nlohmann::json& node : cluster_) {
          std::string id =
              std::to_string(node.value("node_id", uint64_t{0})) + "-" + node.value("instance", "");
          auto& samples = lag_history_[id];
          samples.emplace_back(node.value("time", now), node.value("lag", uint64_t{0}));
          while (!samples.empty() && samples.front().first < now - 60.0 * kHistory.count())
            samples.pop_front();
        }
        std::erase_if(lag_history_, [&](const auto& entry) { return entry.second.empty(); });
      }
      s = all.status();
    }
    if (s.ok()) {
      failure.Clear();
    } else {
      failure.Log("cluster status: " + s.message());
    }
  }
}

std::string Node::StatusJson() {
  nlohmann::json history = nlohmann::json::object();
  nlohmann::json nodes;
  {
    std::lock_guard<std::mutex> lock(cluster_mu_);
    nodes = cluster_;
    for (const auto& [id, samples] : lag_history_) {
      nlohmann::json points = nlohmann::json::array();
      for (const auto& [t, lag] : samples) points.push_back({t, lag});
      history[id] = std::move(points);
    }
  }
  if (nodes.is_null()) nodes = nlohmann::json::array();
  nlohmann::json body = {
      {"self", std::to_string(options_.node_id) + "-" + instance_},
      {"time", UnixNow()},
      {"nodes", nodes},
      {"lag_history", history},
      {"dead_letters", RecentDeadLetters(options_.db_path, 20)},
  };
  return body.dump();
}

}  // namespace marmot
