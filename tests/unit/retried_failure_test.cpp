// A retried failure warns while it is young, then says so at error level, and keeps saying it.
#include "telemetry/retried_failure.h"

#include <gtest/gtest.h>

namespace marmot {
namespace {

class StepClock final : public Clock {
 public:
  TimePoint Now() override { return now_; }
  void SleepFor(std::chrono::microseconds d) override { now_ += d; }

 private:
  TimePoint now_{};
};

TEST(RetriedFailureTest, WarnsThenErrorsEveryIntervalUntilCleared) {
  StepClock clock;
  RetriedFailure failure(&clock, std::chrono::seconds(30));
  using L = RetriedFailure::Logged;
  EXPECT_EQ(failure.Log("x"), L::kWarning);
  clock.SleepFor(std::chrono::seconds(29));
  EXPECT_EQ(failure.Log("x"), L::kWarning);
  clock.SleepFor(std::chrono::seconds(1));
  EXPECT_EQ(failure.Log("x"), L::kError);  // failing for 30 s: loud
  clock.SleepFor(std::chrono::seconds(5));
  EXPECT_EQ(failure.Log("x"), L::kNothing);  // not every attempt
  clock.SleepFor(std::chrono::seconds(25));
  EXPECT_EQ(failure.Log("x"), L::kError);  // but again every 30 s
  failure.Clear();
  EXPECT_EQ(failure.Log("x"), L::kWarning);  // a new outage starts quiet again
}

}  // namespace
}  // namespace marmot
