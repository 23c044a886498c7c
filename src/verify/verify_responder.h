// VerifyResponder: a node's side of `marmot verify` (verify_protocol.h, docs/VERIFY.md).
//
// Subscribes to the verify subject on the node's NATS connection and answers each request from its
// own read-only connection to the database. A session's digests, bucket lists and row lists all
// come from one read transaction, so they describe one state of the database together with the
// stream positions it had applied; the transaction ends on "end", after kVerifySessionIdle
// without a request, or when the responder stops. Repair writes change-log entries on a
// connection of its own; the node's publisher sends them like any captured change.
//
// Thread safety: nats.c delivers requests on one thread; a janitor thread ends idle sessions.
#pragma once

#include <nats/nats.h>
#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <thread>
#include <vector>

#include "stream/nats_handles.h"
#include "util/status.h"

namespace marmot {

struct VerifySession;

struct VerifyResponderOptions {
  std::string db_path;
  uint64_t node_id = 0;
  std::string instance;  // random per process: tells apart nodes that share a node_id
  std::string subject;
  bool publishing = true;  // false: local changes never leave this node; none count as unpublished
};

class VerifyResponder {
 public:
  static Result<std::unique_ptr<VerifyResponder>> Start(natsConnection* connection,
                                                        VerifyResponderOptions options);
  ~VerifyResponder();
  VerifyResponder(const VerifyResponder&) = delete;
  VerifyResponder& operator=(const VerifyResponder&) = delete;

 private:
  VerifyResponder(natsConnection* connection, VerifyResponderOptions options);
  static void OnMessage(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  static void OnComplete(void* closure);
  void Handle(const std::string& reply, const nlohmann::json& request);
  void Reply(const std::string& reply, nlohmann::json answer);
  Result<nlohmann::json> OpenSession(const std::string& id);
  Result<nlohmann::json> Buckets(const std::string& id, const std::string& table);
  Result<nlohmann::json> Rows(const std::string& id, const std::string& table, const nlohmann::json& buckets);
  Result<nlohmann::json> Repair(const std::string& table, const nlohmann::json& keys);
  void JanitorLoop();
  class ActiveDb;

  natsConnection* connection_;
  VerifyResponderOptions options_;
  NatsSubscriptionPtr subscription_;
  std::atomic<bool> stopping_{false};
  std::mutex active_mu_;
  sqlite3* active_db_ = nullptr;  // the connection a request works on now; a stop interrupts it
  std::mutex mu_;                 // guards sessions_, janitor_stop_, subscription_closed_
  std::condition_variable cv_;
  bool janitor_stop_ = false;
  bool subscription_closed_ = false;
  std::map<std::string, std::unique_ptr<VerifySession>> sessions_;
  std::thread janitor_;
};

}  // namespace marmot
