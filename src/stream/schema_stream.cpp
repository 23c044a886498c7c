#include "stream/schema_stream.h"

#include <spdlog/spdlog.h>

#include <functional>
#include <limits>

#include "codec/schema_message.h"
#include "stream/jetstream_source.h"
#include "stream/nats_handles.h"

namespace marmot {

Result<uint64_t> PublishSchemaMessage(NatsClient* client, const StreamLayout& layout, uint64_t node_id,
                                      const std::string& payload) {
  std::string subject = layout.SchemaSubject();
  // Stable for the same change from the same node: a re-send after a crash is recognised.
  std::string msg_id =
      "schema-" + std::to_string(node_id) + "-" + std::to_string(std::hash<std::string>()(payload));
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MsgId = msg_id.c_str();
  options.MaxWait = 10000;
  jsPubAck* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(&raw, client->jetstream(), subject.c_str(), payload.data(),
                            static_cast<int>(payload.size()), &options, &jerr);
  JsPubAckPtr ack(raw);
  if (s != NATS_OK) return NatsStatus(s, "publishing a schema change to stream " + layout.SchemaStreamName());
  return ack->Sequence;
}

SchemaConsumer::SchemaConsumer(NatsClient* client, const StreamLayout& layout,
                               std::unique_ptr<SchemaApplier> applier, NodeMetrics* metrics)
    : client_(client), layout_(layout), metrics_(metrics), applier_(std::move(applier)) {
  if (metrics_) metrics_->SchemaApplied(/*message=*/false, /*settled=*/true);
}

SchemaConsumer::~SchemaConsumer() { Stop(); }

Status SchemaConsumer::Start() {
  Result<StreamPosition> position = applier_->LoadPosition(layout_.SchemaStreamName());
  if (!position.ok()) return position.status();
  applied_.store(position->seq);
  thread_ = std::thread([this] { Run(); });
  return Status();
}

void SchemaConsumer::Stop() {
  stop_.store(true);
  applied_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SchemaConsumer::WaitCaughtUp(std::chrono::milliseconds timeout) {
  const std::string stream = layout_.SchemaStreamName();
  JetStreamSource source(client_, stream, layout_.SchemaSubject());
  Result<StreamState> state = source.State();
  uint64_t target = state.ok() ? state->last_seq : applied_.load();
  // A replica without a leader may not have the change the caller waits for: wait the whole time.
  if (state.ok() && !state->leader_known) target = std::numeric_limits<uint64_t>::max();
  if (target == std::numeric_limits<uint64_t>::max())
    spdlog::info("holding a change for {} ms: the schema stream has no leader to say where it ends",
                 timeout.count());
  else
    spdlog::info("holding a change until this node has applied the schema stream up to message {} ({} now)",
                 target, applied_.load());
  std::unique_lock<std::mutex> lock(mu_);
  applied_cv_.wait_for(lock, timeout,
                       [&] { return stop_.load() || (applied_.load() >= target && applier_->settled()); });
}

void SchemaConsumer::Run() {
  const std::string stream = layout_.SchemaStreamName();
  JetStreamSource source(client_, stream, layout_.SchemaSubject());
  bool subscribed = false;
  int64_t created_ns = 0;
  while (!stop_.load()) {
    if (!subscribed) {
      Result<StreamPosition> position = applier_->LoadPosition(stream);
      Result<StreamState> state = source.State();
      Status s = position.ok() ? (state.ok() ? Status() : state.status()) : position.status();
      if (s.ok()) {
        created_ns = state->created_ns;
        uint64_t start = position->seq + 1;
        if (position->created_ns != 0 && position->created_ns != state->created_ns) {
          spdlog::warn("stream {} was re-created: reading it from its start", stream);
          start = 1;
        }
        s = source.Subscribe(start);
      }
      if (!s.ok()) {
        spdlog::warn("schema stream: {}; retrying in 1 s", s.message());
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      subscribed = true;
    }
    SourceMessage message;
    Result<bool> got = source.Next(std::chrono::milliseconds(500), &message);
    if (!got.ok()) {
      spdlog::warn("schema stream: {}; subscribing again", got.status().message());
      subscribed = false;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    if (!*got) {
      if (!applier_->settled()) {
        Status retried = applier_->Retry();
        if (!retried.ok()) spdlog::warn("{}", retried.message());
        if (metrics_) metrics_->SchemaApplied(/*message=*/false, applier_->settled());
        if (applier_->settled()) applied_cv_.notify_all();
      }
      continue;
    }
    StreamPosition at{stream, message.seq, created_ns};
    Result<SchemaChange> change = DecodeSchemaChange(message.payload);
    Status applied;
    if (!change.ok()) {
      spdlog::error("schema stream {} message {}: {}; skipped", stream, message.seq,
                    change.status().message());
      applied = applier_->Skip(at, change.status().message());
    } else {
      applied = applier_->Apply(*change, at);
    }
    if (!applied.ok()) {
      spdlog::error("{}; retrying in 1 s", applied.message());
      subscribed = false;
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      applied_.store(message.seq);
    }
    if (metrics_) metrics_->SchemaApplied(/*message=*/true, applier_->settled());
    applied_cv_.notify_all();
  }
}

}  // namespace marmot
