#include "stream/jetstream_source.h"

namespace marmot {
namespace {

constexpr std::chrono::seconds kConsumerHeartbeat{1};

}  // namespace

JetStreamSource::JetStreamSource(NatsClient* client, const StreamLayout& layout, int shard)
    : client_(client), stream_(layout.StreamName(shard)), subject_(layout.Subject(shard)) {}

JetStreamSource::JetStreamSource(NatsClient* client, std::string stream, std::string subject)
    : client_(client), stream_(std::move(stream)), subject_(std::move(subject)) {}

JetStreamSource::~JetStreamSource() {
  current_.reset();
  sub_.Close();
}

Result<StreamState> JetStreamSource::State() {
  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&raw, client_->jetstream(), stream_.c_str(), nullptr, &jerr);
  if (s != NATS_OK) return NatsStatus(s, "looking up stream " + stream_);
  JsStreamInfoPtr info(raw);
  StreamState state;
  state.first_seq = info->State.FirstSeq;
  state.last_seq = info->State.LastSeq;
  state.messages = info->State.Msgs;
  state.created_ns = info->Created;
  // A clustered stream's answer names its leader; a member that has none answers from its own copy
  // (nats-server does so when the group is leaderless). A single server names itself.
  state.leader_known = info->Cluster == nullptr || (info->Cluster->Leader && *info->Cluster->Leader);
  if (state.messages == 0) state.first_seq = state.last_seq + 1;
  return state;
}

Status JetStreamSource::Subscribe(uint64_t start_seq) {
  current_.reset();
  sub_.Close();
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream_.c_str();
  so.Ordered = true;
  // An ordered consumer lives on one server. When that server goes away, nats.c notices only after
  // two heartbeat intervals without traffic and then recreates the consumer from the next
  // sequence; its default interval (5 s) stalled replication for 10-20 s after a server loss.
  so.Config.Heartbeat = std::chrono::nanoseconds(kConsumerHeartbeat).count();
  if (start_seq > 1) {
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = start_seq;
  } else {
    so.Config.DeliverPolicy = js_DeliverAll;
  }
  natsSubscription* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_SubscribeSync(&raw, client_->jetstream(), subject_.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) return NatsStatus(s, "subscribing to stream " + stream_);
  sub_ = ClosingSubscription(client_->connection(), raw);
  // Bounded memory: at most this much is buffered; the server's flow control holds the rest.
  natsSubscription_SetPendingLimits(sub_.get(), 65536, 64 * 1024 * 1024);
  return Status();
}

Result<bool> JetStreamSource::Next(std::chrono::milliseconds timeout, SourceMessage* out) {
  current_.reset();
  if (!sub_) return Status::Unavailable("stream " + stream_ + " has no subscription");
  while (true) {
    natsMsg* raw = nullptr;
    natsStatus s = natsSubscription_NextMsg(&raw, sub_.get(), timeout.count());
    if (s == NATS_TIMEOUT) return false;
    if (s != NATS_OK) return NatsStatus(s, "reading stream " + stream_);
    NatsMsgPtr msg(raw);
    jsMsgMetaData* raw_meta = nullptr;
    if (natsMsg_GetMetaData(&raw_meta, msg.get()) != NATS_OK) continue;  // not a stream message
    JsMsgMetaDataPtr meta(raw_meta);
    out->seq = meta->Sequence.Stream;
    out->timestamp_ns = meta->Timestamp;
    out->pending = meta->NumPending;
    out->payload =
        std::string_view(natsMsg_GetData(msg.get()), static_cast<size_t>(natsMsg_GetDataLength(msg.get())));
    const char* chunk = nullptr;
    out->chunk_header = natsMsgHeader_Get(msg.get(), "Marmot-Chunk", &chunk) == NATS_OK && chunk
                            ? std::string_view(chunk)
                            : std::string_view();
    const char* barrier = nullptr;
    out->barrier = natsMsgHeader_Get(msg.get(), "Marmot-Verify-Barrier", &barrier) == NATS_OK && barrier
                       ? std::string_view(barrier)
                       : std::string_view();
    current_ = std::move(msg);
    return true;
  }
}

bool JetStreamSource::HasPending() {
  int pending = 0;
  return sub_ && natsSubscription_GetPending(sub_.get(), &pending, nullptr) == NATS_OK && pending > 0;
}

Result<int64_t> JetStreamSource::StoredHash(uint64_t seq) {
  natsMsg* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetMsg(&raw, client_->jetstream(), stream_.c_str(), seq, nullptr, &jerr);
  if (s != NATS_OK) return NatsStatus(s, "reading message " + std::to_string(seq) + " of stream " + stream_);
  NatsMsgPtr msg(raw);
  return PayloadHash(
      std::string_view(natsMsg_GetData(msg.get()), static_cast<size_t>(natsMsg_GetDataLength(msg.get()))));
}

}  // namespace marmot
