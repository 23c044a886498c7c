#include "telemetry/retried_failure.h"

#include <spdlog/spdlog.h>

namespace marmot {

RetriedFailure::Logged RetriedFailure::Log(const std::string& message) {
  Clock::TimePoint now = clock_->Now();
  if (!since_) since_ = now;
  auto failing = now - *since_;
  if (failing < loud_after_) {
    spdlog::warn("{}", message);
    return Logged::kWarning;
  }
  if (last_error_ && now - *last_error_ < loud_after_) return Logged::kNothing;
  last_error_ = now;
  spdlog::error("{} (failing for {} s)", message,
                std::chrono::duration_cast<std::chrono::seconds>(failing).count());
  return Logged::kError;
}

}  // namespace marmot
