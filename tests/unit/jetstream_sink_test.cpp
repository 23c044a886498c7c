// The publisher's MessageSink on a real nats-server: outcomes per message with stream sequences,
// Nats-Msg-Id deduplication inside the duplicate window, reading a stream back (ids and
// sequences, headers only) and fetching one payload.
#include "stream/jetstream_sink.h"

#include <map>

#include "local_nats.h"
#include "stream/nats_server.h"
#include "stream/streams.h"
#include "test_util.h"

namespace marmot {
namespace {

class JetStreamSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nats_.Start("sink-test", dir_.File("nats"));
    ASSERT_FALSE(HasFatalFailure());
    client_ = nats_.client.get();
    layout_.shards = 2;
    ASSERT_TRUE(EnsureStreams(client_->jetstream(), layout_).ok());
    Result<std::unique_ptr<JetStreamSink>> sink = JetStreamSink::Create(client_, layout_);
    ASSERT_TRUE(sink.ok()) << sink.status().message();
    sink_ = std::move(*sink);
  }

  std::map<size_t, PublishOutcome> Await() {
    std::map<size_t, PublishOutcome> out;
    sink_->AwaitOutcomes(std::chrono::seconds(5),
                         [&out](size_t token, const PublishOutcome& o) { out.emplace(token, o); });
    return out;
  }

  test::TempDir dir_;
  test::LocalNats nats_;
  NatsClient* client_ = nullptr;
  StreamLayout layout_;
  std::unique_ptr<JetStreamSink> sink_;
};

TEST_F(JetStreamSinkTest, OutcomesDeduplicationScanAndFetch) {
  OutgoingMessage a{1, "0123456789abcdef-1-2-2-1-0-1", "", "payload a", {}};
  OutgoingMessage b{2, "0123456789abcdef-1-2-2-2-0-1", "", "payload b", {}};
  OutgoingMessage c{1, "0123456789abcdef-3-3-1-1-0-1", "g 0 1", "payload c", {}};
  ASSERT_TRUE(sink_->Send(a, 10).ok());
  ASSERT_TRUE(sink_->Send(b, 11).ok());
  ASSERT_TRUE(sink_->Send(c, 12).ok());
  std::map<size_t, PublishOutcome> outcomes = Await();
  ASSERT_EQ(outcomes.size(), 3u);
  for (size_t token : {10, 11, 12}) {
    EXPECT_TRUE(outcomes[token].stored) << token << ": " << outcomes[token].error;
    EXPECT_FALSE(outcomes[token].duplicate) << token;
  }
  EXPECT_EQ(outcomes[10].stream_seq, 1u);
  EXPECT_EQ(outcomes[11].stream_seq, 1u);  // another stream
  EXPECT_EQ(outcomes[12].stream_seq, 2u);

  // The same id again, inside the duplicate window: acknowledged as a duplicate of message 1,
  // not stored a second time, even with another payload.
  OutgoingMessage again = a;
  again.payload = "something else";
  ASSERT_TRUE(sink_->Send(again, 20).ok());
  outcomes = Await();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_TRUE(outcomes[20].stored);
  EXPECT_TRUE(outcomes[20].duplicate);
  EXPECT_EQ(outcomes[20].stream_seq, 1u);

  // Reading back: every id after a sequence, in order; the stream's first sequence is returned.
  std::vector<std::pair<std::string, uint64_t>> seen;
  Result<MessageSink::StoredRange> first = sink_->ScanStored(
      1, 0, [&seen](std::string_view id, uint64_t seq) { seen.emplace_back(std::string(id), seq); });
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->first, 1u);
  EXPECT_EQ(first->last, 2u);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_pair(a.msg_id, uint64_t{1}));
  EXPECT_EQ(seen[1], std::make_pair(c.msg_id, uint64_t{2}));
  seen.clear();
  ASSERT_TRUE(
      sink_
          ->ScanStored(
              1, 1, [&seen](std::string_view id, uint64_t seq) { seen.emplace_back(std::string(id), seq); })
          .ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].second, 2u);
  seen.clear();
  ASSERT_TRUE(
      sink_
          ->ScanStored(
              1, 2, [&seen](std::string_view id, uint64_t seq) { seen.emplace_back(std::string(id), seq); })
          .ok());
  EXPECT_TRUE(seen.empty());

  Result<StoredMessage> fetched = sink_->Fetch(1, 1);
  ASSERT_TRUE(fetched.ok()) << fetched.status().message();
  EXPECT_EQ(fetched->payload, "payload a");
  EXPECT_EQ(fetched->chunk_header, "");
  fetched = sink_->Fetch(1, 2);
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(fetched->chunk_header, "g 0 1");
  Result<StoredMessage> missing = sink_->Fetch(1, 99);
  EXPECT_FALSE(missing.ok());
}

TEST_F(JetStreamSinkTest, AMessageWithoutAStreamIsReportedNotStored) {
  // Shard 3 has no stream (layout has 2): the server answers "no responders" or times out.
  OutgoingMessage lost{3, "0123456789abcdef-5-5-1-3-0-1", "", "x", {}};
  ASSERT_TRUE(sink_->Send(lost, 7).ok());
  std::map<size_t, PublishOutcome> outcomes;
  sink_->AwaitOutcomes(std::chrono::milliseconds(1500),
                       [&outcomes](size_t token, const PublishOutcome& o) { outcomes.emplace(token, o); });
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_FALSE(outcomes[7].stored);
  EXPECT_FALSE(outcomes[7].error.empty());
}

TEST(NatsStatusTest, CodesAreMapped) {
  EXPECT_TRUE(NatsStatus(NATS_TIMEOUT, "x").Is(StatusCode::kUnavailable));
  EXPECT_TRUE(NatsStatus(NATS_NO_RESPONDERS, "x").Is(StatusCode::kUnavailable));
  EXPECT_TRUE(NatsStatus(NATS_CONNECTION_CLOSED, "x").Is(StatusCode::kUnavailable));
  EXPECT_TRUE(NatsStatus(NATS_NOT_FOUND, "x").Is(StatusCode::kNotFound));
  EXPECT_TRUE(NatsStatus(NATS_INVALID_ARG, "x").Is(StatusCode::kInvalidArgument));
  EXPECT_TRUE(NatsStatus(NATS_ERR, "x").Is(StatusCode::kUnknown));
  EXPECT_EQ(NatsStatus(NATS_TIMEOUT, "publishing").message().rfind("publishing: ", 0), 0u);
}

}  // namespace
}  // namespace marmot
