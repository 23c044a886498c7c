// ProcessLock: one marmot process per database (and per embedded NATS store).
//
// Two marmot processes on one database would each publish its changes and each apply the streams;
// with the embedded server they would also share one JetStream store directory and corrupt it. The
// lock is an exclusive flock(2) on a file next to the thing it protects (`<database>-marmot.lock`),
// holding the owner's pid for the message the second process prints. The kernel releases it when
// the process ends in any way, SIGKILL included, so a stale lock file never blocks a restart.
#pragma once

#include <string>

#include "util/status.h"
#include "util/unique_fd.h"

namespace marmot {

class ProcessLock {
 public:
  // Takes the lock on `lock_path`, or fails with kBusy naming `what` and the pid that holds it.
  static Result<ProcessLock> Acquire(const std::string& lock_path, const std::string& what);

  ProcessLock(ProcessLock&&) = default;
  ProcessLock& operator=(ProcessLock&&) = default;

  const std::string& path() const { return path_; }

 private:
  ProcessLock(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;
};

// The lock file of a database: "<db_path>-marmot.lock".
std::string DatabaseLockPath(const std::string& db_path);

}  // namespace marmot
