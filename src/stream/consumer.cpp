#include "stream/consumer.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "codec/wire_format.h"

namespace marmot {
namespace {

constexpr std::chrono::seconds kConsumerHeartbeat{1};

}  // namespace

ShardConsumer::ShardConsumer(NatsClient* client, std::unique_ptr<Applier> applier, ConsumerOptions options,
                             std::function<std::optional<uint64_t>()> local_cursor)
    : client_(client),
      applier_(std::move(applier)),
      options_(std::move(options)),
      local_cursor_(std::move(local_cursor)),
      stream_(options_.layout.StreamName(options_.shard)) {}

ShardConsumer::~ShardConsumer() {
  // No Unsubscribe: for a JetStream subscription it asks the server to delete the consumer and
  // waits for the answer, which never comes when the cluster has lost its quorum (every node of a
  // cluster stopping at once). The ordered consumer is ephemeral: the server drops it when idle.
  if (sub_) natsSubscription_Destroy(sub_);
}

Status ShardConsumer::Start() {
  Result<uint64_t> position = applier_->LoadPosition(stream_);
  if (!position.ok()) return position.status().WithContext("reading position of stream " + stream_);
  std::string subject = options_.layout.Subject(options_.shard);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream_.c_str();
  so.Ordered = true;
  // An ordered consumer lives on one server. When that server goes away, nats.c notices only after
  // two heartbeat intervals without traffic and then recreates the consumer from the next
  // sequence; its default interval (5 s) stalled replication for 10-20 s after a server loss.
  so.Config.Heartbeat = std::chrono::nanoseconds(kConsumerHeartbeat).count();
  if (*position > 0) {
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = *position + 1;
  } else {
    so.Config.DeliverPolicy = js_DeliverAll;
  }
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_SubscribeSync(&sub_, client_->jetstream(), subject.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) return Status::Error("subscribing to stream " + stream_ + ": " + NatsError(s));
  // Bounded memory: at most this much is buffered; the server's flow control holds the rest.
  natsSubscription_SetPendingLimits(sub_, 65536, 64 * 1024 * 1024);

  jsStreamInfo* info = nullptr;
  if (js_GetStreamInfo(&info, client_->jetstream(), stream_.c_str(), nullptr, &jerr) == NATS_OK) {
    uint64_t first = info->State.FirstSeq;
    if (*position + 1 < first && info->State.Msgs > 0) {
      spdlog::warn(
          "stream {} no longer holds messages {}..{} that this node has not applied (it keeps {} "
          "messages); this node may miss those changes until it restores a snapshot",
          stream_, *position + 1, first - 1, options_.layout.max_entries);
    }
    jsStreamInfo_Destroy(info);
  }
  spdlog::info("consuming {} from sequence {}", stream_, *position + 1);
  return Status();
}

Status ShardConsumer::DecodeInto(std::string_view payload, RowChangeList* changes) {
  if (options_.layout.compress) {
    MARMOT_RETURN_IF_ERROR(zstd_.Decompress(payload, options_.max_decompressed_bytes, &inflated_));
    payload = inflated_;
  }
  size_t first = changes->size();
  MessageOrigin origin;
  MARMOT_RETURN_IF_ERROR(DecodeChangeMessage(payload, &origin, changes));
  bool echo = origin.node_id == options_.node_id;
  for (size_t i = first; i < changes->size(); ++i) (*changes)[i].echo = echo;
  return Status();
}

void ShardConsumer::Take(natsMsg* msg, uint64_t seq, RowChangeList* changes) {
  std::string_view payload(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
  const char* chunk = nullptr;
  Status s;
  if (natsMsgHeader_Get(msg, "Marmot-Chunk", &chunk) == NATS_OK && chunk) {
    // "group index count"
    std::string header(chunk);
    size_t a = header.find(' '), b = header.rfind(' ');
    if (a == std::string::npos || a == b) {
      s = Status::Error("bad Marmot-Chunk header '" + header + "'");
    } else {
      std::string group = header.substr(0, a);
      size_t index = std::strtoull(header.c_str() + a + 1, nullptr, 10);
      size_t count = std::strtoull(header.c_str() + b + 1, nullptr, 10);
      ChunkGroup& g = chunks_[group];
      if (g.parts.empty()) g.first_seq = seq;
      g.count = count;
      g.parts[index] = std::string(payload);
      if (g.parts.size() < g.count) return;
      std::string whole;
      for (auto& [i, part] : g.parts) whole += part;
      chunks_.erase(group);
      s = DecodeInto(whole, changes);
    }
  } else {
    s = DecodeInto(payload, changes);
  }
  if (!s.ok()) {
    spdlog::warn("stream {} message {} cannot be decoded ({}); recorded in __marmot__dead_letter, continuing",
                 stream_, seq, s.message());
    Status d = applier_->DeadLetterMessage(StreamPosition{stream_, seq}, s.message());
    if (!d.ok()) spdlog::error("recording undecodable message: {}", d.message());
  }
}

uint64_t ShardConsumer::SafePosition(uint64_t last_seq) const {
  uint64_t safe = last_seq;
  for (const auto& [group, g] : chunks_) safe = std::min(safe, g.first_seq - 1);
  return safe;
}

void ShardConsumer::Run(const std::atomic<bool>& stop) {
  RowChangeList& changes = changes_;
  while (!stop.load()) {
    natsMsg* msg = nullptr;
    natsStatus s = natsSubscription_NextMsg(&msg, sub_, 200);
    if (s == NATS_TIMEOUT) continue;
    if (s != NATS_OK) {
      spdlog::warn("reading stream {}: {}", stream_, NatsError(s));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    // Let go of buffers that a batch of huge rows left behind; keep ordinary ones for reuse.
    if (changes.BufferBytes() > kMaxKeptBufferBytes) changes = RowChangeList();
    if (inflated_.capacity() > kMaxKeptBufferBytes) std::string().swap(inflated_);
    // Take the first message and whatever else is queued, up to the batch limit.
    changes.clear();
    uint64_t messages = 0, last_seq = 0;
    while (msg) {
      jsMsgMetaData* meta = nullptr;
      if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        last_seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
        Take(msg, last_seq, &changes);
        ++messages;
      }
      natsMsg_Destroy(msg);
      msg = nullptr;
      int pending = 0;
      if (changes.size() >= options_.max_batch_changes) break;
      if (natsSubscription_GetPending(sub_, &pending, nullptr) != NATS_OK || pending <= 0) break;
      if (natsSubscription_NextMsg(&msg, sub_, 1000) != NATS_OK) msg = nullptr;
    }
    if (messages == 0) continue;
    StreamPosition position{stream_, SafePosition(last_seq)};
    auto apply_start = std::chrono::steady_clock::now();
    auto backoff = std::chrono::milliseconds(100);
    while (true) {
      Result<ApplyStats> stats =
          applier_->Apply(changes, position, local_cursor_ ? local_cursor_() : std::nullopt);
      if (stats.ok()) {
        applied_messages_.fetch_add(messages);
        applied_changes_.fetch_add(stats->applied);
        spdlog::debug(
            "applied {} change(s) ({} own already in place) from {} message(s) of {} up to {} in {:.1f} ms",
            stats->applied, stats->unchanged, messages, stream_, last_seq,
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - apply_start)
                .count());
        break;
      }
      // The transaction failed (disk full, lock timeout, ...): nothing was applied; retry the
      // same batch so no change is skipped. A stop request still ends the loop: the position was
      // not advanced, so the next start re-reads these messages.
      spdlog::error("{}; retrying in {} ms", stats.status().message(), backoff.count());
      if (stop.load()) return;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
  }
}

}  // namespace marmot
