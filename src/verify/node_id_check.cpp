#include "verify/node_id_check.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "stream/nats_client.h"

namespace marmot {

std::string NodeIdInUse(natsConnection* connection, const std::string& subject, uint64_t node_id,
                        std::chrono::milliseconds window) {
  natsInbox* inbox_raw = nullptr;
  if (natsInbox_Create(&inbox_raw) != NATS_OK) return "";
  std::string inbox = inbox_raw;
  natsInbox_Destroy(inbox_raw);
  natsSubscription* raw = nullptr;
  natsStatus s = natsConnection_SubscribeSync(&raw, connection, inbox.c_str());
  if (s != NATS_OK) {
    spdlog::debug("cannot ask whether node_id {} is in use: {}", node_id, NatsError(s));
    return "";
  }
  ClosingSubscription sub(connection, raw);
  const std::string request = nlohmann::json{{"op", "whois"}}.dump();
  s = natsConnection_PublishRequest(connection, subject.c_str(), inbox.c_str(), request.data(),
                                    static_cast<int>(request.size()));
  if (s != NATS_OK) {
    spdlog::debug("cannot ask whether node_id {} is in use: {}", node_id, NatsError(s));
    return "";
  }
  const auto deadline = std::chrono::steady_clock::now() + window;
  while (true) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    natsMsg* msg_raw = nullptr;
    s = natsSubscription_NextMsg(&msg_raw, sub.get(), left.count());
    if (s != NATS_OK) return "";  // a timeout: nobody else has this id
    NatsMsgPtr msg(msg_raw);
    nlohmann::json answer = nlohmann::json::parse(
        std::string_view(natsMsg_GetData(msg.get()), static_cast<size_t>(natsMsg_GetDataLength(msg.get()))),
        nullptr,
        /*allow_exceptions=*/false);
    if (!answer.is_object() || answer.value("node", uint64_t{0}) != node_id) continue;
    return "node_id " + std::to_string(node_id) + " is also used by a running node (database " +
           answer.value("db_path", std::string("?")) + " on host " + answer.value("host", std::string("?")) +
           "): replication works, but logs and snapshot names cannot tell the two apart; give each node its "
           "own node_id (the node_id key or -node-id)";
  }
}

}  // namespace marmot
