#include "node/database_watch.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace marmot {

Result<DatabaseWatch> DatabaseWatch::Open(const std::string& db_path) {
  struct stat st {};
  if (::stat(db_path.c_str(), &st) != 0) {
    return Status::IoError("database " + db_path + ": " + std::strerror(errno));
  }
  return DatabaseWatch(db_path, st.st_dev, st.st_ino);
}

std::optional<std::string> DatabaseWatch::Changed() const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    if (errno == ENOENT) return "the database file " + path_ + " was deleted";
    return std::nullopt;  // cannot tell (a permission change, for instance): not a replacement
  }
  if (st.st_dev != dev_ || st.st_ino != ino_) {
    return "the database file " + path_ + " was replaced by another file";
  }
  return std::nullopt;
}

}  // namespace marmot
