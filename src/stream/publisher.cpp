#include "stream/publisher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "codec/compression.h"
#include "codec/wire_format.h"
#include "db/sqlite.h"
#include "stream/message_id.h"
#include "telemetry/retried_failure.h"

namespace marmot {
namespace {

// Room left in each message for headers (Nats-Msg-Id, Marmot-Chunk).
constexpr size_t kHeaderAllowance = 512;

// The payload of one message: `changes` as CBOR (docs/PROTOCOL.md), zstd-compressed when the
// streams are; `raw_size` gets the size before compression.
Result<std::string> EncodePayload(const PublisherOptions& options, uint64_t first, uint64_t last,
                                  std::span<const RowChange* const> changes, ZstdCodec* zstd,
                                  size_t* raw_size) {
  std::string bytes = EncodeChangeMessage(MessageOrigin{options.node_id, first, last}, changes);
  *raw_size = bytes.size();
  if (!options.layout.compress) return bytes;
  return zstd->Compress(bytes);
}

struct Encoder {
  const PublisherOptions& options;
  uint64_t first;
  uint64_t last;
  const std::string& session;
  size_t limit;
  ZstdCodec* zstd;
  const RowChange* base;  // the batch's first change: message change indexes count from it
  std::vector<OutgoingMessage>* out;

  void Push(int shard, std::string payload, std::span<const RowChange* const> changes) {
    OutgoingMessage m;
    m.shard = shard;
    m.payload = std::move(payload);
    m.changes.reserve(changes.size());
    for (const RowChange* c : changes) m.changes.push_back(static_cast<uint32_t>(c - base));
    out->push_back(std::move(m));
  }

  struct Encoded {
    size_t raw_size = 0;
    std::string payload;
  };

  Result<Encoded> Encode(std::span<const RowChange* const> changes) const {
    Encoded e;
    Result<std::string> payload = EncodePayload(options, first, last, changes, zstd, &e.raw_size);
    if (!payload.ok()) return payload.status();
    e.payload = std::move(*payload);
    return e;
  }

  // Emits `changes` as one message, or as several when they do not fit (in the server's max
  // payload, or decoded in max_message_bytes), or as chunks when a single change does not fit.
  Status Emit(int shard, std::span<const RowChange* const> changes, size_t first_in_shard) {
    Result<Encoded> encoded = Encode(changes);
    if (!encoded.ok()) return encoded.status();
    bool too_big = encoded->raw_size > options.max_message_bytes;
    if (encoded->payload.size() <= limit && !too_big) {
      Push(shard, std::move(encoded->payload), changes);
      return Status();
    }
    if (changes.size() > 1) {
      size_t half = changes.size() / 2;
      MARMOT_RETURN_IF_ERROR(Emit(shard, changes.first(half), first_in_shard));
      return Emit(shard, changes.subspan(half), first_in_shard);
    }
    if (too_big) {
      spdlog::error(
          "a row of table {} is {} bytes encoded, more than [replication_log] max_message_bytes ({}): nodes "
          "with that limit will not apply it (they record it in __marmot__dead_letter); raise the limit on "
          "every node to replicate rows this large",
          QuoteIdent(changes[0]->table), encoded->raw_size, options.max_message_bytes);
    }
    if (encoded->payload.size() <= limit) {
      Push(shard, std::move(encoded->payload), changes);
      return Status();
    }
    // One row larger than a message: send its encoding in chunks the consumer puts together.
    std::string group = session + "-" + std::to_string(first) + "-" + std::to_string(last) + "-" +
                        std::to_string(shard) + "-" + std::to_string(out->size() - first_in_shard);
    const std::string& payload = encoded->payload;
    size_t chunks = (payload.size() + limit - 1) / limit;
    for (size_t i = 0; i < chunks; ++i) {
      OutgoingMessage chunk;
      chunk.shard = shard;
      chunk.chunk_header = group + " " + std::to_string(i) + " " + std::to_string(chunks);
      chunk.payload = payload.substr(i * limit, limit);
      chunk.changes.push_back(static_cast<uint32_t>(changes[0] - base));
      out->push_back(std::move(chunk));
    }
    return Status();
  }
};

}  // namespace

Result<std::vector<OutgoingMessage>> BuildMessages(std::span<const RowChange> changes, uint64_t first,
                                                   uint64_t last, const std::string& session,
                                                   const PublisherOptions& options, size_t max_payload,
                                                   ZstdCodec* zstd) {
  // The changes of each shard, in batch order (pointers: the batch is not copied).
  int shards = std::max(options.layout.shards, 1);
  std::vector<std::vector<const RowChange*>> by_shard(static_cast<size_t>(shards));
  if (shards == 1) by_shard[0].reserve(changes.size());
  for (const RowChange& change : changes) {
    by_shard[static_cast<size_t>(ShardOf(change.row_hash, shards) - 1)].push_back(&change);
  }
  std::vector<OutgoingMessage> out;
  size_t limit = max_payload > 2 * kHeaderAllowance ? max_payload - kHeaderAllowance : max_payload / 2;
  Encoder encoder{options, first, last, session, limit, zstd, changes.data(), &out};
  int groups = 0;
  std::vector<std::pair<size_t, size_t>> group_ranges;  // [begin, end) of each shard's messages
  for (int shard = 1; shard <= shards; ++shard) {
    const std::vector<const RowChange*>& group = by_shard[static_cast<size_t>(shard - 1)];
    if (group.empty()) continue;
    ++groups;
    size_t begin = out.size();
    MARMOT_RETURN_IF_ERROR(encoder.Emit(shard, group, begin));
    group_ranges.emplace_back(begin, out.size());
  }
  for (const auto& [begin, end] : group_ranges) {
    for (size_t i = begin; i < end; ++i) {
      MessageId id{session,
                   first,
                   last,
                   groups,
                   out[i].shard,
                   static_cast<int>(i - begin),
                   static_cast<int>(end - begin)};
      out[i].msg_id = id.ToString();
    }
  }
  return out;
}

ChangePublisher::ChangePublisher(ChangeSource* source, MessageSink* sink, ChangeWatcher* watcher,
                                 Clock* clock, PublisherOptions options)
    : source_(source),
      sink_(sink),
      watcher_(watcher),
      clock_(clock),
      options_(std::move(options)),
      session_(NewPublishSession()) {
  cursor_.store(source_->cursor());
}

Status ChangePublisher::SendMessage(size_t batch_index, size_t message_index) {
  SentMessage& m = in_flight_[batch_index].messages[message_index];
  if (m.sends++ == 0) m.first_sent = clock_->Now();
  Status s = sink_->Send(m.message, (batch_index << 32) | message_index);
  if (!s.ok()) m.error = s.message();
  return s;
}

Status ChangePublisher::Encode(InFlightBatch* in_flight) {
  const ChangeBatch& batch = in_flight->batch;
  Result<std::vector<OutgoingMessage>> messages = BuildMessages(
      batch.changes, batch.first_seq, batch.last_seq, session_, options_, sink_->max_payload(), &zstd_);
  if (!messages.ok()) return messages.status().WithContext("encoding changes");
  for (OutgoingMessage& m : *messages) in_flight->messages.push_back(Sent(std::move(m)));
  return Status();
}

Status ChangePublisher::SendBatch(ChangeBatch batch) {
  in_flight_.push_back(InFlightBatch{std::move(batch), {}});
  // Encoding fails only without memory; the batch stays in flight without messages and Settle
  // encodes it again (its entries are past the cursor: dropping it would lose them).
  size_t index = in_flight_.size() - 1;
  MARMOT_RETURN_IF_ERROR(Encode(&in_flight_[index]));
  for (size_t i = 0; i < in_flight_[index].messages.size(); ++i) {
    Status s = SendMessage(index, i);
    if (!s.ok()) return s;
  }
  return Status();
}

void ChangePublisher::CollectOutcomes() {
  sink_->AwaitOutcomes(options_.ack_timeout, [this](size_t token, const PublishOutcome& outcome) {
    size_t batch = token >> 32, message = token & 0xffffffffu;
    if (batch >= in_flight_.size() || message >= in_flight_[batch].messages.size()) return;
    SentMessage& m = in_flight_[batch].messages[message];
    if (!outcome.stored) {
      m.error = outcome.error;
      return;
    }
    if (outcome.duplicate && m.sends == 1) {
      // Sent once, yet the stream holds an earlier message with this id. Ids embed a random session
      // and the batch's range, so only this session can have sent it: it is stored. Never
      // expected; said loudly, since it would mean the id scheme is broken.
      unexpected_duplicates_.fetch_add(1);
      spdlog::error(
          "JetStream took message {} for a duplicate of an earlier one (sequence {}), but this "
          "publisher sent it for the first time; counting it as stored",
          m.message.msg_id, outcome.stream_seq);
    }
    m.stored = true;
    m.stream_seq = outcome.stream_seq;
    m.error.clear();
  });
}

Status ChangePublisher::FindStoredInFlight() {
  std::map<int, std::unordered_map<std::string, SentMessage*>> missing;  // shard -> id -> message
  for (InFlightBatch& b : in_flight_) {
    for (SentMessage& m : b.messages) {
      if (!m.stored && m.sends > 0) missing[m.message.shard][m.message.msg_id] = &m;
    }
  }
  for (auto& entry : missing) {
    int shard = entry.first;
    std::unordered_map<std::string, SentMessage*>& by_id = entry.second;
    const auto& acked = source_->publish_state().acked_seq;
    auto known = acked.find(options_.layout.StreamName(shard));
    uint64_t after = known == acked.end() ? 0 : known->second;
    auto visit = [&by_id](std::string_view id, uint64_t seq) {
      auto found = by_id.find(std::string(id));
      if (found == by_id.end()) return;
      found->second->stored = true;
      found->second->stream_seq = seq;
    };
    std::string what = "reading back stream " + options_.layout.StreamName(shard);
    Result<MessageSink::StoredRange> range = sink_->ScanStored(shard, after, visit);
    if (!range.ok()) return range.status().WithContext(what);
    // A stream that ends before the acked position was created again: read all of it.
    if (range->last < after) range = sink_->ScanStored(shard, 0, visit);
    if (!range.ok()) return range.status().WithContext(what);
  }
  return Status();
}

Status ChangePublisher::WithdrawSupersededRows() {
  // Is there a message not stored while a later batch has one stored?
  bool later_stored = false, risk = false;
  for (size_t b = in_flight_.size(); b-- > 0;) {
    bool stored = false, unstored = false;
    for (const SentMessage& m : in_flight_[b].messages) (m.stored ? stored : unstored) = true;
    risk = risk || (unstored && later_stored);
    later_stored = later_stored || stored;
  }
  if (!risk) return Status();
  // Acks can be lost: what the stream holds decides.
  MARMOT_RETURN_IF_ERROR(FindStoredInFlight());
  std::unordered_set<std::string> later;  // rows of later batches (which hold their newer state)
  for (size_t b = in_flight_.size(); b-- > 0;) {
    InFlightBatch& batch = in_flight_[b];
    std::set<std::string> withdrawn_groups;  // chunked rows that later batches carry
    for (SentMessage& m : batch.messages) {
      if (later.empty() || m.stored) continue;
      if (!m.message.chunk_header.empty()) {
        // One row in chunks: its remaining chunks are not sent at all when a later batch carries
        // the row (receivers dead-letter the incomplete group, loudly, instead of applying an old
        // value after the new one).
        std::string group = m.message.chunk_header.substr(0, m.message.chunk_header.find(' '));
        const RowChange& change = batch.batch.changes[m.message.changes.at(0)];
        Result<std::optional<std::string>> id = source_->RowIdentity(change);
        if (!id.ok()) return id.status();
        if (withdrawn_groups.count(group) || (*id && later.count(**id))) {
          if (withdrawn_groups.insert(group).second) {
            spdlog::warn(
                "row in chunks {} was not stored whole but a later message holds its newer value: its "
                "remaining chunks are not sent",
                group);
          }
          m.stored = true;  // settled: nothing of it is to be sent any more
        }
        continue;
      }
      std::vector<const RowChange*> keep;
      std::vector<uint32_t> kept;
      for (uint32_t i : m.message.changes) {
        const RowChange& change = batch.batch.changes[i];
        Result<std::optional<std::string>> id = source_->RowIdentity(change);
        if (!id.ok()) return id.status();
        if (*id && later.count(**id)) continue;
        keep.push_back(&change);
        kept.push_back(i);
      }
      if (kept.size() == m.message.changes.size()) continue;
      size_t raw_size = 0;
      Result<std::string> payload =
          EncodePayload(options_, batch.batch.first_seq, batch.batch.last_seq, keep, &zstd_, &raw_size);
      if (!payload.ok()) return payload.status();
      spdlog::warn(
          "message {} was not stored but a later one was: {} of its rows are left out of the resend "
          "(the later message holds their newer values)",
          m.message.msg_id, m.message.changes.size() - kept.size());
      m.message.payload = std::move(*payload);
      m.message.changes = std::move(kept);
    }
    for (const RowChange& change : batch.batch.changes) {
      Result<std::optional<std::string>> id = source_->RowIdentity(change);
      if (!id.ok()) return id.status();
      if (*id) later.insert(std::move(**id));
    }
  }
  return Status();
}

Status ChangePublisher::Settle(const std::atomic<bool>& stop) {
  CollectOutcomes();
  auto backoff = std::chrono::milliseconds(100);
  RetriedFailure failure(clock_);
  while (true) {
    size_t unstored = 0, rows = 0;
    std::string why;
    Clock::TimePoint oldest = Clock::TimePoint::max();
    for (InFlightBatch& b : in_flight_) {
      bool complete = !b.messages.empty() || b.batch.changes.empty();
      for (SentMessage& m : b.messages) {
        if (m.stored) continue;
        complete = false;
        ++unstored;
        if (why.empty()) why = m.error.empty() ? "not sent" : m.error;
        if (m.sends > 0) oldest = std::min(oldest, m.first_sent);
      }
      if (b.messages.empty() && !b.batch.changes.empty()) {
        ++unstored;
        if (why.empty()) why = "not encoded";
      }
      if (!complete) rows += b.batch.changes.size();
    }
    if (unstored == 0) break;
    failure.Log(std::to_string(unstored) + " message(s) with " + std::to_string(rows) +
                " change(s) not stored (" + why + "); the changes stay in the change log, sending again in " +
                std::to_string(backoff.count()) + " ms");
    if (stop.load()) {
      return Status::Unavailable(std::to_string(unstored) + " message(s) not stored at stop: " + why);
    }
    clock_->SleepFor(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    if (oldest != Clock::TimePoint::max() && clock_->Now() - oldest >= options_.rescan_after) {
      // The duplicate window may have forgotten the first sends: look in the streams instead.
      Status found = FindStoredInFlight();
      if (!found.ok()) {
        failure.Log(found.message() + "; trying again");
        continue;
      }
    }
    Status withdrawn = WithdrawSupersededRows();
    if (!withdrawn.ok()) {
      failure.Log(withdrawn.message() + "; trying again");
      continue;
    }
    for (size_t b = 0; b < in_flight_.size(); ++b) {
      InFlightBatch& batch = in_flight_[b];
      if (batch.messages.empty() && !batch.batch.changes.empty() && !Encode(&batch).ok()) continue;
      for (size_t m = 0; m < batch.messages.size(); ++m) {
        if (!batch.messages[m].stored) (void)SendMessage(b, m);
      }
    }
    CollectOutcomes();
  }
  if (in_flight_.empty()) return Status();
  std::map<std::string, uint64_t> acked;
  size_t rows = 0, messages = 0;
  Clock::TimePoint first_sent = Clock::TimePoint::max();
  for (const InFlightBatch& b : in_flight_) {
    rows += b.batch.changes.size();
    messages += b.messages.size();
    if (options_.metrics) options_.metrics->BatchPublished(b.batch.changes.size());
    for (const SentMessage& m : b.messages) {
      first_sent = std::min(first_sent, m.first_sent);
      uint64_t& seq = acked[options_.layout.StreamName(m.message.shard)];
      seq = std::max(seq, m.stream_seq);
    }
  }
  uint64_t last = in_flight_.back().batch.last_seq;
  source_->Confirm(last, acked);
  if (options_.metrics) options_.metrics->ChangesConfirmed(last);
  published_rows_.fetch_add(rows);
  if (options_.metrics && messages > 0) {
    options_.metrics->ChangesPublished(rows, messages,
                                       std::chrono::duration<double>(clock_->Now() - first_sent).count());
  }
  spdlog::debug("published {} change(s) up to log entry {}", rows, last);
  for (InFlightBatch& b : in_flight_) Recycle(std::move(b.batch));
  in_flight_.clear();
  return Status();
}

ChangeBatch ChangePublisher::TakeSpareBatch() {
  if (spare_batches_.empty()) return ChangeBatch();
  ChangeBatch batch = std::move(spare_batches_.back());
  spare_batches_.pop_back();
  return batch;
}

void ChangePublisher::Recycle(ChangeBatch batch) {
  // A batch that held huge rows goes: keeping its buffers would keep that memory for good.
  if (batch.changes.BufferBytes() <= kMaxPooledBatchBytes) spare_batches_.push_back(std::move(batch));
}

Status ChangePublisher::ReadAfterWake(ChangeWatcher::Wake wake, ChangeBatch* batch) {
  Status read = source_->ReadBatch(options_.scan_max_changes, batch);
  // After a change event the commit may not be visible yet: the WAL is written before the commit
  // is published in its index (see ChangeWatcher::Wait), and between the two the writer syncs the
  // WAL (about 1 ms here). Look again every 0.1 ms for the first 5 ms, then every 1 ms up to 20 ms.
  for (int retry = 0; wake == ChangeWatcher::Wake::kChange && retry < 65 && read.ok() && batch->empty();
       ++retry) {
    clock_->SleepFor(std::chrono::microseconds(retry < 50 ? 100 : 1000));
    read = source_->ReadBatch(options_.scan_max_changes, batch);
  }
  return read;
}

void ChangePublisher::CleanupIfDue(bool force) {
  if (!force && clock_->Now() < next_cleanup_) return;
  Result<size_t> deleted = source_->DeleteConfirmed();
  if (!deleted.ok()) spdlog::warn("cleaning the change log: {}", deleted.status().message());
  next_cleanup_ = clock_->Now() + options_.cleanup_interval;
}

Status ChangePublisher::PublishAvailable(const std::atomic<bool>& stop) {
  // Whatever is sent from here on must be found by the next start's recovery after a crash.
  MARMOT_RETURN_IF_ERROR(RecordSession());
  while (true) {
    ChangeBatch batch = TakeSpareBatch();
    MARMOT_RETURN_IF_ERROR(source_->ReadBatch(options_.scan_max_changes, &batch));
    cursor_.store(source_->cursor(), std::memory_order_release);
    if (options_.metrics && !batch.empty()) options_.metrics->ChangesCaptured(batch.changes.size());
    bool more = batch.entries >= options_.scan_max_changes;
    Status sent;
    if (batch.empty()) {
      Recycle(std::move(batch));
    } else {
      sent = SendBatch(std::move(batch));
    }
    if (!in_flight_.empty() && (!sent.ok() || !more || in_flight_.size() >= kMaxBatchesInFlight)) {
      MARMOT_RETURN_IF_ERROR(Settle(stop));
    }
    if (!more && in_flight_.empty()) return Status();
  }
}

void ChangePublisher::Run(const std::atomic<bool>& stop) {
  next_cleanup_ = clock_->Now() + options_.cleanup_interval;
  bool more = true;  // read again without waiting: the last batch was full
  while (true) {
    ChangeWatcher::Wake wake = ChangeWatcher::Wake::kTick;
    if (!more && in_flight_.empty()) {
      if (stop.load()) break;
      // Returns at a change, a poll tick, or Stop(); after Stop() one more pass below publishes
      // what was written before it.
      wake = watcher_->Wait(std::chrono::milliseconds(500));
    }
    Status sent;
    if (more || in_flight_.empty()) {
      ChangeBatch batch = TakeSpareBatch();
      Status read = ReadAfterWake(wake, &batch);
      if (!read.ok()) {
        spdlog::error("reading changes: {}; retrying in 1 s", read.message());
        Recycle(std::move(batch));
        clock_->SleepFor(std::chrono::seconds(1));
        more = !stop.load();
        continue;
      }
      cursor_.store(source_->cursor(), std::memory_order_release);
      if (options_.metrics && !batch.empty()) options_.metrics->ChangesCaptured(batch.changes.size());
      more = batch.entries >= options_.scan_max_changes;
      if (batch.empty()) {
        Recycle(std::move(batch));
      } else {
        sent = SendBatch(std::move(batch));
      }
    }
    // Batches go out while the next is read and encoded; all are settled at once.
    if (!in_flight_.empty() &&
        (!sent.ok() || !more || in_flight_.size() >= kMaxBatchesInFlight || stop.load())) {
      if (!Settle(stop).ok()) break;  // stopping while NATS is away: the entries stay in the log
    }
    CleanupIfDue(stop.load() && !more);
    if (stop.load() && !more && in_flight_.empty()) break;
  }
  // A clean stop: every message sent is stored and confirmed, and the confirmation is persisted
  // below, so no message of this database lies after it. The next start then knows that the
  // entries after it (written while marmot was stopped) were never sent, without reading the
  // streams back (which cannot tell once the streams have moved on by more than they keep).
  // (PublishAvailable after this records the session again before it sends.)
  if (in_flight_.empty()) {
    source_->SetSessions({});
    session_recorded_ = false;
  }
  CleanupIfDue(/*force=*/true);
}

Status ChangePublisher::RecordSession() {
  if (session_recorded_) return Status();
  std::vector<std::string> sessions = source_->publish_state().sessions;
  if (std::find(sessions.begin(), sessions.end(), session_) == sessions.end()) sessions.push_back(session_);
  source_->SetSessions(sessions);
  MARMOT_RETURN_IF_ERROR(source_->PersistPublishState().WithContext("recording publisher session"));
  session_recorded_ = true;
  return Status();
}

}  // namespace marmot
