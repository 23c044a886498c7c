// VerifyResponder (verify/verify_responder.h) against a real nats-server: a node busy with one
// verify session (here: a digest request waiting for its barriers, as it does on a node applying
// far behind; or digesting a large database) must still answer another verify's discovery at
// once, or that verify misses the node and reports it as not answering; digests themselves are
// taken one session at a time.
#include "verify/verify_responder.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "db/marmot_tables.h"
#include "db/sqlite.h"
#include "local_nats.h"
#include "test_util.h"
#include "verify/verify_barriers.h"

namespace marmot {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kSubject[] = "test-verify";

class VerifyResponderTest : public testing::Test {
 protected:
  void SetUp() override {
    nats_.Start("verify-responder-test", dir_.path());
    ASSERT_FALSE(HasFatalFailure());
    db_path_ = dir_.path() + "/app.db";
    Database::Options create;
    create.create = true;
    Result<Database> db = Database::Open(db_path_, create);
    ASSERT_TRUE(db.ok()) << db.status().message();
    bool switched = false;
    ASSERT_TRUE(db->EnsureWal(&switched).ok());
    ASSERT_TRUE(EnsureMarmotTables(*db, 1).ok());
    VerifyResponderOptions o;
    o.db_path = db_path_;
    o.node_id = 1;
    o.instance = "instance-1";
    o.subject = kSubject;
    o.streams = {"stream-1"};
    o.barriers = &barriers_;
    Result<std::unique_ptr<VerifyResponder>> started = VerifyResponder::Start(connection(), o);
    ASSERT_TRUE(started.ok()) << started.status().message();
    responder_ = std::move(*started);
  }

  natsConnection* connection() { return nats_.client->connection(); }

  // One request, one answer within `timeout`; an error status when none came.
  Result<nlohmann::json> Ask(const nlohmann::json& request, std::chrono::milliseconds timeout) {
    std::string data = request.dump();
    natsMsg* raw = nullptr;
    natsStatus s = natsConnection_Request(&raw, connection(), kSubject, data.data(),
                                          static_cast<int>(data.size()), timeout.count());
    if (s != NATS_OK) return NatsStatus(s, "asking " + request.dump());
    NatsMsgPtr reply(raw);
    return nlohmann::json::parse(
        std::string(natsMsg_GetData(reply.get()), natsMsg_GetDataLength(reply.get())));
  }

  // Sends a request whose answers arrive on the returned subscription.
  NatsSubscriptionPtr Send(const nlohmann::json& request) {
    natsInbox* inbox = nullptr;
    natsInbox_Create(&inbox);
    std::string subject = inbox;
    natsInbox_Destroy(inbox);
    natsSubscription* sub = nullptr;
    EXPECT_EQ(natsConnection_SubscribeSync(&sub, connection(), subject.c_str()), NATS_OK);
    std::string data = request.dump();
    EXPECT_EQ(natsConnection_PublishRequest(connection(), kSubject, subject.c_str(), data.data(),
                                            static_cast<int>(data.size())),
              NATS_OK);
    return NatsSubscriptionPtr(sub);
  }

  static Result<nlohmann::json> Next(natsSubscription* sub, std::chrono::milliseconds timeout) {
    natsMsg* raw = nullptr;
    natsStatus s = natsSubscription_NextMsg(&raw, sub, timeout.count());
    if (s != NATS_OK) return NatsStatus(s, "waiting for an answer");
    NatsMsgPtr msg(raw);
    return nlohmann::json::parse(std::string(natsMsg_GetData(msg.get()), natsMsg_GetDataLength(msg.get())));
  }

  test::TempDir dir_;
  test::LocalNats nats_;
  std::string db_path_;
  VerifyBarriers barriers_;
  std::unique_ptr<VerifyResponder> responder_;
};

TEST_F(VerifyResponderTest, AnswersAnotherVerifyWhileADigestWaitsForItsBarriers) {
  Result<nlohmann::json> prepared =
      Ask({{"op", "prepare"}, {"session", "A"}, {"hold_ms", 30000}}, std::chrono::milliseconds(2000));
  ASSERT_TRUE(prepared.ok()) << prepared.status().message();
  EXPECT_EQ(prepared->value("op", ""), "prepared");
  // Session A's barrier never comes: its digest request waits here for up to 20 s.
  NatsSubscriptionPtr digest_a = Send({{"op", "digest"}, {"session", "A"}, {"wait_ms", 20000}});
  Result<nlohmann::json> hello = Next(digest_a.get(), std::chrono::milliseconds(2000));
  ASSERT_TRUE(hello.ok()) << hello.status().message();
  EXPECT_EQ(hello->value("op", ""), "hello");

  // Its digest holds the node's one digest slot once it waits for the barriers (under load the
  // worker may start late; B's digest must not take the slot first).
  auto started = Clock::now();
  while (!barriers_.Claimed("A") && Clock::now() - started < std::chrono::seconds(10))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(barriers_.Claimed("A")) << "session A's digest did not start waiting for its barriers";

  // Meanwhile a second verify finds the node and prepares at once.
  auto asked = Clock::now();
  Result<nlohmann::json> whois = Ask({{"op", "whois"}}, std::chrono::milliseconds(1000));
  ASSERT_TRUE(whois.ok()) << "a busy node did not answer whois: " << whois.status().message();
  EXPECT_EQ(whois->value("db_path", ""), db_path_);
  prepared = Ask({{"op", "prepare"}, {"session", "B"}, {"hold_ms", 30000}}, std::chrono::milliseconds(1000));
  ASSERT_TRUE(prepared.ok()) << "a busy node did not answer prepare: " << prepared.status().message();
  EXPECT_LT(Clock::now() - asked, std::chrono::seconds(1));

  // Its digest says hello at once, but is taken only after A's (one digest at a time).
  std::atomic<bool> stop{false};
  std::thread consumer([&] { barriers_.Reached("B", "stream-1", 7, stop); });  // B's barrier came
  NatsSubscriptionPtr digest_b = Send({{"op", "digest"}, {"session", "B"}, {"wait_ms", 8000}});
  Result<nlohmann::json> b_hello = Next(digest_b.get(), std::chrono::milliseconds(1000));
  ASSERT_TRUE(b_hello.ok()) << b_hello.status().message();
  EXPECT_EQ(b_hello->value("op", ""), "hello");
  EXPECT_FALSE(Next(digest_b.get(), std::chrono::milliseconds(1000)).ok()) << "B's digest ran beside A's";

  // Ending A makes its waiting digest answer (with an error) at once, and B's digest follows.
  NatsSubscriptionPtr ended = Send({{"op", "end"}, {"session", "A"}});
  Result<nlohmann::json> a_digest = Next(digest_a.get(), std::chrono::milliseconds(2000));
  ASSERT_TRUE(a_digest.ok()) << a_digest.status().message();
  EXPECT_TRUE(a_digest->contains("error")) << a_digest->dump();
  Result<nlohmann::json> b_digest = Next(digest_b.get(), std::chrono::milliseconds(5000));
  stop.store(true);
  consumer.join();
  ASSERT_TRUE(b_digest.ok()) << "session B got no digest after A ended: " << b_digest.status().message();
  EXPECT_EQ(b_digest->value("op", ""), "digest") << b_digest->dump();
  EXPECT_TRUE(b_digest->contains("tables")) << b_digest->dump();
}

TEST_F(VerifyResponderTest, AMalformedRequestIsAnsweredWithAnError) {
  // A session id that is not a string (nlohmann::json would throw reading it as one).
  Result<nlohmann::json> answer =
      Ask({{"op", "rows"}, {"session", 5}, {"table", 7}}, std::chrono::milliseconds(2000));
  ASSERT_TRUE(answer.ok()) << answer.status().message();
  EXPECT_TRUE(answer->contains("error")) << answer->dump();
  answer = Ask({{"op", "whois"}}, std::chrono::milliseconds(2000));  // and the node still answers
  ASSERT_TRUE(answer.ok()) << answer.status().message();
}

TEST_F(VerifyResponderTest, StoppingEndsADigestThatWaitsForItsBarriers) {
  ASSERT_TRUE(
      Ask({{"op", "prepare"}, {"session", "A"}, {"hold_ms", 60000}}, std::chrono::milliseconds(2000)).ok());
  NatsSubscriptionPtr digest = Send({{"op", "digest"}, {"session", "A"}, {"wait_ms", 60000}});
  ASSERT_TRUE(Next(digest.get(), std::chrono::milliseconds(2000)).ok());  // hello: it is waiting now
  auto stopping = Clock::now();
  responder_.reset();  // without VerifyBarriers::Cancel: the responder ends its own waits
  EXPECT_LT(Clock::now() - stopping, std::chrono::seconds(3));
}

}  // namespace
}  // namespace marmot
