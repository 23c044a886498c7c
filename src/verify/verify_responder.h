// VerifyResponder: a node's side of `marmot verify` (verify_protocol.h, docs/VERIFY.md).
//
// Subscribes to the verify subject on the node's NATS connection and answers each request from its
// own read-only connection to the database. A session's digests, bucket lists and row lists all
// come from one read transaction, so they describe one state of the database together with the
// stream positions it had applied; the transaction ends on "end", after kVerifySessionIdle
// without a request, or when the responder stops. Repair writes change-log entries on a
// connection of its own; the node's publisher sends them like any captured change.
//
// Under write load (docs/VERIFY.md): "prepare" holds back the change-log entries that may reach
// the streams after the barriers (ChangeLogHold) and makes the consumers stop at the barriers
// (VerifyBarriers); "digest" waits for every consumer to be there, starts the read transaction,
// lets them go on, and names the rows this node wrote that are not surely before the barriers;
// "exclude" takes rows (those of every node) out of the session's digests.
//
// Thread safety: nats.c delivers requests on one thread; a janitor thread ends idle sessions.
#pragma once

#include <nats/nats.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
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

class ChangeLogHold;
class VerifyBarriers;
struct VerifySession;

struct VerifyResponderOptions {
  std::string db_path;
  uint64_t node_id = 0;
  std::string instance;  // random per process: tells apart nodes that share a node_id
  std::string subject;
  bool publishing = true;            // false: local changes never leave this node; none count as unpublished
  std::vector<std::string> streams;  // the shard streams this node applies (none: replicate off)
  VerifyBarriers* barriers = nullptr;  // where the consumers stop (not owned)
  ChangeLogHold* hold = nullptr;       // what the publisher's cleanup keeps (not owned; null: no publisher)
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
  Result<nlohmann::json> Prepare(const std::string& id, std::chrono::milliseconds hold);
  struct Prepared {
    uint64_t held = 0;  // ChangeLogHold::Hold()
    bool holding = false;
    bool opening = false;  // a digest request is taking the snapshot: the janitor leaves it
    std::chrono::steady_clock::time_point expires;
  };
  Result<nlohmann::json> OpenSession(const std::string& id, std::chrono::milliseconds wait);
  // The read transaction and its digests, once the consumers are at the barriers.
  Result<nlohmann::json> Digest(const std::string& id, const Prepared& prepared,
                                const std::map<std::string, uint64_t>& barriers);
  // The keys (by table) of this node's change-log entries after `held`, in the session's snapshot.
  Result<nlohmann::json> LocalKeys(VerifySession& session, uint64_t held);
  Result<nlohmann::json> Exclude(const std::string& id, const nlohmann::json& keys);
  // Ends a prepared session that will not open (releases its hold and barriers).
  void DropPrepared(const std::string& id);
  // The open session `id`, marked as used now. REQUIRES: mu_ held.
  Result<VerifySession*> FindSession(const std::string& id);
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
  std::map<std::string, Prepared> prepared_;
  std::thread janitor_;
};

}  // namespace marmot
