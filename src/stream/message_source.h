// MessageSource: one shard stream as the consumer sees it, in stream order.
//
// The consumer (consumer.h) reads its stream only through this interface, so its checks (every
// sequence follows the last one, positions inside the stream's range, a recreated stream noticed)
// can be tested against an in-memory stream that discards, jumps and is recreated on demand.
// JetStreamSource (jetstream_source.h) is the implementation on NATS.
#pragma once

#include <xxhash.h>

#include <chrono>
#include <cstdint>
#include <string_view>

#include "util/status.h"

namespace marmot {

// What tells one stored message from another at the same sequence: a 64-bit hash (XXH3) of its
// payload, never 0 (0 means "unknown" where it is kept).
inline int64_t PayloadHash(std::string_view payload) {
  int64_t h = static_cast<int64_t>(XXH3_64bits(payload.data(), payload.size()));
  return h == 0 ? 1 : h;
}

struct StreamState {
  uint64_t first_seq = 0;  // the oldest message still held (last_seq + 1 when empty)
  uint64_t last_seq = 0;   // the newest message ever stored (0 for a new stream)
  uint64_t messages = 0;
  int64_t created_ns = 0;  // when the stream was created: differs after it was deleted and re-created
  // False when the answer came from a replica that knows no leader for the stream (a partitioned
  // or restarting server answers with its own copy): its range may lag the stream's.
  bool leader_known = true;

  bool operator==(const StreamState&) const = default;
};

// One message; its views stay valid until the next call to Next() or Subscribe().
struct SourceMessage {
  uint64_t seq = 0;
  int64_t timestamp_ns = 0;  // when the stream stored it
  uint64_t pending = 0;      // messages after this one in the stream when it was delivered
  std::string_view payload;
  std::string_view chunk_header;  // Marmot-Chunk, empty when absent
  std::string_view barrier;       // Marmot-Verify-Barrier (a verify session), empty when absent
};

class MessageSource {
 public:
  virtual ~MessageSource() = default;

  // The stream's current range and creation time.
  virtual Result<StreamState> State() = 0;

  // (Re)starts delivery at `start_seq` (the stream's first message when that is older).
  virtual Status Subscribe(uint64_t start_seq) = 0;

  // The next message, waiting up to `timeout`; false when none came. Fails when the subscription
  // is broken (the caller waits and asks again).
  virtual Result<bool> Next(std::chrono::milliseconds timeout, SourceMessage* out) = 0;

  // True when a message is already waiting (Next would return at once).
  virtual bool HasPending() = 0;

  // PayloadHash of message `seq` as the stream holds it now; NotFound when it does not hold it.
  virtual Result<int64_t> StoredHash(uint64_t seq) = 0;
};

}  // namespace marmot
