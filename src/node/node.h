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
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "stream/nats_client.h"
#include "stream/nats_server.h"
#include "stream/streams.h"
#include "util/process_lock.h"
#include "util/status.h"

namespace marmot {

class ChangeReader;
class ChangeWatcher;
class ChangePublisher;
class JetStreamSink;
class ShardConsumer;

struct NodeOptions {
  std::string db_path;
  uint64_t node_id = 0;
  bool publish = true;
  bool replicate = true;
  size_t scan_max_changes = 512;
  std::chrono::milliseconds cleanup_interval{5000};
  std::chrono::milliseconds polling_interval{0};
  StreamLayout layout;
  size_t max_message_bytes = 64u << 20;         // [replication_log] max_message_bytes
  size_t max_batch_bytes = 64u << 20;           // [replication_log] max_batch_bytes
  NatsClientOptions nats;                       // urls empty -> embedded server
  std::optional<EmbeddedNatsOptions> embedded;  // set when urls is empty
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

 private:
  explicit Node(NodeOptions options);
  Status PrepareDatabase();
  // Logs an error when __marmot__gaps says this node's copy may be incomplete.
  void ReportRecordedGaps();
  Status ConnectNats();
  Status StartPipeline();
  bool Cancelled() const { return cancel_ && cancel_->load(); }

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
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  const std::atomic<bool>* cancel_ = nullptr;  // set while starting
  int64_t installed_schema_ = -1;              // the schema cookie right after capture was installed
  bool running_ = false;                       // Start() completed: Stop() publishes what is captured
  bool stopped_ = false;
};

}  // namespace marmot
