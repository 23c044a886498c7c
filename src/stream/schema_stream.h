// The schema stream: schema changes, in one order for the whole cluster (docs/SCHEMA.md).
//
// The change reader publishes a node's schema change (PublishSchemaMessage) before it reads any
// row written under it, and waits for the stream's acknowledgement; so a row that needs a schema
// change is stored in its shard stream after the change is stored in the schema stream. The
// SchemaConsumer applies the stream's messages in order (SchemaApplier), and a shard consumer that
// meets a table or column it does not have waits for it (WaitCaughtUp) before it gives up on the
// change.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "db/schema_applier.h"
#include "stream/nats_client.h"
#include "stream/streams.h"
#include "telemetry/metrics.h"
#include "util/status.h"

namespace marmot {

// Publishes one schema message from node `node_id` and waits for the acknowledgement; returns the
// message's stream sequence (the earlier one when JetStream recognised a re-sent message).
Result<uint64_t> PublishSchemaMessage(NatsClient* client, const StreamLayout& layout, uint64_t node_id,
                                      const std::string& payload);

class SchemaConsumer {
 public:
  // `metrics` (may be null) counts messages and says whether the schema is settled.
  SchemaConsumer(NatsClient* client, const StreamLayout& layout, std::unique_ptr<SchemaApplier> applier,
                 NodeMetrics* metrics);
  ~SchemaConsumer();
  SchemaConsumer(const SchemaConsumer&) = delete;
  SchemaConsumer& operator=(const SchemaConsumer&) = delete;

  // Starts the thread that reads the stream after the stored position.
  Status Start();
  void Stop();

  // Waits (at most `timeout`) until every message the schema stream held at the call has been
  // applied and the live schema caught up with them.
  void WaitCaughtUp(std::chrono::milliseconds timeout);

  uint64_t applied() const { return applied_.load(); }

 private:
  void Run();

  NatsClient* client_;
  StreamLayout layout_;
  NodeMetrics* metrics_;
  std::unique_ptr<SchemaApplier> applier_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> applied_{0};
  std::mutex mu_;
  std::condition_variable applied_cv_;
};

}  // namespace marmot
