#include "stream/publisher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <span>
#include <thread>

#include "codec/compression.h"
#include "codec/wire_format.h"

namespace marmot {
namespace {

// Room left in each message for headers (Nats-Msg-Id, Marmot-Chunk).
constexpr size_t kHeaderAllowance = 512;

struct Encoder {
  const PublisherOptions& options;
  const ChangeBatch& batch;
  size_t limit;
  ZstdCodec* zstd;
  std::vector<OutgoingMessage>* out;

  std::string MsgId(int shard, size_t part) const {
    return std::to_string(options.node_id) + "-" + std::to_string(batch.first_seq) + "-" +
           std::to_string(batch.last_seq) + "-" + std::to_string(shard) + "-" + std::to_string(part);
  }

  Result<std::string> Encode(std::span<const RowChange* const> changes) const {
    MessageOrigin origin{options.node_id, batch.first_seq, batch.last_seq};
    std::string bytes = EncodeChangeMessage(origin, changes);
    if (!options.layout.compress) return bytes;
    return zstd->Compress(bytes);
  }

  // Emits `changes` as one message, or as several when they do not fit, or as chunks when a single
  // change does not fit.
  Status Emit(int shard, std::span<const RowChange* const> changes) {
    Result<std::string> payload = Encode(changes);
    if (!payload.ok()) return payload.status();
    if (payload->size() <= limit) {
      out->push_back({shard, MsgId(shard, out->size()), "", std::move(*payload)});
      return Status();
    }
    if (changes.size() > 1) {
      size_t half = changes.size() / 2;
      MARMOT_RETURN_IF_ERROR(Emit(shard, changes.first(half)));
      return Emit(shard, changes.subspan(half));
    }
    // One row larger than a message: send its encoding in chunks the consumer puts together.
    std::string group = MsgId(shard, out->size());
    size_t chunks = (payload->size() + limit - 1) / limit;
    for (size_t i = 0; i < chunks; ++i) {
      OutgoingMessage chunk;
      chunk.shard = shard;
      chunk.msg_id = group + "-c" + std::to_string(i);
      chunk.chunk_header = group + " " + std::to_string(i) + " " + std::to_string(chunks);
      chunk.payload = payload->substr(i * limit, limit);
      out->push_back(std::move(chunk));
    }
    return Status();
  }
};

}  // namespace

Result<std::vector<OutgoingMessage>> BuildMessages(const ChangeBatch& batch, const PublisherOptions& options,
                                                   size_t max_payload, ZstdCodec* zstd) {
  // The changes of each shard, in batch order (pointers: the batch is not copied).
  int shards = std::max(options.layout.shards, 1);
  std::vector<std::vector<const RowChange*>> by_shard(static_cast<size_t>(shards));
  if (shards == 1) by_shard[0].reserve(batch.changes.size());
  for (const RowChange& change : batch.changes) {
    by_shard[static_cast<size_t>(ShardOf(change.row_hash, shards) - 1)].push_back(&change);
  }
  std::vector<OutgoingMessage> out;
  size_t limit = max_payload > 2 * kHeaderAllowance ? max_payload - kHeaderAllowance : max_payload / 2;
  Encoder encoder{options, batch, limit, zstd, &out};
  for (int shard = 1; shard <= shards; ++shard) {
    const std::vector<const RowChange*>& changes = by_shard[static_cast<size_t>(shard - 1)];
    if (!changes.empty()) MARMOT_RETURN_IF_ERROR(encoder.Emit(shard, changes));
  }
  return out;
}

void OnPublishError(jsCtx*, jsPubAckErr* pae, void* closure) {
  auto* publisher = static_cast<ChangePublisher*>(closure);
  // Written before the counter is raised; read only after js_PublishAsyncComplete returned.
  if (publisher->failed_acks_.load() == 0) {
    publisher->last_ack_error_ = pae->ErrText ? pae->ErrText : NatsError(pae->Err);
  }
  publisher->failed_acks_.fetch_add(1);
}

ChangePublisher::ChangePublisher(NatsClient* client, ChangeReader* reader, ChangeWatcher* watcher,
                                 PublisherOptions options)
    : client_(client), reader_(reader), watcher_(watcher), options_(std::move(options)) {
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.PublishAsync.ErrHandler = OnPublishError;
  js_options.PublishAsync.ErrHandlerClosure = this;
  // Bounded window: publishing blocks while this many acks are outstanding.
  js_options.PublishAsync.MaxPending = 4096;
  natsConnection_JetStream(&js_, client_->connection(), &js_options);
  cursor_.store(reader_->cursor());
}

ChangePublisher::~ChangePublisher() {
  if (!js_) return;
  // (nats.c crashes asking for the pending list of a context that never published.)
  if (!published_any_) {
    jsCtx_Destroy(js_);
    return;
  }
  // Publishes still waiting for an ack (stopping while NATS is away) would call OnPublishError
  // with `this` later: take them back first. Their changes stay in the change log.
  natsMsgList pending{};
  if (js_PublishAsyncGetPendingList(&pending, js_) == NATS_OK) natsMsgList_Destroy(&pending);
  jsCtx_Destroy(js_);
}

Status ChangePublisher::SendBatch(const ChangeBatch& batch) {
  Result<std::vector<OutgoingMessage>> messages =
      BuildMessages(batch, options_, static_cast<size_t>(client_->max_payload()), &zstd_);
  if (!messages.ok()) return messages.status().WithContext("encoding changes");
  for (const OutgoingMessage& m : *messages) {
    std::string subject = options_.layout.Subject(m.shard);
    natsMsg* msg = nullptr;
    natsStatus s =
        natsMsg_Create(&msg, subject.c_str(), nullptr, m.payload.data(), static_cast<int>(m.payload.size()));
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Nats-Msg-Id", m.msg_id.c_str());
    if (s == NATS_OK && !m.chunk_header.empty())
      s = natsMsgHeader_Set(msg, "Marmot-Chunk", m.chunk_header.c_str());
    if (s == NATS_OK) s = js_PublishMsgAsync(js_, &msg, nullptr);  // takes ownership on success
    published_any_ = true;
    if (msg) natsMsg_Destroy(msg);
    if (s != NATS_OK) return Status::Error("publishing to " + subject + ": " + NatsError(s));
  }
  return Status();
}

Status ChangePublisher::AwaitAcks() {
  jsPubOptions wait;
  jsPubOptions_Init(&wait);
  wait.MaxWait = options_.ack_timeout.count();
  natsStatus s = js_PublishAsyncComplete(js_, &wait);
  int failed = failed_acks_.exchange(0);
  if (s != NATS_OK) {
    // Forget what is still pending; the retry publishes it again under the same ids.
    natsMsgList pending{};
    if (js_PublishAsyncGetPendingList(&pending, js_) == NATS_OK) natsMsgList_Destroy(&pending);
    return Status::Error("waiting for JetStream acks: " + NatsError(s));
  }
  if (failed > 0)
    return Status::Error(std::to_string(failed) + " publish(es) not acknowledged: " + last_ack_error_);
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
  Status read = reader_->ReadBatch(options_.scan_max_changes, batch);
  // After a change event the commit may not be visible yet: the WAL is written before the commit
  // is published in its index (see ChangeWatcher::Wait), and between the two the writer syncs the
  // WAL (about 1 ms here). Look again every 0.1 ms for the first 5 ms, then every 1 ms up to 20 ms.
  for (int retry = 0; wake == ChangeWatcher::Wake::kChange && retry < 65 && read.ok() && batch->empty();
       ++retry) {
    std::this_thread::sleep_for(std::chrono::microseconds(retry < 50 ? 100 : 1000));
    read = reader_->ReadBatch(options_.scan_max_changes, batch);
  }
  return read;
}

Status ChangePublisher::ResendUntilAcked(const std::vector<ChangeBatch>& unacked,
                                         const std::atomic<bool>& stop, Status failure) {
  auto backoff = std::chrono::milliseconds(100);
  while (!failure.ok()) {
    (void)AwaitAcks();  // drain whatever is still outstanding
    size_t rows = 0;
    for (const ChangeBatch& b : unacked) rows += b.changes.size();
    spdlog::warn("{}; {} change(s) stay in the change log, publishing them again in {} ms", failure.message(),
                 rows, backoff.count());
    if (stop.load()) return failure;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    // The same batches, as read the first time (a new read could see rows that incoming changes
    // have overwritten meanwhile), under the same dedup ids.
    failure = Status();
    for (const ChangeBatch& b : unacked) {
      failure = SendBatch(b);
      if (!failure.ok()) break;
    }
    if (failure.ok()) failure = AwaitAcks();
  }
  return failure;
}

void ChangePublisher::Run(const std::atomic<bool>& stop) {
  auto next_cleanup = std::chrono::steady_clock::now() + options_.cleanup_interval;
  bool more = true;  // read again without waiting: the last batch was full
  // Batches sent but not yet acknowledged (at most kMaxBatchesInFlight): the next batch is read and
  // encoded while the previous ones are on the wire, and all are confirmed at once.
  std::vector<ChangeBatch> unacked;
  while (true) {
    ChangeWatcher::Wake wake = ChangeWatcher::Wake::kTick;
    if (!more && unacked.empty()) {
      if (stop.load()) break;
      // Returns at a change, a poll tick, or Stop(); after Stop() one more pass below publishes
      // what was written before it.
      wake = watcher_->Wait(std::chrono::milliseconds(500));
    }
    Status s;
    if (more || unacked.empty()) {
      ChangeBatch batch = TakeSpareBatch();
      Status read = ReadAfterWake(wake, &batch);
      if (!read.ok()) {
        spdlog::error("reading changes: {}; retrying in 1 s", read.message());
        Recycle(std::move(batch));
        std::this_thread::sleep_for(std::chrono::seconds(1));
        more = !stop.load();
        continue;
      }
      cursor_.store(reader_->cursor(), std::memory_order_release);
      more = batch.entries >= options_.scan_max_changes;
      if (batch.empty()) {
        Recycle(std::move(batch));
      } else {
        s = SendBatch(batch);
        unacked.push_back(std::move(batch));
      }
    }
    if (!unacked.empty() && (!s.ok() || !more || unacked.size() >= kMaxBatchesInFlight || stop.load())) {
      if (s.ok()) s = AwaitAcks();
      s = ResendUntilAcked(unacked, stop, s);
      if (!s.ok()) break;  // stopping while NATS is away: the entries stay in the log for next time
      size_t rows = 0;
      for (const ChangeBatch& b : unacked) rows += b.changes.size();
      reader_->Confirm(unacked.back().last_seq);
      published_rows_.fetch_add(rows);
      spdlog::debug("published {} change(s) up to log entry {}", rows, unacked.back().last_seq);
      for (ChangeBatch& b : unacked) Recycle(std::move(b));
      unacked.clear();
    }
    if (std::chrono::steady_clock::now() >= next_cleanup || (stop.load() && !more)) {
      Result<size_t> deleted = reader_->DeleteConfirmed();
      if (!deleted.ok()) spdlog::warn("cleaning the change log: {}", deleted.status().message());
      next_cleanup = std::chrono::steady_clock::now() + options_.cleanup_interval;
    }
    if (stop.load() && !more && unacked.empty()) break;
  }
}

}  // namespace marmot
