#include "snapshot/progress_log.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

namespace marmot {

namespace {
constexpr std::chrono::milliseconds kBarEvery{200};
constexpr int kBarWidth = 30;
}  // namespace

LoggedProgress::LoggedProgress(std::string what, uint64_t total, std::chrono::milliseconds log_every)
    : what_(std::move(what)),
      total_(total),
      log_every_(log_every),
      start_(std::chrono::steady_clock::now()),
      next_log_(start_ + log_every),
      next_bar_(start_),
      tty_(::isatty(STDERR_FILENO) == 1) {}

std::string LoggedProgress::Bytes(double bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

std::string LoggedProgress::Line(double seconds) const {
  double rate = seconds > 0 ? static_cast<double>(done_) / seconds : 0;
  std::string line = Bytes(static_cast<double>(done_));
  if (total_ > 0) {
    line += fmt::format(" of {} ({:.0f}%)", Bytes(static_cast<double>(total_)),
                        100.0 * static_cast<double>(done_) / static_cast<double>(total_));
  }
  line += fmt::format(", {}/s", Bytes(rate));
  if (total_ > done_ && rate > 0) {
    line += fmt::format(", about {:.0f} s left", static_cast<double>(total_ - done_) / rate);
  }
  return line;
}

void LoggedProgress::Advance(uint64_t bytes) {
  done_ += bytes;
  auto now = std::chrono::steady_clock::now();
  double seconds = std::chrono::duration<double>(now - start_).count();
  if (tty_ && now >= next_bar_) {
    next_bar_ = now + kBarEvery;
    int filled = total_ > 0
                     ? static_cast<int>(kBarWidth * std::min<double>(1.0, static_cast<double>(done_) /
                                                                              static_cast<double>(total_)))
                     : 0;
    std::fprintf(stderr, "\r[%s%s] %s\033[K", std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(kBarWidth - filled), ' ').c_str(), Line(seconds).c_str());
    std::fflush(stderr);
  }
  if (now >= next_log_) {
    next_log_ = now + log_every_;
    if (tty_) std::fputs("\r\033[K", stderr);
    spdlog::info("{}: {}", what_, Line(seconds));
  }
}

void LoggedProgress::Finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_) std::fputs("\r\033[K", stderr);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  spdlog::info("{}: done, {} in {:.1f} s ({}/s)", what_, Bytes(static_cast<double>(done_)), seconds,
               Bytes(seconds > 0 ? static_cast<double>(done_) / seconds : 0));
}

}  // namespace marmot
