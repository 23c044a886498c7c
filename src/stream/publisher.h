// ChangePublisher: moves captured changes from the change log to the shard streams.
//
// Loop (on the caller's thread): wait for the watcher, read a batch of at most scan_max_changes
// log entries, group its row changes by shard, encode each group as one message (docs/PROTOCOL.md;
// zstd when the streams are compressed; split into smaller messages, or into chunks for a single
// huge row, when over the server's max payload) and publish them asynchronously. While batches
// come full, up to kMaxBatchesInFlight are sent before waiting for their acks; then all of them
// are confirmed to the reader at once. Only confirmed entries are ever deleted from the log.
//
// Each message carries a Nats-Msg-Id derived from the node id, the log range and the shard, so a
// batch that is published again (after a failed ack or a crash) is deduplicated by JetStream. On a
// failed or missing ack the same batches are sent again from memory (not re-read: rows may have
// been overwritten by incoming changes since) with backoff; while NATS is unreachable, changes
// simply wait in the change log.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codec/compression.h"
#include "db/change_reader.h"
#include "db/change_watcher.h"
#include "stream/nats_client.h"
#include "stream/streams.h"
#include "util/status.h"

namespace marmot {

struct PublisherOptions {
  uint64_t node_id = 0;
  StreamLayout layout;
  size_t scan_max_changes = 512;
  std::chrono::milliseconds cleanup_interval{5000};
  std::chrono::milliseconds ack_timeout{10000};
};

// One message ready to publish (exposed for tests).
struct OutgoingMessage {
  int shard = 0;
  std::string msg_id;
  std::string chunk_header;  // "group index count" when this is one chunk of a split payload
  std::string payload;
};

// Encodes a batch into messages: grouped by shard, compressed with `zstd` when `layout.compress`,
// each at most `max_payload` bytes of payload.
Result<std::vector<OutgoingMessage>> BuildMessages(const ChangeBatch& batch, const PublisherOptions& options,
                                                   size_t max_payload, ZstdCodec* zstd);

class ChangePublisher {
 public:
  ChangePublisher(NatsClient* client, ChangeReader* reader, ChangeWatcher* watcher, PublisherOptions options);
  ~ChangePublisher();
  ChangePublisher(const ChangePublisher&) = delete;
  ChangePublisher& operator=(const ChangePublisher&) = delete;

  // Runs until `stop` is set and the watcher is stopped; finishes the batch in flight first.
  void Run(const std::atomic<bool>& stop);

  // The reader's cursor as of the last read, for the applier on other threads (see
  // Applier::Apply's local_unread_after).
  uint64_t cursor() const { return cursor_.load(std::memory_order_acquire); }
  uint64_t published_rows() const { return published_rows_.load(); }

 private:
  // How many batches may be sent before waiting for their acks.
  static constexpr size_t kMaxBatchesInFlight = 8;
  // Confirmed batches are kept for reuse only up to this many bytes of row values each.
  static constexpr size_t kMaxPooledBatchBytes = 8u << 20;

  Status SendBatch(const ChangeBatch& batch);  // asynchronous publishes, no waiting
  Status AwaitAcks();                          // waits for every outstanding ack
  // After `failure`, sends `unacked` again (same batches, same dedup ids) with backoff until all
  // are acknowledged; gives up only when `stop` is set.
  Status ResendUntilAcked(const std::vector<ChangeBatch>& unacked, const std::atomic<bool>& stop,
                          Status failure);
  Status ReadAfterWake(ChangeWatcher::Wake wake, ChangeBatch* batch);
  // A batch for the next read: a recycled one (its buffers are reused) or a new one.
  ChangeBatch TakeSpareBatch();
  // Keeps `batch` in spare_batches_ for the next read, unless its buffers are too large.
  void Recycle(ChangeBatch batch);

  NatsClient* client_;
  ChangeReader* reader_;
  ChangeWatcher* watcher_;
  PublisherOptions options_;
  jsCtx* js_ = nullptr;  // own context: its async-publish error handler is ours
  std::atomic<uint64_t> cursor_{0};
  std::atomic<uint64_t> published_rows_{0};
  std::atomic<int> failed_acks_{0};
  std::string last_ack_error_;
  bool published_any_ = false;  // touched by the Run thread and the destructor only
  ZstdCodec zstd_{1};           // its context is reused: creating one per message costs ~1 MB of memset
  // Batches whose changes were confirmed, kept so the next reads reuse their buffers.
  std::vector<ChangeBatch> spare_batches_;
  friend void OnPublishError(jsCtx*, jsPubAckErr*, void*);
};

}  // namespace marmot
