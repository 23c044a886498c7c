// NodeMetrics: what a node counts for Prometheus (/metrics) and for /health.
//
// One NodeMetrics lives as long as its Node, across pipeline restarts (a snapshot restore
// recreates the publisher and the consumers, not the metrics). The pipeline reports into it at
// batch granularity, never per row: a publisher batch, an applied consumer batch, a stream check.
// Values that are cheaper to read than to track (connection state, rows waiting in the change log,
// dead letters, recorded gaps) are set by the node just before each scrape (SetNodeState).
//
// The metric names are `<namespace>_<subsystem>_<name>` ([prometheus] namespace, default
// "marmot", and subsystem, default empty: then `marmot_<name>`); docs/OPERATIONS.md lists them.
// The library (Debian's prometheus-cpp core) owns the exposition format.
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace marmot {

struct ApplyStats;

// What one consumer last reported about its stream; read by /health.
struct StreamHealth {
  std::string stream;
  uint64_t applied_seq = 0;  // the last sequence applied here
  uint64_t last_seq = 0;     // the stream's last sequence, as last seen
  bool ok = true;            // false while the stream cannot be read or a batch cannot be applied
  std::string error;         // why not ok
  uint64_t lag() const { return last_seq > applied_seq ? last_seq - applied_seq : 0; }
};

// Values the node reads at scrape time.
struct NodeState {
  bool nats_connected = false;
  uint64_t nats_reconnects = 0;     // since the process started
  uint64_t change_log_pending = 0;  // change-log entries not yet confirmed by JetStream
  uint64_t dead_letters = 0;        // rows in __marmot__dead_letters
  uint64_t recorded_gaps = 0;       // rows in __marmot__gaps
  uint64_t server_restarts = 0;     // restarts of the embedded nats-server
};

class NodeMetrics {
 public:
  // `name_space` and `subsystem` prefix every metric name (either may be empty).
  NodeMetrics(const std::string& name_space, const std::string& subsystem);
  ~NodeMetrics();
  NodeMetrics(const NodeMetrics&) = delete;
  NodeMetrics& operator=(const NodeMetrics&) = delete;

  // The publisher read `rows` captured rows from the change log.
  void ChangesCaptured(size_t rows);
  // JetStream stored a settled group of batches: `rows` changes in `messages` messages, the first
  // sent `ack_seconds` before the last outcome arrived.
  void ChangesPublished(size_t rows, size_t messages, double ack_seconds);
  // One batch of `rows` changes was published (its size, for the histogram).
  void BatchPublished(size_t rows);
  // A consumer applied `messages` messages holding `changes` row changes in one transaction of
  // `seconds`; `stats` says what became of the changes.
  void BatchApplied(const ApplyStats& stats, size_t messages, size_t changes, double seconds);
  // A consumer dead-lettered a whole message (undecodable, or an incomplete chunk group).
  void MessageDeadLettered();
  // A batch of row changes waited for the schema stream.
  void SchemaWaited();
  // The schema consumer applied a message (`message`) or tried again; `settled`: the live schema
  // equals the cluster's.
  void SchemaApplied(bool message, bool settled);
  // Tables whose definitions differ from another node's (docs/SCHEMA.md).
  void SchemaDifferences(size_t tables);
  // A consumer's view of its stream: applied up to `applied_seq`, the stream ends at `last_seq`
  // (0: unchanged).
  void StreamProgress(const std::string& stream, uint64_t applied_seq, uint64_t last_seq);
  // A consumer cannot read its stream or apply a batch (`error` non-empty), or can again (empty).
  void StreamError(const std::string& stream, const std::string& error);
  // A consumer recorded missing messages.
  void GapRecorded(const std::string& stream);
  // A snapshot of `bytes` (compressed) was saved and uploaded in `seconds`, at `unix_time`.
  void SnapshotSaved(uint64_t bytes, double seconds, double unix_time);
  // A snapshot was downloaded and restored in `seconds`.
  void SnapshotRestored(double seconds);

  // The publisher confirmed every change-log entry up to `seq` (in memory; persisted later).
  void ChangesConfirmed(uint64_t seq) { confirmed_seq_.store(seq, std::memory_order_relaxed); }
  uint64_t confirmed_seq() const { return confirmed_seq_.load(std::memory_order_relaxed); }

  void SetNodeState(const NodeState& state);
  std::vector<StreamHealth> Streams() const;

  // The registry in Prometheus' text exposition format (version 0.0.4).
  std::string Serialize() const;

 private:
  struct Instruments;
  struct StreamInstruments;
  StreamInstruments& StreamLocked(const std::string& stream);  // REQUIRES: mu_ held

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Instruments> m_;
  mutable std::mutex mu_;  // guards streams_ and the node-state bookkeeping
  std::map<std::string, std::unique_ptr<StreamInstruments>> streams_;
  std::atomic<uint64_t> confirmed_seq_{0};
  uint64_t reconnects_seen_ = 0;
  uint64_t restarts_seen_ = 0;
};

}  // namespace marmot
