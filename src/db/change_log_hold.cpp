#include "db/change_log_hold.h"

#include <algorithm>

namespace marmot {

void ChangeLogHold::SetConfirmed(uint64_t seq, const std::map<std::string, uint64_t>& acked) {
  confirmed_.store(seq);
  if (!holding_.load()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (holds_.empty() || confirmations_.size() >= kMaxConfirmations) return;
  confirmations_.push_back({seq, acked});
}

uint64_t ChangeLogHold::Hold() {
  std::lock_guard<std::mutex> lock(mu_);
  holding_.store(true);  // before reading confirmed_: a later confirmation is recorded
  uint64_t held = confirmed_.load();
  ++holds_[held];
  return held;
}

void ChangeLogHold::Release(uint64_t held) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = holds_.find(held);
  if (it != holds_.end() && --it->second == 0) holds_.erase(it);
  if (holds_.empty()) {
    holding_.store(false);
    confirmations_.clear();
  }
}

uint64_t ChangeLogHold::LastBefore(uint64_t held, const std::map<std::string, uint64_t>& barriers) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t line = held;
  // Confirmations come in order; the first one with a message at or after a barrier ends the scan
  // (the ones after it may cover entries published before it was acknowledged).
  for (const Confirmation& c : confirmations_) {
    bool before = !c.acked.empty();
    for (const auto& [stream, at] : c.acked) {
      auto barrier = barriers.find(stream);
      if (barrier == barriers.end() || at >= barrier->second) before = false;
    }
    if (!before) break;
    line = std::max(line, c.seq);
  }
  return line;
}

uint64_t ChangeLogHold::DeletableUpTo(uint64_t confirmed) {
  std::lock_guard<std::mutex> lock(mu_);
  return holds_.empty() ? confirmed : std::min(confirmed, holds_.begin()->first);
}

}  // namespace marmot
