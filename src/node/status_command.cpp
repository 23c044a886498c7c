#include "node/status_command.h"

#include <chrono>
#include <cstdio>

#include "node/status_board.h"

namespace marmot {
namespace {

std::string Cut(std::string s, size_t max) {
  for (char& ch : s) {
    if (ch == '\n' || ch == '\t') ch = ' ';
  }
  return s.size() > max ? s.substr(0, max - 3) + "..." : s;
}

}  // namespace

int RunStatusCommand(const StatusCommand& c) {
  Result<std::unique_ptr<NatsClient>> client = NatsClient::Connect(c.nats);
  if (!client.ok()) {
    std::fprintf(stderr, "marmot status: %s\n", client.status().message().c_str());
    return kStatusCannotAsk;
  }
  std::string bucket = StatusBoard::Bucket(c.stream_prefix);
  Result<std::unique_ptr<StatusBoard>> board = StatusBoard::Open(client->get(), bucket, 1, /*create=*/false);
  if (!board.ok()) {
    std::fprintf(stderr, "marmot status: %s%s\n", board.status().message().c_str(),
                 board.status().Is(StatusCode::kNotFound)
                     ? " (no node of this cluster has run yet, or [nats] stream_prefix differs)"
                     : "");
    return kStatusCannotAsk;
  }
  Result<std::vector<nlohmann::json>> nodes = (*board)->ReadAll();
  if (!nodes.ok()) {
    std::fprintf(stderr, "marmot status: %s\n", nodes.status().message().c_str());
    return kStatusCannotAsk;
  }
  double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::printf("%-22s %-20s %-9s %8s %8s %6s %5s %6s %-8s %s\n", "NODE", "HOST", "STATE", "LAG", "PENDING",
              "DEAD", "GAPS", "SEEN", "VERSION", "WHY / LAST ERROR");
  int not_ready = 0;
  for (const nlohmann::json& n : *nodes) {
    bool ready = n.value("ready", false);
    if (!ready) ++not_ready;
    std::string why;
    if (!ready && n.contains("reasons") && n["reasons"].is_array() && !n["reasons"].empty()) {
      why = n["reasons"][0].get<std::string>();
    } else {
      why = n.value("last_error", "");
    }
    std::string node =
        "node " + std::to_string(n.value("node_id", uint64_t{0})) + " (" + n.value("instance", "") + ")";
    long seen = std::lround(now - n.value("time", now));
    std::printf("%-22s %-20s %-9s %8llu %8llu %6llu %5llu %5lds %-8s %s\n", Cut(node, 22).c_str(),
                Cut(n.value("host", "?"), 20).c_str(), ready ? "ready" : "NOT READY",
                static_cast<unsigned long long>(n.value("lag", uint64_t{0})),
                static_cast<unsigned long long>(n.value("change_log_pending", uint64_t{0})),
                static_cast<unsigned long long>(n.value("dead_letters", uint64_t{0})),
                static_cast<unsigned long long>(n.value("recorded_gaps", uint64_t{0})), seen,
                Cut(n.value("version", "?"), 8).c_str(), Cut(why, 120).c_str());
  }
  std::printf("%zu node(s), %d not ready (heartbeats older than %lld s are gone)\n", nodes->size(), not_ready,
              static_cast<long long>(StatusBoard::kTtl.count()));
  return not_ready == 0 ? kStatusAllReady : kStatusSomeNotReady;
}

}  // namespace marmot
