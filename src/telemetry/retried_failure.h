// RetriedFailure: the log lines of an operation that fails and is tried again until it works (a
// publish while NATS is away, a consumer whose subscription broke, a recovery that cannot read
// the stream yet).
//
// A short outage is a warning per attempt. One that lasts becomes an error: after `loud_after`
// of continuous failure the next line is logged at error level, then one error line every
// `loud_after` saying for how long it has failed (the warnings in between are left out), so a
// retry that never ends is never quiet and never floods the log. Clear() after a success.
//
// REQUIRES: external synchronization (one per retry loop).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "util/clock.h"

namespace marmot {

class RetriedFailure {
 public:
  enum class Logged { kWarning, kError, kNothing };

  explicit RetriedFailure(Clock* clock, std::chrono::seconds loud_after = std::chrono::seconds(30))
      : clock_(clock), loud_after_(loud_after) {}

  // Logs `message` (one attempt failed) as described above; says what it logged.
  Logged Log(const std::string& message);
  void Clear() {
    since_.reset();
    last_error_.reset();
  }

 private:
  Clock* clock_;
  std::chrono::seconds loud_after_;
  std::optional<Clock::TimePoint> since_;       // first failure of the current run
  std::optional<Clock::TimePoint> last_error_;  // last error line
};

}  // namespace marmot
