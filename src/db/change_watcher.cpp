#include "db/change_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

namespace marmot {

Result<std::unique_ptr<ChangeWatcher>> ChangeWatcher::Open(const std::string& db_path,
                                                           std::chrono::milliseconds polling_interval) {
  std::unique_ptr<ChangeWatcher> w(new ChangeWatcher());
  std::filesystem::path path = std::filesystem::absolute(db_path);
  w->db_name_ = path.filename().string();
  w->wal_name_ = w->db_name_ + "-wal";
  w->polling_interval_ = polling_interval;
  w->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->stop_fd_ < 0) return Status::Error(std::string("eventfd: ") + std::strerror(errno));
  w->inotify_fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (w->inotify_fd_ < 0) return Status::Error(std::string("inotify_init1: ") + std::strerror(errno));
  std::string dir = path.parent_path().string();
  if (inotify_add_watch(w->inotify_fd_, dir.c_str(), IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO) <
      0) {
    return Status::Error("watching directory " + dir + " for database changes: " + std::strerror(errno));
  }
  return w;
}

ChangeWatcher::~ChangeWatcher() {
  if (inotify_fd_ >= 0) close(inotify_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void ChangeWatcher::Stop() {
  uint64_t one = 1;
  ssize_t n = write(stop_fd_, &one, sizeof(one));
  (void)n;
}

ChangeWatcher::Wake ChangeWatcher::Wait(std::chrono::milliseconds timeout) {
  if (polling_interval_.count() > 0 && polling_interval_ < timeout) timeout = polling_interval_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) left = std::chrono::milliseconds(0);
    pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    int rc = poll(fds, 2, static_cast<int>(left.count()));
    if (fds[0].revents & POLLIN) return Wake::kStop;
    if (rc <= 0 || !(fds[1].revents & POLLIN)) return Wake::kTick;  // timeout (or EINTR)
    // Drain every queued event. Events for other files of the same directory are noise.
    bool ours = false;
    alignas(inotify_event) char buf[8192];
    while (true) {
      ssize_t n = read(inotify_fd_, buf, sizeof(buf));
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
        if (ev->len > 0) {
          std::string_view name(ev->name);
          if (name == db_name_ || name == wal_name_) ours = true;
        }
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
    if (ours) return Wake::kChange;
  }
}

}  // namespace marmot
