#include "db/change_watcher.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#include "test_util.h"

namespace marmot {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

TEST(ChangeWatcherTest, WakesWhenAnotherProcessWrites) {
  test::TempDir dir;
  std::string path = dir.File("w.db");
  Database db = test::OpenDb(path);
  test::Exec(db, "CREATE TABLE t(x)");
  Result<std::unique_ptr<ChangeWatcher>> watcher = ChangeWatcher::Open(path, milliseconds(0));
  ASSERT_TRUE(watcher.ok()) << watcher.status().message();
  // Unrelated files in the same directory do not wake it.
  std::thread noise([&] {
    std::this_thread::sleep_for(milliseconds(100));
    std::ignore = std::system(("touch " + dir.File("other.txt")).c_str());
  });
  auto start = Clock::now();
  EXPECT_EQ((*watcher)->Wait(milliseconds(600)), ChangeWatcher::Wake::kTick);
  EXPECT_GE(Clock::now() - start, milliseconds(550));
  noise.join();

  std::thread writer([&] {
    std::this_thread::sleep_for(milliseconds(200));
    std::string cmd = "sqlite3 " + path + " 'INSERT INTO t VALUES (1)'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  });
  start = Clock::now();
  EXPECT_EQ((*watcher)->Wait(milliseconds(10000)), ChangeWatcher::Wake::kChange);
  EXPECT_LT(Clock::now() - start, milliseconds(5000)) << "the write by another process was not noticed";
  writer.join();
}

TEST(ChangeWatcherTest, PollingIntervalBoundsTheWaitAndStopEndsIt) {
  test::TempDir dir;
  std::string path = dir.File("w.db");
  Database db = test::OpenDb(path);
  Result<std::unique_ptr<ChangeWatcher>> watcher = ChangeWatcher::Open(path, milliseconds(50));
  ASSERT_TRUE(watcher.ok());
  auto start = Clock::now();
  EXPECT_EQ((*watcher)->Wait(milliseconds(10000)), ChangeWatcher::Wake::kTick);
  EXPECT_LT(Clock::now() - start, milliseconds(2000));

  // Without polling, only Stop() ends a long wait, and every later wait returns at once.
  Result<std::unique_ptr<ChangeWatcher>> quiet = ChangeWatcher::Open(path, milliseconds(0));
  ASSERT_TRUE(quiet.ok());
  std::thread stopper([&] {
    std::this_thread::sleep_for(milliseconds(100));
    (*quiet)->Stop();
  });
  start = Clock::now();
  EXPECT_EQ((*quiet)->Wait(milliseconds(10000)), ChangeWatcher::Wake::kStop);
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
  stopper.join();
  EXPECT_EQ((*quiet)->Wait(milliseconds(10000)), ChangeWatcher::Wake::kStop);
}

}  // namespace
}  // namespace marmot
