// MessageSink: where the publisher's messages go, and how it reads back what arrived there.
//
// The publisher (publisher.h) talks to JetStream only through this interface, so its loop (send,
// wait for acks, resend, recover after a crash) can be tested against an in-memory stream that
// loses acks, fails messages and crashes on demand. JetStreamSink (jetstream_sink.h) is the
// implementation on NATS.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace marmot {

// One message ready to publish.
struct OutgoingMessage {
  int shard = 0;
  // "<session>-<first>-<last>-<groups>-<shard>-<index>-<count>" (docs/CLUSTER.md): unique for
  // every message ever published, and stable when the same message is sent again.
  std::string msg_id;
  std::string chunk_header;  // "group index count" when this is one chunk of a split payload
  std::string payload;
  // Not sent: which changes of the batch the payload holds (indexes into the batch's changes).
  std::vector<uint32_t> changes;
};

// What became of one sent message.
struct PublishOutcome {
  bool stored = false;     // acknowledged: the stream holds it (maybe from an earlier send)
  bool duplicate = false;  // acknowledged as a duplicate of an earlier message with the same id
  uint64_t stream_seq = 0;
  std::string error;  // why it is not known to be stored (no ack in time, rejected, ...)
};

// A message read back from a stream.
struct StoredMessage {
  std::string payload;
  std::string chunk_header;  // Marmot-Chunk, empty when absent
};

class MessageSink {
 public:
  virtual ~MessageSink() = default;

  // The largest payload one message may carry.
  virtual size_t max_payload() const = 0;

  // Starts publishing `message` to the stream of its shard and returns without waiting; `token`
  // comes back with its outcome. Fails only when the message cannot even be queued.
  virtual Status Send(const OutgoingMessage& message, size_t token) = 0;

  // Waits until every message sent since the last call has an outcome, or `timeout` passed; then
  // calls `done(token, outcome)` once for each of them. A message without an answer by then is
  // reported as not stored, although the stream may hold it.
  virtual void AwaitOutcomes(std::chrono::milliseconds timeout,
                             const std::function<void(size_t token, const PublishOutcome&)>& done) = 0;

  // The range a stream held when it was read back.
  struct StoredRange {
    uint64_t first = 0;  // the oldest message held (last + 1 when empty)
    uint64_t last = 0;   // the newest message ever stored
  };

  // Calls `visit(msg_id, stream_seq)` for every message of shard `shard`'s stream with a sequence
  // above `after`, up to the stream's last message at the time of the call, in order. Returns the
  // stream's range: first > after + 1 means messages in between were discarded; last < after means
  // the stream lost messages (or was created again).
  virtual Result<StoredRange> ScanStored(
      int shard, uint64_t after, const std::function<void(std::string_view msg_id, uint64_t seq)>& visit) = 0;

  // The payload of the message at `seq` in shard `shard`'s stream.
  virtual Result<StoredMessage> Fetch(int shard, uint64_t seq) = 0;
};

}  // namespace marmot
