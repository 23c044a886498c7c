// LoggedProgress: the log lines of a long transfer say how far it is, how fast, and how long is left.
#include "snapshot/progress_log.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <thread>

#include "test_util.h"

namespace marmot {
namespace {

using test::CapturedLog;

TEST(LoggedProgressTest, LinesSayDoneTotalRateAndTimeLeft) {
  std::ostringstream out;
  {
    CapturedLog capture(&out);
    LoggedProgress progress("uploading x", 4u << 20, std::chrono::milliseconds(0));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    progress.Advance(1u << 20);
    progress.Advance(1u << 20);
    progress.Finish();
    progress.Finish();  // once
  }
  std::string log = out.str();
  EXPECT_NE(log.find("uploading x: 1.0 MiB of 4.0 MiB (25%), "), std::string::npos) << log;
  EXPECT_NE(log.find("2.0 MiB of 4.0 MiB (50%)"), std::string::npos) << log;
  EXPECT_NE(log.find("s left"), std::string::npos) << log;
  EXPECT_NE(log.find("uploading x: done, 2.0 MiB in "), std::string::npos) << log;
  EXPECT_EQ(log.find("done", log.find("done") + 1), std::string::npos) << "Finish logged twice: " << log;
}

TEST(LoggedProgressTest, BytesAreReadable) {
  EXPECT_EQ(LoggedProgress::Bytes(900), "900 B");
  EXPECT_EQ(LoggedProgress::Bytes(1536), "1.5 KiB");
  EXPECT_EQ(LoggedProgress::Bytes(3.0 * (1u << 30)), "3.0 GiB");
}

}  // namespace
}  // namespace marmot
