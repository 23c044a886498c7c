#include "stream/jetstream_sink.h"

#include <spdlog/spdlog.h>

#include <thread>

namespace marmot {
namespace {

constexpr char kMsgIdHeader[] = "Nats-Msg-Id";
constexpr char kChunkHeader[] = "Marmot-Chunk";
// Reading a stream back: give up when the next message does not come within this long.
constexpr int kScanTimeoutMs = 10000;
constexpr int kLeaderWaitSeconds = 30;

}  // namespace

Result<std::unique_ptr<JetStreamSink>> JetStreamSink::Create(NatsClient* client, StreamLayout layout) {
  std::unique_ptr<JetStreamSink> sink(new JetStreamSink(client, std::move(layout)));
  jsOptions options;
  jsOptions_Init(&options);
  options.PublishAsync.AckHandler = OnAck;
  options.PublishAsync.AckHandlerClosure = sink.get();
  // Bounded window: sending blocks while this many acks are outstanding.
  options.PublishAsync.MaxPending = 4096;
  jsCtx* js = nullptr;
  natsStatus s = natsConnection_JetStream(&js, client->connection(), &options);
  if (s != NATS_OK) return NatsStatus(s, "creating the publisher's JetStream context");
  sink->js_.reset(js);
  return sink;
}

JetStreamSink::~JetStreamSink() {
  // Messages still waiting for an ack (stopping while NATS is away) would call OnAck with `this`
  // later: take them back first (their changes stay in the change log), let go of the context,
  // and wait for a handler that is running right now.
  DropPending();
  js_.reset();
  while (acks_running_.load() > 0) std::this_thread::yield();
}

void JetStreamSink::DropPending() {
  if (!sent_any_) return;
  natsMsgList pending{};
  if (js_PublishAsyncGetPendingList(&pending, js_.get()) == NATS_OK) natsMsgList_Destroy(&pending);
}

size_t JetStreamSink::max_payload() const { return static_cast<size_t>(client_->max_payload()); }

void JetStreamSink::OnAck(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure) {
  auto* sink = static_cast<JetStreamSink*>(closure);
  sink->acks_running_.fetch_add(1);
  struct Leave {
    std::atomic<int>* running;
    ~Leave() { running->fetch_sub(1); }
  } leave{&sink->acks_running_};
  NatsMsgPtr owned(msg);  // the handler owns the message
  const char* id = nullptr;
  if (natsMsgHeader_Get(msg, kMsgIdHeader, &id) != NATS_OK || id == nullptr) return;
  PublishOutcome outcome;
  if (ack) {
    outcome.stored = true;
    outcome.duplicate = ack->Duplicate;
    outcome.stream_seq = ack->Sequence;
  } else {
    outcome.error = error && error->ErrText ? error->ErrText : NatsError(error ? error->Err : NATS_ERR);
  }
  std::lock_guard<std::mutex> lock(sink->mu_);
  auto waiting = sink->waiting_.find(id);
  if (waiting == sink->waiting_.end()) return;
  sink->outcomes_.emplace_back(waiting->second, std::move(outcome));
  sink->waiting_.erase(waiting);
}

Status JetStreamSink::Send(const OutgoingMessage& m, size_t token) {
  std::string subject = layout_.Subject(m.shard);
  natsMsg* raw = nullptr;
  natsStatus s =
      natsMsg_Create(&raw, subject.c_str(), nullptr, m.payload.data(), static_cast<int>(m.payload.size()));
  NatsMsgPtr msg(raw);
  if (s == NATS_OK) s = natsMsgHeader_Set(msg.get(), kMsgIdHeader, m.msg_id.c_str());
  if (s == NATS_OK && !m.chunk_header.empty())
    s = natsMsgHeader_Set(msg.get(), kChunkHeader, m.chunk_header.c_str());
  if (s != NATS_OK) return NatsStatus(s, "preparing message for " + subject);
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiting_[m.msg_id] = token;
  }
  sent_any_ = true;
  raw = msg.release();
  s = js_PublishMsgAsync(js_.get(), &raw, nullptr);  // takes ownership on success (raw becomes null)
  if (raw) natsMsg_Destroy(raw);
  if (s != NATS_OK) {
    std::lock_guard<std::mutex> lock(mu_);
    waiting_.erase(m.msg_id);
    return NatsStatus(s, "publishing to " + subject);
  }
  return Status();
}

void JetStreamSink::AwaitOutcomes(std::chrono::milliseconds timeout,
                                  const std::function<void(size_t, const PublishOutcome&)>& done) {
  std::string why;
  if (sent_any_) {
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = timeout.count();
    natsStatus s = js_PublishAsyncComplete(js_.get(), &wait);
    if (s != NATS_OK) {
      why = "no acknowledgment within " + std::to_string(timeout.count()) + " ms (" + NatsError(s) + ")";
      DropPending();
    }
  }
  std::vector<std::pair<size_t, PublishOutcome>> outcomes;
  std::unordered_map<std::string, size_t> unanswered;
  {
    std::lock_guard<std::mutex> lock(mu_);
    outcomes.swap(outcomes_);
    unanswered.swap(waiting_);
  }
  for (const auto& [token, outcome] : outcomes) done(token, outcome);
  PublishOutcome lost;
  lost.error = why.empty() ? "no acknowledgment" : why;
  for (const auto& [id, token] : unanswered) done(token, lost);
}

Result<MessageSink::StoredRange> JetStreamSink::ScanStored(
    int shard, uint64_t after, const std::function<void(std::string_view, uint64_t)>& visit) {
  std::string stream = layout_.StreamName(shard);
  JsStreamInfoPtr info;
  natsStatus s = NATS_OK;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  for (int attempt = 1;; ++attempt) {
    jsStreamInfo* raw_info = nullptr;
    s = js_GetStreamInfo(&raw_info, client_->jetstream(), stream.c_str(), nullptr, &jerr);
    if (s != NATS_OK) return NatsStatus(s, "looking up stream " + stream);
    info.reset(raw_info);
    // A replica that knows no leader answers from its own copy, which may lack messages the
    // leader stored: wait for the leader's answer (up to kLeaderWaitSeconds).
    bool leader_known = info->Cluster == nullptr || (info->Cluster->Leader && *info->Cluster->Leader);
    if (leader_known || attempt >= kLeaderWaitSeconds) break;
    if (attempt == 1)
      spdlog::info("stream {} has no leader yet; waiting to read back what it stored", stream);
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  uint64_t first = info->State.FirstSeq, last = info->State.LastSeq;
  StoredRange range{info->State.Msgs == 0 ? last + 1 : first, last};
  if (info->State.Msgs == 0 || last <= after) return range;

  std::string subject = layout_.Subject(shard);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Ordered = true;
  so.Config.HeadersOnly = true;
  so.Config.Heartbeat = std::chrono::nanoseconds(std::chrono::seconds(1)).count();
  so.Config.DeliverPolicy = js_DeliverByStartSequence;
  so.Config.OptStartSeq = std::max(after + 1, first);
  natsSubscription* raw_sub = nullptr;
  s = js_SubscribeSync(&raw_sub, client_->jetstream(), subject.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) return NatsStatus(s, "reading back stream " + stream);
  // The consumer goes on delivering while the stream grows: closed safely (nats_client.h).
  ClosingSubscription sub(client_->connection(), raw_sub);
  natsSubscription_SetPendingLimits(sub.get(), 65536, 64 * 1024 * 1024);
  while (true) {
    natsMsg* raw_msg = nullptr;
    s = natsSubscription_NextMsg(&raw_msg, sub.get(), kScanTimeoutMs);
    if (s != NATS_OK) return NatsStatus(s, "reading back stream " + stream);
    NatsMsgPtr msg(raw_msg);
    jsMsgMetaData* raw_meta = nullptr;
    if (natsMsg_GetMetaData(&raw_meta, msg.get()) != NATS_OK) continue;
    JsMsgMetaDataPtr meta(raw_meta);
    uint64_t seq = meta->Sequence.Stream;
    const char* id = nullptr;
    if (natsMsgHeader_Get(msg.get(), kMsgIdHeader, &id) == NATS_OK && id) visit(id, seq);
    if (seq >= last) break;
  }
  return range;
}

Result<StoredMessage> JetStreamSink::Fetch(int shard, uint64_t seq) {
  std::string stream = layout_.StreamName(shard);
  natsMsg* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetMsg(&raw, client_->jetstream(), stream.c_str(), seq, nullptr, &jerr);
  if (s != NATS_OK) return NatsStatus(s, "fetching message " + std::to_string(seq) + " of stream " + stream);
  NatsMsgPtr msg(raw);
  StoredMessage stored;
  stored.payload.assign(natsMsg_GetData(msg.get()), static_cast<size_t>(natsMsg_GetDataLength(msg.get())));
  const char* chunk = nullptr;
  if (natsMsgHeader_Get(msg.get(), kChunkHeader, &chunk) == NATS_OK && chunk) stored.chunk_header = chunk;
  return stored;
}

}  // namespace marmot
