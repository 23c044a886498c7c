#include "util/local_file.h"

#include <cerrno>
#include <cstring>

namespace marmot {

Result<FilePtr> OpenLocalFile(const std::string& path, const std::string& what) {
  FilePtr file(std::fopen(path.c_str(), "rb"));
  if (!file) return Status::IoError(what + ": cannot open local file " + path + ": " + std::strerror(errno));
  return file;
}

Result<FilePtr> CreateLocalFile(const std::string& path, const std::string& what) {
  FilePtr file(std::fopen(path.c_str(), "wb"));
  if (!file)
    return Status::IoError(what + ": cannot create local file " + path + ": " + std::strerror(errno));
  return file;
}

Status CloseLocalFile(FilePtr file, const std::string& path, const std::string& what) {
  errno = 0;
  bool failed = std::fflush(file.get()) != 0 || std::ferror(file.get()) != 0;
  int error = errno != 0 ? errno : EIO;  // an earlier write failed: its errno is gone
  if (std::fclose(file.release()) != 0 && !failed) {
    failed = true;
    error = errno;
  }
  if (failed)
    return Status::IoError(what + ": writing local file " + path +
                           " failed (disk full?): " + std::strerror(error));
  return Status();
}

}  // namespace marmot
