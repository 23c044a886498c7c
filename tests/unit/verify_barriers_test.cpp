// What `marmot verify` under write load rests on (docs/VERIFY.md): the consumers stop at a
// session's barriers until the responder took its snapshot (VerifyBarriers), and the change-log
// entries that may reach the streams after the barriers are kept and told apart (ChangeLogHold).
#include "verify/verify_barriers.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "db/change_log_hold.h"

namespace marmot {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

TEST(VerifyBarriersTest, AConsumerWaitsAtAnExpectedBarrierUntilReleased) {
  VerifyBarriers barriers;
  barriers.Expect("s1", 60s);
  std::atomic<bool> stop{false};
  std::atomic<bool> passed{false};
  std::thread consumer([&] {
    barriers.Reached("s1", "stream-1", 42, stop);
    passed.store(true);
  });
  Result<std::map<std::string, uint64_t>> at = barriers.WaitAll("s1", {"stream-1"}, 10s);
  ASSERT_TRUE(at.ok()) << at.status().message();
  EXPECT_EQ(at->at("stream-1"), 42u);
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(passed.load()) << "the consumer went on before the snapshot was taken";
  barriers.Release("s1");
  consumer.join();
  EXPECT_TRUE(passed.load());
}

TEST(VerifyBarriersTest, ABarrierOfASessionNotExpectedPassesAtOnce) {
  VerifyBarriers barriers;
  std::atomic<bool> stop{false};
  auto start = SteadyClock::now();
  barriers.Reached("old", "stream-1", 7, stop);
  EXPECT_LT(SteadyClock::now() - start, 1s);
}

TEST(VerifyBarriersTest, AConsumerGoesOnAfterTheHoldOrAtStop) {
  VerifyBarriers barriers;
  std::atomic<bool> stop{false};
  barriers.Expect("short", 300ms);
  auto start = SteadyClock::now();
  barriers.Reached("short", "stream-1", 1, stop);  // nobody takes a snapshot
  EXPECT_GE(SteadyClock::now() - start, 250ms);
  EXPECT_LT(SteadyClock::now() - start, 5s);

  barriers.Expect("long", 60s);
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stop.store(true);
  });
  start = SteadyClock::now();
  barriers.Reached("long", "stream-1", 2, stop);
  EXPECT_LT(SteadyClock::now() - start, 5s);
  stopper.join();
}

TEST(VerifyBarriersTest, WaitAllNamesTheStreamsNotReached) {
  VerifyBarriers barriers;
  barriers.Expect("s1", 60s);
  std::atomic<bool> stop{false};
  std::thread consumer([&] { barriers.Reached("s1", "stream-1", 5, stop); });
  Result<std::map<std::string, uint64_t>> at = barriers.WaitAll("s1", {"stream-1", "stream-2"}, 500ms);
  ASSERT_FALSE(at.ok());
  EXPECT_NE(at.status().message().find("stream-2"), std::string::npos) << at.status().message();
  EXPECT_EQ(at.status().message().find("stream-1"), std::string::npos) << at.status().message();
  barriers.Release("s1");
  consumer.join();
  EXPECT_FALSE(barriers.WaitAll("never expected", {"stream-1"}, 100ms).ok());
}

TEST(VerifyBarriersTest, AConsumerThatWentOnBeforeTheSnapshotBreaksTheSession) {
  VerifyBarriers barriers;
  barriers.Expect("s1", 300ms);  // no digest request within the hold
  std::atomic<bool> stop{false};
  barriers.Reached("s1", "stream-1", 5, stop);
  Result<std::map<std::string, uint64_t>> at = barriers.WaitAll("s1", {"stream-1"}, 1s);
  ASSERT_FALSE(at.ok()) << "digests would be taken past a barrier";
  EXPECT_NE(at.status().message().find("went on before the snapshot"), std::string::npos)
      << at.status().message();
}

TEST(VerifyBarriersTest, CancelEndsEveryWait) {
  VerifyBarriers barriers;
  barriers.Expect("s1", 60s);
  std::atomic<bool> stop{false};
  std::thread consumer([&] { barriers.Reached("s1", "stream-1", 5, stop); });
  std::thread canceller([&] {
    std::this_thread::sleep_for(200ms);
    barriers.Cancel();
  });
  auto start = SteadyClock::now();
  Result<std::map<std::string, uint64_t>> at = barriers.WaitAll("s1", {"stream-1", "stream-2"}, 60s);
  EXPECT_FALSE(at.ok());
  consumer.join();
  canceller.join();
  EXPECT_LT(SteadyClock::now() - start, 5s);
}

TEST(ChangeLogHoldTest, HeldEntriesAreNotDeletedUntilReleased) {
  ChangeLogHold hold;
  hold.Reset(10);
  EXPECT_EQ(hold.DeletableUpTo(10), 10u);
  uint64_t held = hold.Hold();
  EXPECT_EQ(held, 10u);
  hold.SetConfirmed(25, {{"s1", 3}});
  EXPECT_EQ(hold.DeletableUpTo(25), 10u) << "entries after the hold were deletable";
  uint64_t second = hold.Hold();
  EXPECT_EQ(second, 25u);
  hold.Release(held);
  EXPECT_EQ(hold.DeletableUpTo(30), 25u);
  hold.Release(second);
  EXPECT_EQ(hold.DeletableUpTo(30), 30u);
}

TEST(ChangeLogHoldTest, LastBeforeStopsAtTheFirstConfirmationReachingABarrier) {
  ChangeLogHold hold;
  hold.SetConfirmed(10, {{"s1", 100}});
  uint64_t held = hold.Hold();
  hold.SetConfirmed(20, {{"s1", 110}});
  hold.SetConfirmed(30, {{"s1", 118}, {"s2", 40}});
  hold.SetConfirmed(40, {{"s1", 125}});  // after the barrier at 120
  hold.SetConfirmed(50, {{"s1", 119}});  // may cover entries sent before 40 was acknowledged
  EXPECT_EQ(hold.LastBefore(held, {{"s1", 120}, {"s2", 50}}), 30u);
  EXPECT_EQ(hold.LastBefore(held, {{"s1", 120}, {"s2", 40}}), 20u);  // s2's message is not before
  EXPECT_EQ(hold.LastBefore(held, {{"s1", 105}, {"s2", 50}}), 10u);
  EXPECT_EQ(hold.LastBefore(held, {{"s1", 200}}), 20u);  // a stream without a barrier: not before
  hold.Release(held);
  hold.SetConfirmed(55, {{"s1", 130}});  // not recorded: nothing is held
  uint64_t again = hold.Hold();          // a new hold starts with no recorded confirmations
  EXPECT_EQ(again, 55u);
  EXPECT_EQ(hold.LastBefore(again, {{"s1", 1000}, {"s2", 1000}}), 55u);
  hold.SetConfirmed(60, {});  // where its messages are is not known
  hold.SetConfirmed(70, {{"s1", 140}});
  EXPECT_EQ(hold.LastBefore(again, {{"s1", 1000}}), 55u);
  hold.Release(again);
}

}  // namespace
}  // namespace marmot
