// ClosingSubscription (stream/nats_client.h) against a real nats-server: ordered consumers closed
// over and over while messages keep arriving for them must leave the connection working. nats.c
// 3.4 uses a message's subscription without holding a reference, so freeing the subscription at
// such a moment could leave its reader thread on freed memory: every later request of the
// connection timed out, or the process aborted (found by tests/e2e/fault_kill_test.sh).
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "local_nats.h"
#include "stream/jetstream_source.h"
#include "stream/streams.h"
#include "test_util.h"

namespace marmot {
namespace {

TEST(ClosingSubscriptionTest, ClosingWhileMessagesArriveLeavesTheConnectionWorking) {
  test::TempDir dir;
  test::LocalNats nats;
  nats.Start("closing-subscription-test", dir.path());
  ASSERT_FALSE(testing::Test::HasFatalFailure());
  StreamLayout layout;
  layout.max_entries = 100000;
  ASSERT_TRUE(EnsureStreams(nats.client->jetstream(), layout).ok());

  // Another connection publishes into the stream as fast as it can.
  NatsClientOptions co;
  co.urls = {nats.server->client_url()};
  Result<std::unique_ptr<NatsClient>> publisher = NatsClient::Connect(co);
  ASSERT_TRUE(publisher.ok()) << publisher.status().message();
  std::atomic<bool> stop{false};
  std::thread flood([&] {
    const std::string subject = layout.Subject(1);
    while (!stop.load()) {
      natsConnection_PublishString((*publisher)->connection(), subject.c_str(), "x");
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });

  for (int round = 0; round < 150; ++round) {
    JetStreamSource source(nats.client.get(), layout, 1);
    Result<StreamState> state = source.State();
    ASSERT_TRUE(state.ok()) << "round " << round << ": " << state.status().message();
    ASSERT_TRUE(source.Subscribe(state->last_seq > 20 ? state->last_seq - 20 : 1).ok());
    SourceMessage m;
    for (int i = 0; i < 3; ++i) {
      Result<bool> got = source.Next(std::chrono::milliseconds(1000), &m);
      ASSERT_TRUE(got.ok()) << got.status().message();
    }
    // `source` closes its subscription here, with messages still flowing to it.
  }
  stop.store(true);
  flood.join();
  JetStreamSource source(nats.client.get(), layout, 1);
  Result<StreamState> state = source.State();  // a JetStream request on the same connection
  ASSERT_TRUE(state.ok()) << state.status().message();
  EXPECT_GT(state->last_seq, 150u);
}

}  // namespace
}  // namespace marmot
