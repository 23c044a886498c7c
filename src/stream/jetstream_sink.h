// JetStreamSink: the publisher's MessageSink on NATS JetStream.
//
// Sends with js_PublishMsgAsync (headers Nats-Msg-Id, Marmot-Chunk) on its own JetStream context,
// whose ack handler records each message's outcome (stored, duplicate, stream sequence, or the
// error) under the token the publisher gave it. Reads streams back with a headers-only ordered
// consumer, and single messages with a direct get.
//
// Thread safety: Send/AwaitOutcomes/ScanStored/Fetch from one thread; nats.c calls the ack
// handler on its own thread (outcomes are guarded by a mutex).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stream/message_sink.h"
#include "stream/nats_client.h"
#include "stream/nats_handles.h"
#include "stream/streams.h"

namespace marmot {

class JetStreamSink final : public MessageSink {
 public:
  static Result<std::unique_ptr<JetStreamSink>> Create(NatsClient* client, StreamLayout layout);
  ~JetStreamSink() override;
  JetStreamSink(const JetStreamSink&) = delete;
  JetStreamSink& operator=(const JetStreamSink&) = delete;

  size_t max_payload() const override;
  Status Send(const OutgoingMessage& message, size_t token) override;
  void AwaitOutcomes(std::chrono::milliseconds timeout,
                     const std::function<void(size_t, const PublishOutcome&)>& done) override;
  Result<StoredRange> ScanStored(int shard, uint64_t after,
                                 const std::function<void(std::string_view, uint64_t)>& visit) override;
  Result<StoredMessage> Fetch(int shard, uint64_t seq) override;

 private:
  JetStreamSink(NatsClient* client, StreamLayout layout) : client_(client), layout_(std::move(layout)) {}
  static void OnAck(jsCtx* js, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure);
  // Takes back the messages nats.c still waits an ack for: their outcome becomes "no ack".
  void DropPending();

  NatsClient* client_;
  StreamLayout layout_;
  JsCtxPtr js_;
  bool sent_any_ = false;             // nats.c crashes asking for the pending list of a context never used
  std::atomic<int> acks_running_{0};  // OnAck calls in progress (the destructor waits for them)
  std::mutex mu_;
  std::unordered_map<std::string, size_t> waiting_;  // msg id -> token, sent and not answered yet
  std::vector<std::pair<size_t, PublishOutcome>> outcomes_;
};

}  // namespace marmot
