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
// Threads: nats.c delivers requests on one thread, which answers the quick ones (whois, prepare,
// end, and the "hello" of a digest request) itself and hands the others (digest, exclude,
// buckets, rows, repair) to a worker thread each, at most kMaxWorkers at a time. So a node that
// is digesting a large database for one verify still answers another verify's discovery at once.
// Digests are taken one session at a time (two sessions waiting for their barriers at once could
// each hold a consumer the other needs); the rest of a session's requests run beside another
// session's, each on its own connection (one mutex per session). A janitor thread ends idle
// sessions and joins finished workers.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
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
class Database;
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
  // How many requests may be worked on at once; one more is answered with an error at once.
  static constexpr size_t kMaxWorkers = 8;

  static Result<std::unique_ptr<VerifyResponder>> Start(natsConnection* connection,
                                                        VerifyResponderOptions options);
  ~VerifyResponder();
  VerifyResponder(const VerifyResponder&) = delete;
  VerifyResponder& operator=(const VerifyResponder&) = delete;

 private:
  VerifyResponder(natsConnection* connection, VerifyResponderOptions options);
  static void OnMessage(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  static void OnComplete(void* closure);
  // sqlite3 progress handler of every connection the responder opens: a stop ends the work.
  static int Interrupted(void* closure);
  void WatchForStop(Database& db);
  // Handle, answering an error instead of throwing.
  void HandleSafely(const std::string& reply, const nlohmann::json& request);
  // Runs Handle on a worker thread (or answers that too many are busy).
  void HandleOnWorker(const std::string& reply, const nlohmann::json& request);
  // Joins the workers that finished. REQUIRES: mu_ held.
  void ReapWorkers();
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
  // The open session `id`, marked as used now. The caller locks its mutex to work in it.
  Result<std::shared_ptr<VerifySession>> FindSession(const std::string& id);
  Result<nlohmann::json> Buckets(const std::string& id, const std::string& table);
  Result<nlohmann::json> Rows(const std::string& id, const std::string& table, const nlohmann::json& buckets);
  Result<nlohmann::json> Repair(const std::string& table, const nlohmann::json& keys);
  void JanitorLoop();

  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  natsConnection* connection_;
  VerifyResponderOptions options_;
  NatsSubscriptionPtr subscription_;
  std::atomic<bool> stopping_{false};  // set first when stopping: database work and new requests end
  std::timed_mutex digest_mu_;  // held while a session waits for its barriers and digests (OpenSession)
  std::mutex mu_;               // guards everything below
  std::condition_variable cv_;
  bool janitor_stop_ = false;
  bool subscription_closed_ = false;
  std::map<std::string, std::shared_ptr<VerifySession>> sessions_;
  std::map<std::string, Prepared> prepared_;
  std::list<Worker> workers_;
  std::thread janitor_;
};

}  // namespace marmot
