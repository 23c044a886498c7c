// LoggedProgress: shows how a long snapshot step goes (upload, download, restore, save): every few
// seconds a log line with the bytes done, the rate and the time left, and when standard error is a
// terminal a progress bar redrawn in place several times a second.
//
//   LoggedProgress progress("uploading snapshot-... to s3 store http://...", object_bytes);
//   store->Put(name, path, &progress);
//   progress.Finish();  // the closing line: total bytes, time, average rate
//
// Thread safety: Advance from one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "snapshot/snapshot_store.h"

namespace marmot {

class LoggedProgress : public ProgressSink {
 public:
  // `total` 0 means unknown (no percentage or time left).
  LoggedProgress(std::string what, uint64_t total,
                 std::chrono::milliseconds log_every = std::chrono::seconds(5));
  void Advance(uint64_t bytes) override;
  // Logs the closing line (once).
  void Finish();
  uint64_t done() const { return done_; }

  // "1.5 GiB", "12.0 MiB", "900 B".
  static std::string Bytes(double bytes);

 private:
  std::string Line(double seconds) const;

  std::string what_;
  uint64_t total_;
  uint64_t done_ = 0;
  std::chrono::milliseconds log_every_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point next_log_;
  std::chrono::steady_clock::time_point next_bar_;
  bool tty_;
  bool finished_ = false;
};

}  // namespace marmot
