// VerifyBarriers: where a node's shard consumers stop for `marmot verify` under write load.
//
// Verify compares the nodes at one point of every shard stream: it tells the nodes to expect a
// session (Expect), then publishes a barrier message (header Marmot-Verify-Barrier: <session>)
// into each shard stream, then asks for the digests. A consumer that applied the barrier of an
// expected session calls Reached and waits there; the responder, asked for the digests, waits
// until every stream's consumer has (WaitAll), starts the read transaction that the digests come
// from, and lets them go on (Release). So each node's digests reflect exactly the messages before
// the barriers, whatever the writers do meanwhile.
//
// Nothing waits long for a verify that went away: a consumer waits at most kClaimWait for the
// digest request to arrive (WaitAll), and at most the session's hold in all; a barrier of a
// session this node does not expect (an old one, read again after a restart) passes at once. A
// consumer that goes on before the snapshot breaks the session: WaitAll then fails, so digests
// are never taken past a barrier. Cancel (the node stops) ends every wait.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "util/status.h"

namespace marmot {

class VerifyBarriers {
 public:
  // How long a consumer at a barrier waits for the digest request to arrive.
  static constexpr std::chrono::seconds kClaimWait{10};

  // From now on, consumers stop at the barriers of `session`, each for at most `hold`.
  void Expect(const std::string& session, std::chrono::milliseconds hold);

  // A consumer applied the barrier of `session` at `seq` of `stream`: waits until the session is
  // released or ended, its hold has passed (or kClaimWait, while no WaitAll came), or `stop` is
  // set. Returns at once for a session not expected here.
  void Reached(const std::string& session, const std::string& stream, uint64_t seq,
               const std::atomic<bool>& stop);

  // Waits until the consumer of every stream in `streams` is at the session's barrier, up to
  // `timeout`; returns where (stream -> sequence), or an error naming the streams not reached, or
  // saying which consumer went on.
  Result<std::map<std::string, uint64_t>> WaitAll(const std::string& session,
                                                  const std::vector<std::string>& streams,
                                                  std::chrono::milliseconds timeout);

  // The consumers waiting at the session's barriers go on; the session is forgotten.
  void Release(const std::string& session);

  // The node stops: every wait ends now, and nothing waits from now on.
  void Cancel();

  // True while a WaitAll for `session` has begun and the session is not released (tests use it
  // to know that a digest has started).
  bool Claimed(const std::string& session);

 private:
  struct Session {
    std::chrono::steady_clock::time_point expected_at;
    std::chrono::steady_clock::time_point expires;
    bool claimed = false;                     // a WaitAll came
    std::string broken;                       // why a consumer went on before the snapshot
    std::map<std::string, uint64_t> reached;  // stream -> barrier sequence
  };
  // Forgets sessions whose hold has passed. REQUIRES: mu_ held.
  void DropExpired();

  std::mutex mu_;
  std::condition_variable cv_;
  bool cancelled_ = false;
  std::map<std::string, Session> sessions_;
};

}  // namespace marmot
