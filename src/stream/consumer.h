// ShardConsumer: applies one shard stream to the local database, in stream order.
//
// Subscribes with an ordered push consumer starting right after the position stored in the
// database (never a replay from the start), takes whatever messages are queued (up to
// max_batch_changes row changes), and applies them in one transaction through the Applier, which
// stores the stream sequence in the same transaction. Every node applies every message, its own
// included: that is what makes all nodes end with the last write in stream order.
//
// A message that cannot be decoded is recorded in the dead-letter table and skipped. A row too
// large for one message arrives in chunks (Marmot-Chunk header); until all chunks are in, the
// stored position stays before the first one, so a restart re-reads them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "codec/compression.h"
#include "db/applier.h"
#include "stream/nats_client.h"
#include "stream/streams.h"

namespace marmot {

struct ConsumerOptions {
  StreamLayout layout;
  int shard = 1;
  uint64_t node_id = 0;  // changes in messages from this node are marked as echoes
  size_t max_batch_changes = 8192;
  size_t max_decompressed_bytes = 512u << 20;
};

class ShardConsumer {
 public:
  // `local_cursor` returns the change reader's cursor when local writes are captured (see
  // Applier::Apply), nullopt otherwise.
  ShardConsumer(NatsClient* client, std::unique_ptr<Applier> applier, ConsumerOptions options,
                std::function<std::optional<uint64_t>()> local_cursor);
  ~ShardConsumer();
  ShardConsumer(const ShardConsumer&) = delete;
  ShardConsumer& operator=(const ShardConsumer&) = delete;

  // Subscribes; fails when the stream is missing or the position cannot be read.
  Status Start();
  // Applies messages until `stop` is set; the batch in progress is finished first.
  void Run(const std::atomic<bool>& stop);

  uint64_t applied_messages() const { return applied_messages_.load(); }
  uint64_t applied_changes() const { return applied_changes_.load(); }

 private:
  struct ChunkGroup {
    uint64_t first_seq = 0;
    size_t count = 0;
    std::map<size_t, std::string> parts;
  };
  // Decodes one message into `changes`, or records it as undecodable; a chunk is kept until its
  // group is complete.
  void Take(natsMsg* msg, uint64_t seq, RowChangeList* changes);
  Status DecodeInto(std::string_view payload, RowChangeList* changes);
  uint64_t SafePosition(uint64_t last_seq) const;

  NatsClient* client_;
  std::unique_ptr<Applier> applier_;
  ConsumerOptions options_;
  std::function<std::optional<uint64_t>()> local_cursor_;
  std::string stream_;
  natsSubscription* sub_ = nullptr;
  ZstdCodec zstd_;
  std::map<std::string, ChunkGroup> chunks_;
  // Kept from batch to batch so that decoding reuses their buffers, up to this many bytes (a batch
  // of huge rows is let go instead of holding that memory for good).
  static constexpr size_t kMaxKeptBufferBytes = 16u << 20;
  RowChangeList changes_;
  std::string inflated_;
  std::atomic<uint64_t> applied_messages_{0};
  std::atomic<uint64_t> applied_changes_{0};
};

}  // namespace marmot
