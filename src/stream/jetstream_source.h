// JetStreamSource: a MessageSource on one JetStream shard stream, read by an ordered push consumer
// (no acks: the position lives in the database), with a heartbeat every second so a lost server
// is noticed within two seconds and the consumer recreated after the last message received.
//
// REQUIRES: one thread uses a source.
#pragma once

#include <memory>
#include <string>

#include "stream/message_source.h"
#include "stream/nats_client.h"
#include "stream/nats_handles.h"
#include "stream/streams.h"

namespace marmot {

class JetStreamSource final : public MessageSource {
 public:
  JetStreamSource(NatsClient* client, const StreamLayout& layout, int shard);
  JetStreamSource(NatsClient* client, std::string stream, std::string subject);
  ~JetStreamSource() override;
  JetStreamSource(const JetStreamSource&) = delete;
  JetStreamSource& operator=(const JetStreamSource&) = delete;

  Result<StreamState> State() override;
  Status Subscribe(uint64_t start_seq) override;
  Result<bool> Next(std::chrono::milliseconds timeout, SourceMessage* out) override;
  bool HasPending() override;
  Result<int64_t> StoredHash(uint64_t seq) override;

 private:
  NatsClient* client_;
  std::string stream_;
  std::string subject_;
  ClosingSubscription sub_;
  NatsMsgPtr current_;  // the message Next() returned last: its views point into it
};

}  // namespace marmot
