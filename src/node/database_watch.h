// DatabaseWatch: notices when the database file marmot works on is deleted or replaced.
//
// marmot's connections keep the file they opened. If the file at db_path is deleted, or replaced
// by another one (a restored backup moved into place, a copy from another node), marmot would go on
// capturing from and applying into a file the application no longer uses, and the application's
// new writes would never be captured: a silent divergence. The watch compares the file at db_path
// with the one opened (device and inode) every time it is asked; Node asks every 2 s and, on a
// change, stops (publishing what the old file captured) and exits with code 1, so that it is
// started again on the file that is there now (docs/CLUSTER.md, "Stopping").
//
// Thread safety: immutable after Open.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "util/status.h"

namespace marmot {

class DatabaseWatch {
 public:
  // Records the identity of the file at `db_path` now.
  static Result<DatabaseWatch> Open(const std::string& db_path);

  // Why the file at db_path is no longer the one opened (deleted, replaced), or nullopt.
  std::optional<std::string> Changed() const;

 private:
  DatabaseWatch(std::string path, dev_t dev, ino_t ino) : path_(std::move(path)), dev_(dev), ino_(ino) {}
  std::string path_;
  dev_t dev_;
  ino_t ino_;
};

}  // namespace marmot
