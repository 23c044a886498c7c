// Clock: the time source of marmot's loops (backoff sleeps, timers), so unit tests can run a loop
// through minutes of retries in microseconds (LevelDB's Env in spirit).
//
// Thread-safe: implementations may be shared between threads.
#pragma once

#include <chrono>
#include <thread>

namespace marmot {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual TimePoint Now() = 0;
  virtual void SleepFor(std::chrono::microseconds duration) = 0;
};

// The real clock: steady_clock and std::this_thread::sleep_for.
class SystemClock final : public Clock {
 public:
  TimePoint Now() override { return std::chrono::steady_clock::now(); }
  void SleepFor(std::chrono::microseconds duration) override { std::this_thread::sleep_for(duration); }

  // One process-wide instance.
  static SystemClock* Get() {
    static SystemClock clock;
    return &clock;
  }
};

}  // namespace marmot
