// ChangeWatcher: wakes the change reader when the database may have new changes.
//
// Uses inotify on the database's directory, filtered to the database file and its -wal file
// (watching the directory survives the -wal file being deleted and recreated), plus an optional
// polling interval (the `polling_interval` key) for file systems where inotify does not see other
// writers (network file systems, containers sharing a volume). Wait() returns after an event, a
// poll tick, or the timeout, whichever comes first; a burst of events is drained at once.
// Stop() may be called from any thread and makes every Wait() return false from then on.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "util/status.h"

namespace marmot {

class ChangeWatcher {
 public:
  // `polling_interval` of zero means: inotify only.
  static Result<std::unique_ptr<ChangeWatcher>> Open(const std::string& db_path,
                                                     std::chrono::milliseconds polling_interval);
  ~ChangeWatcher();
  ChangeWatcher(const ChangeWatcher&) = delete;
  ChangeWatcher& operator=(const ChangeWatcher&) = delete;

  enum class Wake { kChange, kTick, kStop };

  // Blocks until a change is seen (kChange), the polling interval or `timeout` passes (kTick), or
  // Stop() was called (kStop, also for every later call).
  //
  // A kChange can come a moment before the commit is visible: SQLite writes the WAL (which
  // inotify sees) before it publishes the commit in the -shm index (a memory map, which inotify
  // does not see). A reader that finds nothing after kChange should look again shortly.
  Wake Wait(std::chrono::milliseconds timeout);
  void Stop();

 private:
  ChangeWatcher() = default;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;  // eventfd
  std::string db_name_;
  std::string wal_name_;
  std::chrono::milliseconds polling_interval_{0};
};

}  // namespace marmot
