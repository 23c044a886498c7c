// ChangePublisher: moves captured changes from the change log to the shard streams, so that every
// change is stored in its stream exactly once, in the order it was read.
//
// Loop (on the caller's thread): wait for the watcher, read a batch of at most scan_max_changes
// log entries, group its row changes by shard, encode each group as one message (docs/PROTOCOL.md;
// zstd when the streams are compressed; split into several messages, or into chunks for a single
// huge row, when over the server's max payload) and send them without waiting. While batches come
// full, up to kMaxBatchesInFlight are sent before waiting; then each message's outcome is checked.
// Only when every message of a batch is stored is the batch confirmed to the change source, and
// only confirmed entries are ever deleted from the log.
//
// Message identity (message_id.h): every message carries a Nats-Msg-Id unique to this publisher
// session. A message without an ack is sent again under the same id (JetStream's duplicate window
// drops it when the first send arrived after all); after kRescanAfter without success, the stream
// is read back first, so a resend never outlives the duplicate window. Resends come from memory,
// never from a new read: rows may have been overwritten by incoming changes since.
//
// Crash safety (Recover): confirmations are persisted every cleanup_interval, so a crash loses the
// newest ones. Before publishing anything, a new session reads back the messages of the earlier
// sessions of this database from the streams (from the last acked positions on), and settles the
// entries after the persisted confirmation: batches that arrived whole are confirmed, batches that
// arrived in part have only their missing rows published again, batches that never arrived are
// published. So an entry that reached the stream is never published a second time (which would put
// its old values after later writes of other nodes), and the consumers never mistake published
// entries for unpublished local writes.
//
// REQUIRES: Recover() before Run(); Run on one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "codec/compression.h"
#include "db/change_source.h"
#include "db/change_watcher.h"
#include "stream/message_sink.h"
#include "stream/streams.h"
#include "telemetry/metrics.h"
#include "util/clock.h"
#include "util/status.h"

namespace marmot {

struct PublisherOptions {
  uint64_t node_id = 0;
  StreamLayout layout;
  size_t scan_max_changes = 512;
  std::chrono::milliseconds cleanup_interval{5000};
  std::chrono::milliseconds ack_timeout{10000};
  // A message whose encoding exceeds this is logged as an error: other nodes with the same
  // [replication_log] max_message_bytes will not apply it.
  size_t max_message_bytes = 64u << 20;
  // Resends after this long (since the first send) read the stream back first, because JetStream's
  // duplicate window (2 minutes) may have forgotten the first send by the time the resend arrives.
  std::chrono::milliseconds rescan_after{60000};
  NodeMetrics* metrics = nullptr;  // optional; not owned
};

// Encodes `changes` (a batch's, or part of it) into messages: grouped by shard, compressed with
// `zstd` when `layout.compress`, each at most `max_payload` bytes of payload, with ids of
// `session` for the change-log range first..last.
Result<std::vector<OutgoingMessage>> BuildMessages(std::span<const RowChange> changes, uint64_t first,
                                                   uint64_t last, const std::string& session,
                                                   const PublisherOptions& options, size_t max_payload,
                                                   ZstdCodec* zstd);

class ChangePublisher {
 public:
  // `watcher` may be null when only PublishAvailable() is used (tests). Nothing is owned.
  ChangePublisher(ChangeSource* source, MessageSink* sink, ChangeWatcher* watcher, Clock* clock,
                  PublisherOptions options);
  ChangePublisher(const ChangePublisher&) = delete;
  ChangePublisher& operator=(const ChangePublisher&) = delete;

  // Settles what earlier sessions of this database published but did not persist as confirmed
  // (see the file comment). Retries while NATS fails; gives up only when `stop` is set.
  Status Recover(const std::atomic<bool>& stop);

  // Runs until `stop` is set and the watcher is stopped; publishes what is captured first.
  void Run(const std::atomic<bool>& stop);

  // Publishes everything in the log now and waits until it is stored (or `stop`). For tests and
  // one-shot use; Run does the same continuously.
  Status PublishAvailable(const std::atomic<bool>& stop);

  // The source's cursor as of the last read, for the applier on other threads (see
  // Applier::Apply's local_unread_after).
  uint64_t cursor() const { return cursor_.load(std::memory_order_acquire); }
  uint64_t published_rows() const { return published_rows_.load(); }
  const std::string& session() const { return session_; }
  // First sends that JetStream answered as duplicates (never expected: message ids are unique).
  uint64_t unexpected_duplicates() const { return unexpected_duplicates_.load(); }

 private:
  // How many batches may be sent before waiting for their outcomes.
  static constexpr size_t kMaxBatchesInFlight = 8;
  // Confirmed batches are kept for reuse only up to this many bytes of row values each.
  static constexpr size_t kMaxPooledBatchBytes = 8u << 20;

  struct SentMessage {
    OutgoingMessage message;
    bool stored = false;
    uint64_t stream_seq = 0;
    int sends = 0;
    Clock::TimePoint first_sent{};
    std::string error;
  };
  static SentMessage Sent(OutgoingMessage message) {
    SentMessage m;
    m.message = std::move(message);
    return m;
  }
  struct InFlightBatch {
    ChangeBatch batch;
    std::vector<SentMessage> messages;
  };

  // Encodes `batch` and sends every message; the batch joins in_flight_.
  Status SendBatch(ChangeBatch batch);
  // Builds the messages of an in-flight batch.
  Status Encode(InFlightBatch* in_flight);
  Status SendMessage(size_t batch_index, size_t message_index);
  // Waits for outcomes, resends what is not stored (with backoff, reading the stream back after
  // rescan_after) until every message in flight is stored; then confirms the batches. Fails only
  // when `stop` is set first (the entries stay in the log for next time).
  Status Settle(const std::atomic<bool>& stop);
  void CollectOutcomes();
  // Marks messages in flight that the streams hold (read back) as stored.
  Status FindStoredInFlight();
  // When a message is not stored but a message of a later batch is, sending it again as it was
  // would put old values of rows that the later batch also carries after their newer ones: those
  // rows are taken out of it first (after reading the stream back to know what is stored).
  Status WithdrawSupersededRows();
  Status ReadAfterWake(ChangeWatcher::Wake wake, ChangeBatch* batch);
  ChangeBatch TakeSpareBatch();
  void Recycle(ChangeBatch batch);
  void CleanupIfDue(bool force);
  // Persists this session among those whose messages recovery looks for, unless it is already.
  Status RecordSession();

  ChangeSource* source_;
  MessageSink* sink_;
  ChangeWatcher* watcher_;
  Clock* clock_;
  PublisherOptions options_;
  std::string session_;
  std::atomic<uint64_t> cursor_{0};
  std::atomic<uint64_t> published_rows_{0};
  ZstdCodec zstd_{1};  // its context is reused: creating one per message costs ~1 MB of memset
  std::vector<InFlightBatch> in_flight_;
  std::vector<ChangeBatch> spare_batches_;
  Clock::TimePoint next_cleanup_{};
  std::atomic<uint64_t> unexpected_duplicates_{0};
  bool session_recorded_ = false;  // session_ is in the persisted publish state
  friend class PublishRecovery;    // publish_recovery.cpp
};

}  // namespace marmot
