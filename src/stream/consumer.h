// ShardConsumer: applies one shard stream to the local database, in stream order, and notices every
// message it did not get.
//
// Starts right after the position stored in the database (never a replay from the start), takes
// whatever messages are queued (up to max_batch_changes row changes or max_batch_bytes of decoded
// messages), and applies them in one transaction through the Applier, which stores the stream
// sequence (and the stream's creation time) in the same transaction. Every node applies every
// message, its own included: that is what makes all nodes end with the last write in stream order.
//
// Never silent about a missing message (DESIGN property 11). Each message's sequence must follow
// the previous one; at start the stored position must lie inside the stream's range; every few
// seconds the stream's creation time and range are checked again. A jump (messages discarded before
// this node read them), a position older than the stream's first message, a stream that was
// deleted and re-created, or a stream that ends before this node's position is logged at error
// level with the sequences involved and recorded in __marmot__gaps (the node's copy may be
// incomplete until a snapshot is restored); then consuming goes on from the stream's next message.
// The position is stored with a hash of the message at it; at start and at every check that
// message must still be the one applied, else the stream's history was replaced (a restored NATS
// store that grew again has a fine-looking range): a gap, and the stream is applied again from its
// first message. A range reported by a replica that knows no leader is not the stream's (a server
// cut off from its cluster answers from its own copy, which lags what this node applied through
// the leader): it is never taken as lost messages. After kLeaderlessReportAfter of such answers
// the stream is reported as an error (log, /health), as nothing can be applied or checked then.
//
// A verify barrier message (docs/VERIFY.md) carries no change: it ends the batch, and once the
// batch is applied the consumer lets verify take its snapshot there (options.on_barrier).
//
// A message that cannot be decoded is recorded in the dead-letter table and skipped. A row too
// large for one message arrives in chunks (Marmot-Chunk header); until all chunks are in, the
// stored position stays before the first one, so a restart re-reads them. A group that does not
// complete within max_entries messages or kChunkGroupTimeout (stream time), or that grows beyond
// max_message_bytes, is dead-lettered and released. Decoded messages are capped at
// max_message_bytes (a compression bomb is dead-lettered, not inflated).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "codec/compression.h"
#include "db/applier.h"
#include "stream/message_source.h"
#include "stream/streams.h"
#include "telemetry/metrics.h"
#include "telemetry/retried_failure.h"
#include "util/clock.h"

namespace marmot {

struct ConsumerOptions {
  StreamLayout layout;
  int shard = 1;
  uint64_t node_id = 0;  // changes in messages from this node are marked as echoes
  size_t max_batch_changes = 8192;
  size_t max_batch_bytes = 64u << 20;              // decoded bytes applied in one transaction (soft cap)
  size_t max_message_bytes = 64u << 20;            // decoded size of one message or chunked row (hard cap)
  std::chrono::milliseconds check_interval{5000};  // how often the stream's state is re-checked
  // Creates the streams that are missing (EnsureStreams). Called when the stream is gone while
  // running (its NATS store was lost): the new stream is then consumed from its start.
  std::function<Status()> ensure_streams;
  NodeMetrics* metrics = nullptr;  // optional; not owned
  // Called after a verify barrier message (Marmot-Verify-Barrier header) and everything before it
  // were applied; may wait there (verify/verify_barriers.h). Optional.
  std::function<void(const std::string& session, const std::string& stream, uint64_t seq,
                     const std::atomic<bool>& stop)>
      on_barrier;
};

class ShardConsumer {
 public:
  // How long (in stream time) a chunk group may stay incomplete.
  static constexpr std::chrono::minutes kChunkGroupTimeout{5};
  // At most this many chunk groups are held at once; the oldest goes first.
  static constexpr size_t kMaxChunkGroups = 64;
  // How many times (a second apart) Start asks a stream without a leader for its range again.
  static constexpr int kLeaderWaitAttempts = 30;
  // At most this many applied messages are compared with the stream at each check.
  static constexpr size_t kMaxMarks = 8;
  // A stream whose checks have named no leader for this long is reported as an error.
  static constexpr std::chrono::seconds kLeaderlessReportAfter{60};

  // `local_cursor` returns the change reader's cursor when local writes are captured (see
  // Applier::Apply), nullopt otherwise.
  ShardConsumer(std::unique_ptr<MessageSource> source, std::unique_ptr<Applier> applier, Clock* clock,
                ConsumerOptions options, std::function<std::optional<uint64_t>()> local_cursor);
  ShardConsumer(const ShardConsumer&) = delete;
  ShardConsumer& operator=(const ShardConsumer&) = delete;

  // Checks the stored position against the stream and subscribes; fails when the stream or the
  // position cannot be read.
  Status Start();
  // Applies messages until `stop` is set; the batch in progress is finished first.
  void Run(const std::atomic<bool>& stop);
  // Takes the messages queued now (waiting up to `wait` for the first) and applies them as one
  // batch; false when none came. For tests; Run loops over it.
  Result<bool> ApplyNext(std::chrono::milliseconds wait, const std::atomic<bool>& stop);

  uint64_t applied_messages() const { return applied_messages_.load(); }
  uint64_t applied_changes() const { return applied_changes_.load(); }
  uint64_t gaps_found() const { return gaps_found_.load(); }
  // The sequence of the last message applied by this run (0: none yet).
  uint64_t last_applied_seq() const { return last_applied_seq_.load(); }
  const std::string& stream() const { return stream_; }

 private:
  struct ChunkGroup {
    uint64_t first_seq = 0;
    int64_t first_timestamp_ns = 0;
    size_t count = 0;
    size_t bytes = 0;
    std::map<size_t, std::string> parts;
  };
  // Decodes one message into `changes`, or records it as undecodable; a chunk is kept until its
  // group is complete. Returns the decoded bytes taken into the batch.
  size_t Take(const SourceMessage& msg, RowChangeList* changes);
  Status DecodeInto(std::string_view payload, uint64_t seq, RowChangeList* changes, size_t* decoded);
  // Records a message (or chunk group) that cannot be applied at all.
  void DeadLetterMessage(uint64_t seq, const std::string& reason);
  // Dead-letters an incomplete chunk group and remembers its name, so later chunks are skipped.
  void DropChunkGroup(std::map<std::string, ChunkGroup>::iterator group, const std::string& reason);
  // Dead-letters chunk groups that can no longer complete (see the file comment), as of `msg`.
  void ExpireChunkGroups(const SourceMessage& msg);
  uint64_t SafePosition(uint64_t last_seq) const;
  // Logs and records messages first..last (last 0: unknown) as missing.
  void RecordGap(uint64_t first, uint64_t last, const std::string& why);
  // The stream's state, asked again (once a second, up to kLeaderWaitAttempts times) while only a
  // replica without a leader answers and its range does not hold position `applied`.
  Result<StreamState> StateFromLeader(uint64_t applied);
  // Compares the stream's state with what this consumer knows; resubscribes after a re-creation
  // or when the stream ends before the expected sequence.
  Status CheckStream();
  // Whether the messages of marks_ are still the ones this node applied (same payload): 0 when
  // they are or that cannot be told; otherwise records the replaced history as a gap and returns
  // the stream's first sequence, to apply what it holds again.
  Result<uint64_t> CheckHistory(const StreamState& state);
  // Remembers an applied batch's last message for the next check, keeping at most kMaxMarks.
  void AddMark(uint64_t seq, int64_t hash);
  // Stores the position before pending_restart_ and subscribes there.
  Status FinishRestart();
  Status ApplyBatch(RowChangeList& changes, uint64_t messages, uint64_t last_seq, int64_t last_hash,
                    uint64_t pending, const std::atomic<bool>& stop);
  // Tells the metrics (if any) that the stream is read and applied (`error` empty) or why not.
  void ReportError(const std::string& error);
  void ReportProgress(uint64_t last_seq);

  std::unique_ptr<MessageSource> source_;
  std::unique_ptr<Applier> applier_;
  Clock* clock_;
  ConsumerOptions options_;
  std::function<std::optional<uint64_t>()> local_cursor_;
  std::string stream_;
  int64_t created_ns_ = 0;  // the creation time of the stream being consumed
  uint64_t expected_ = 1;   // the sequence the next message must have
  // (sequence, PayloadHash) of messages this node applied (batch ends) since the last check, the
  // newest being the position; compared with the stream at every check (CheckHistory).
  struct Mark {
    uint64_t seq;
    int64_t hash;
  };
  std::vector<Mark> marks_;
  std::optional<uint64_t> pending_restart_;  // where to subscribe again once the position is stored
  Clock::TimePoint next_check_{};
  std::optional<Clock::TimePoint> leaderless_since_;  // the first check of a run without a leader
  RetriedFailure check_failure_{clock_};
  ZstdCodec zstd_;
  std::map<std::string, ChunkGroup> chunks_;
  std::deque<std::string> dropped_groups_;  // the last kMaxChunkGroups groups dead-lettered
  // Kept from batch to batch so that decoding reuses their buffers, up to this many bytes (a batch
  // of huge rows is let go instead of holding that memory for good).
  static constexpr size_t kMaxKeptBufferBytes = 16u << 20;
  RowChangeList changes_;
  std::string inflated_;
  std::atomic<uint64_t> applied_messages_{0};
  std::atomic<uint64_t> applied_changes_{0};
  std::atomic<uint64_t> gaps_found_{0};
  std::atomic<uint64_t> last_applied_seq_{0};
  bool reported_error_ = false;  // the metrics hold an error for this stream
  std::string check_error_;      // why the last stream check failed (empty: it did not)
};

}  // namespace marmot
