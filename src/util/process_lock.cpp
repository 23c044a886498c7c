#include "util/process_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace marmot {

std::string DatabaseLockPath(const std::string& db_path) { return db_path + "-marmot.lock"; }

Result<ProcessLock> ProcessLock::Acquire(const std::string& lock_path, const std::string& what) {
  UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) {
    return Status::IoError("creating lock file " + lock_path + " for " + what + ": " + std::strerror(errno) +
                           " (marmot needs to write in the database's directory)");
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      return Status::IoError("locking " + lock_path + " for " + what + ": " + std::strerror(errno));
    }
    char buf[32] = {0};
    ssize_t n = ::pread(fd.get(), buf, sizeof(buf) - 1, 0);
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return Status::Busy("another marmot process" + (pid.empty() ? "" : " (pid " + pid + ")") +
                        " is running on " + what + " (lock " + lock_path +
                        "); stop it first, or give this one its own database");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return Status::IoError("writing lock file " + lock_path + ": " + std::strerror(errno));
  }
  return ProcessLock(std::move(fd), lock_path);
}

}  // namespace marmot
