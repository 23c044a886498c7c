// Node: one marmot process's pipeline, from start to clean stop.
//
//   application writes -> capture triggers -> change log -> ChangeReader -> ChangePublisher
//        -> JetStream shard streams -> ShardConsumer (one per shard) -> Applier -> database
//
// Start() takes the database's process lock (one marmot per database), opens the database
// (switching it to WAL when it is the only user), installs capture, starts the embedded
// nats-server when no URLs are configured, connects, makes sure the shard streams exist, recovers
// what an earlier run published but did not record (ChangePublisher::Recover), and starts one
// publisher thread (publish = true) and one consumer thread per shard (replicate = true). Stop()
// asks every stage to finish what it holds: the publisher publishes what is already captured
// (while NATS is reachable) and consumers finish the batch being applied; then the connection
// closes and the embedded server stops.
//
// Snapshots (docs/SNAPSHOTS.md; node_snapshots.cpp): with [snapshot] enabled, a supervisor thread
// saves snapshots (every `interval`, when shard 1's sequence passes a multiple of
// max_entries/shards, before a sleep-timeout exit) and restores the newest one when this node
// cannot get the changes it needs from the streams: a gap recorded by a consumer (at start or
// while running), or a new node (no positions, empty tables) joining a cluster that has
// snapshots. A restore stops the pipeline, publishes what is captured, replaces the database's
// content under its write lock (only if nothing new was captured meanwhile), re-installs capture
// and starts the pipeline again from the snapshot's positions.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "db/change_log_hold.h"
#include "db/schema.h"
#include "node/database_watch.h"
#include "stream/nats_client.h"
#include "stream/nats_server.h"
#include "stream/streams.h"
#include "telemetry/metrics.h"
#include "util/process_lock.h"
#include "util/status.h"
#include "verify/verify_barriers.h"

namespace marmot {

class ChangeReader;
class ChangeWatcher;
class ChangePublisher;
class JetStreamSink;
class ShardConsumer;
class SchemaConsumer;
class HttpListener;
class StatusBoard;
class SnapshotKeeper;
class VerifyResponder;
class Database;
struct SnapshotManifest;

struct NodeOptions {
  std::string db_path;
  uint64_t node_id = 0;
  bool publish = true;
  bool replicate = true;
  size_t scan_max_changes = 512;
  std::chrono::milliseconds cleanup_interval{5000};
  std::chrono::milliseconds polling_interval{0};
  StreamLayout layout;
  TableSelection selection;                     // [replication] include / exclude
  size_t max_message_bytes = 64u << 20;         // [replication_log] max_message_bytes
  size_t max_batch_bytes = 64u << 20;           // [replication_log] max_batch_bytes
  NatsClientOptions nats;                       // urls empty -> embedded server
  std::optional<EmbeddedNatsOptions> embedded;  // set when urls is empty
  SnapshotConfig snapshot;                      // [snapshot]; nothing happens when !enabled
  std::string snapshot_bucket;                  // object store bucket for store = "nats"
  std::string lease_bucket;                     // KV bucket of the snapshot lease
  std::chrono::milliseconds sleep_timeout{0};   // idle this long: snapshot, then on_sleep_timeout
  std::function<void()> on_sleep_timeout;       // asks the process to stop (main raises SIGTERM)
  // The database file was deleted or replaced (database_watch.h): asks the process to stop and
  // exit with code 1.
  std::function<void()> on_database_lost;
  // [prometheus]: metric names always; with enable, the HTTP listener (/metrics, /health).
  PrometheusConfig prometheus;
};

class Node {
 public:
  // `cancel` (optional), when set while starting, makes Start give up (a signal arrived).
  static Result<std::unique_ptr<Node>> Start(NodeOptions options, const std::atomic<bool>* cancel = nullptr);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Asks every thread to finish and waits for them. Safe to call more than once.
  void Stop();

  std::string nats_url() const { return nats_url_; }

  // Saves a snapshot now (-save-snapshot): waits up to `lease_wait` while another node saves.
  Status SaveSnapshot(std::chrono::seconds lease_wait);

 private:
  explicit Node(NodeOptions options);
  Status PrepareDatabase();
  // Logs an error when __marmot__gaps says this node's copy may be incomplete.
  void ReportRecordedGaps();
  Status ConnectNats();
  Status StartPipeline();
  // Stops the publisher and consumer threads (the publisher publishes what it can first) and
  // drops the pipeline's objects; the connection and the server stay.
  void StopPipeline();
  bool Cancelled() const { return cancel_ && cancel_->load(); }

  // Snapshots (node_snapshots.cpp).
  Status OpenSnapshots();  // retries while NATS is unavailable, as the streams do
  Status OpenSnapshotsOnce();
  // A new node (no positions, no rows) restores the newest snapshot before the pipeline starts.
  Status BootstrapFromSnapshot();
  void SupervisorLoop();
  // Restores the newest snapshot when consumers recorded gaps it heals.
  void RestoreIfGaps();
  // Fetches `manifest` and restores it; with the pipeline running, stops and restarts it.
  Status RestoreSnapshot(const SnapshotManifest& manifest, bool pipeline_running);
  // One attempt to save; false when another node holds the lease.
  Result<bool> SaveSnapshotOnce();
  // SaveSnapshot with snapshot_mu_ held.
  Status SaveSnapshotWithin(std::chrono::seconds lease_wait);
  // Sum of rows published and messages applied: changes when anything moves.
  uint64_t ActivityCount() const;

  NodeOptions options_;
  std::optional<ProcessLock> lock_;
  std::unique_ptr<EmbeddedNatsServer> server_;
  std::unique_ptr<NatsClient> client_;
  std::string nats_url_;
  std::unique_ptr<ChangeReader> reader_;
  std::unique_ptr<ChangeWatcher> watcher_;
  std::unique_ptr<JetStreamSink> sink_;
  std::unique_ptr<ChangePublisher> publisher_;
  std::vector<std::unique_ptr<ShardConsumer>> consumers_;
  std::unique_ptr<SchemaConsumer> schema_consumer_;  // applies the schema stream (replicate = true)
  // A change names a table or column not here: waits until the schema stream is applied to its
  // end (steps of kSchemaWaitStep), and while this node's own schema change is in flight, up to
  // kSchemaWaitMax (Applier::set_schema_wait).
  Status WaitForSchema(SchemaConsumer* schema, const std::string& why);
  static constexpr std::chrono::seconds kSchemaWaitStep{2};
  static constexpr std::chrono::seconds kSchemaWaitMax{30};
  // Stores the configured table selection in the database, saying what changed (PrepareDatabase).
  Status StoreSelection(Database& db);
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  const std::atomic<bool>* cancel_ = nullptr;  // set while starting
  int64_t installed_schema_ = -1;              // the schema cookie right after capture was installed
  bool running_ = false;                       // Start() completed: Stop() publishes what is captured
  bool stopped_ = false;

  // Watches the database file (database_watch.h) every 2 s until Stop().
  void WatchDatabaseLoop();
  std::optional<DatabaseWatch> database_watch_;
  std::thread watch_thread_;

  // Endpoints (node_endpoints.cpp, docs/OPERATIONS.md). The listener starts before NATS is
  // connected (/health says why the node is not ready yet) and stops first.
  Status StartHttpListener();
  // Whether the node is ready, and why not (docs/OPERATIONS.md, "Health").
  struct Health {
    bool ready = false;
    std::vector<std::string> reasons;   // why not ready
    std::vector<std::string> warnings;  // worth knowing, not a reason
    NodeState state;
    std::string database_error;
    std::vector<StreamHealth> streams;
  };
  Health CheckHealth();
  std::string HealthJson(int* http_status);
  static nlohmann::json StreamsJson(const std::vector<StreamHealth>& streams);

  // Cluster status (node_status.cpp): every kHeartbeatEvery this node's heartbeat goes to the
  // status bucket; with the HTTP listener on, every node's lag is kept for the status page.
  static constexpr std::chrono::seconds kHeartbeatEvery{2};
  static constexpr std::chrono::minutes kHistory{10};
  void HeartbeatLoop();
  nlohmann::json Heartbeat();
  // This node's table digests and whether its schema is settled (docs/SCHEMA.md, "Schemas that
  // differ"); null when the database cannot be read.
  nlohmann::json SchemaJson();
  // Compares this node's table digests (`mine`, its heartbeat) with every other settled node's; a
  // difference seen in kSchemaDiffRounds heartbeats in a row is logged as an error and kept in
  // schema_differences_ (a /health warning) until it goes away.
  void CompareSchemas(const nlohmann::json& mine, const std::vector<nlohmann::json>& nodes);
  static constexpr int kSchemaDiffRounds = 3;
  std::map<std::string, int> schema_diff_rounds_;  // "table|node" -> heartbeats seen in a row
  std::vector<std::string> schema_differences_;    // guarded by cluster_mu_
  std::string StatusJson();
  std::unique_ptr<StatusBoard> board_;  // used by the heartbeat thread only
  std::thread heartbeat_;
  std::string instance_;                 // random: tells two nodes with one node_id apart
  std::mutex cluster_mu_;                // guards the two below
  std::vector<nlohmann::json> cluster_;  // the latest heartbeat of every node
  // Per node ("<node_id>-<instance>"): (Unix time, total lag) samples of the last kHistory.
  std::map<std::string, std::deque<std::pair<double, uint64_t>>> lag_history_;
  // Reads the values metrics_ takes at scrape time (connection, change log, dead letters, gaps).
  void RefreshNodeState();
  std::unique_ptr<NodeMetrics> metrics_;
  std::unique_ptr<HttpListener> http_;
  std::atomic<NatsClient*> health_client_{nullptr};  // client_, once connected
  std::atomic<EmbeddedNatsServer*> health_server_{nullptr};
  std::atomic<bool> pipeline_up_{false};  // the pipeline runs (not starting, not restoring)
  std::mutex refresh_mu_;                 // guards the two below
  NodeState last_state_;                  // as of the last RefreshNodeState
  std::string last_database_error_;

  std::unique_ptr<VerifyResponder> verify_;  // answers `marmot verify` (docs/VERIFY.md)
  // Where the consumers stop for verify, and the change-log entries it keeps; both outlive the
  // pipeline (a restore restarts it).
  VerifyBarriers verify_barriers_;
  ChangeLogHold change_log_hold_;
  std::string nats_url_file_;  // the embedded server's URL, for `marmot verify`

  std::unique_ptr<SnapshotKeeper> snapshots_;
  std::thread supervisor_;
  std::atomic<bool> shutdown_{false};
  std::mutex supervisor_mu_;
  std::condition_variable supervisor_cv_;
  std::mutex snapshot_mu_;        // one user of snapshots_ at a time: the supervisor, or SaveSnapshot
  std::string last_restored_id_;  // the snapshot this node restored last (never again for a gap)
  std::string gap_note_;          // the last "cannot heal" message, logged once
};

}  // namespace marmot
