// UniqueFd: sole owner of one POSIX file descriptor; closes it when destroyed.
//
// Move-only, so a descriptor is closed exactly once whichever way the owning scope is left (an
// early error return, a failed fork). -1 means "owns nothing". close() errors are ignored here:
// a caller that must know whether buffered writes reached the file calls Close() instead.
//
// REQUIRES: external synchronization (like the int it wraps).
#pragma once

#include <unistd.h>

#include <utility>

namespace marmot {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

  // Gives up ownership without closing; returns the descriptor (or -1).
  int Release() { return std::exchange(fd_, -1); }

  // Closes the owned descriptor (if any) and takes ownership of `fd`.
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

  // Closes the owned descriptor and returns close()'s result (0, or -1 with errno set); owns
  // nothing afterwards, even on error (POSIX leaves the descriptor state unspecified, and on
  // Linux it is always released). Returns 0 when nothing is owned.
  int Close() {
    if (fd_ < 0) return 0;
    return ::close(std::exchange(fd_, -1));
  }

 private:
  int fd_ = -1;
};

}  // namespace marmot
