#include "verify/verify_barriers.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace marmot {

using SteadyClock = std::chrono::steady_clock;

void VerifyBarriers::DropExpired() {
  auto now = SteadyClock::now();
  for (auto it = sessions_.begin(); it != sessions_.end();)
    it = it->second.expires <= now ? sessions_.erase(it) : std::next(it);
}

void VerifyBarriers::Expect(const std::string& session, std::chrono::milliseconds hold) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return;
  DropExpired();
  Session& s = sessions_[session];
  s.expected_at = SteadyClock::now();
  s.expires = s.expected_at + hold;
}

void VerifyBarriers::Reached(const std::string& session, const std::string& stream, uint64_t seq,
                             const std::atomic<bool>& stop) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end() || cancelled_) {
    spdlog::debug("stream {} message {}: the barrier of verify session {}, not expected here; passed", stream,
                  seq, session);
    return;
  }
  it->second.reached[stream] = seq;
  cv_.notify_all();
  spdlog::debug("stream {}: at the barrier of verify session {} (message {}); waiting for the snapshot",
                stream, session, seq);
  while (true) {
    it = sessions_.find(session);
    if (it == sessions_.end()) return;  // released: the snapshot is taken
    const Session& s = it->second;
    auto deadline = s.claimed ? s.expires : std::min(s.expires, s.expected_at + kClaimWait);
    if (stop.load() || cancelled_ || SteadyClock::now() >= deadline) break;
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
  Session& s = it->second;
  s.reached.erase(stream);
  s.broken = "the consumer of stream " + stream + " went on before the snapshot was taken (" +
             (stop.load() || cancelled_ ? std::string("the node is stopping")
              : s.claimed               ? std::string("the session's hold passed")
                                        : std::string("no digest request came")) +
             ")";
  cv_.notify_all();
  spdlog::warn("verify session {}: {}", session, s.broken);
}

Result<std::map<std::string, uint64_t>> VerifyBarriers::WaitAll(const std::string& session,
                                                                const std::vector<std::string>& streams,
                                                                std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  auto deadline = SteadyClock::now() + timeout;
  auto it = sessions_.find(session);
  if (it != sessions_.end()) {
    it->second.claimed = true;
    deadline = std::min(deadline, it->second.expires);
  }
  while (true) {
    if (cancelled_) return Status::Unavailable("the node is stopping");
    it = sessions_.find(session);
    if (it == sessions_.end())
      return Status::NotFound("verify session " + session +
                              " is not expected here (it ended, or its hold passed)");
    if (!it->second.broken.empty()) return Status::Unavailable(it->second.broken);
    std::string missing;
    for (const std::string& s : streams) {
      if (!it->second.reached.count(s)) missing += (missing.empty() ? "" : ", ") + s;
    }
    if (missing.empty()) return it->second.reached;
    if (SteadyClock::now() >= deadline) {
      return Status::Unavailable(
          "did not reach the barrier of verify session " + session + " in stream(s) " + missing + " within " +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) +
          " s (applying far behind, or not applying that stream)");
    }
    cv_.wait_until(lock, std::min(deadline, SteadyClock::now() + std::chrono::milliseconds(100)));
  }
}

void VerifyBarriers::Release(const std::string& session) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(session);
  cv_.notify_all();
}

bool VerifyBarriers::Claimed(const std::string& session) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  return it != sessions_.end() && it->second.claimed;
}

void VerifyBarriers::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  cv_.notify_all();
}

}  // namespace marmot
