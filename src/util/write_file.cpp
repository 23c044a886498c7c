#include "util/write_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/unique_fd.h"

namespace marmot {

Status WriteFileWithMode(const std::string& path, std::string_view contents, mode_t mode) {
  auto fail = [&](const char* step) {
    return Status::IoError(std::string(step) + " " + path + ": " + std::strerror(errno));
  };
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, mode));
  if (!fd.valid()) return fail("opening");
  // open() applies `mode` only when it creates the file, and then minus the umask.
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail("checking the mode of");
  if ((st.st_mode & 07777) != mode && ::fchmod(fd.get(), mode) != 0) return fail("setting the mode of");
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd.get(), contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("writing");
    done += static_cast<size_t>(n);
  }
  if (fd.Close() != 0) return fail("closing");
  return Status();
}

}  // namespace marmot
