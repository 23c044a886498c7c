// Database options that change how marmot's connections behave next to the application's.
#include "db/sqlite.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "test_util.h"

namespace marmot {
namespace {

using Clock = std::chrono::steady_clock;

Database OpenPolling(const std::string& path, int timeout_ms) {
  Database::Options options;
  options.poll_for_locks = true;
  options.busy_timeout_ms = timeout_ms;
  Result<Database> db = Database::Open(path, options);
  EXPECT_TRUE(db.ok()) << db.status().message();
  return std::move(*db);
}

TEST(PollForLocksTest, TakesTheLockSoonAfterItIsReleased) {
  test::TempDir dir;
  Database app = test::OpenDb(dir.File("db"));
  test::Exec(app, "CREATE TABLE t(x)");
  Database marmot = OpenPolling(dir.File("db"), 5000);
  test::Exec(app, "BEGIN IMMEDIATE");
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(340));
    test::Exec(app, "COMMIT");
  });
  auto start = Clock::now();
  Status s = marmot.Exec("INSERT INTO t VALUES (1)");
  auto waited = Clock::now() - start;
  release.join();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_GE(waited, std::chrono::milliseconds(330));
  // SQLite's own handler sleeps 100 ms at a time by now: its retries come at 328 and 428 ms.
  // Polling takes the lock within about a millisecond of the release.
  EXPECT_LT(waited, std::chrono::milliseconds(400));
}

TEST(PollForLocksTest, GivesUpAfterTheTimeoutWithSqlitesMessage) {
  test::TempDir dir;
  Database app = test::OpenDb(dir.File("db"));
  test::Exec(app, "CREATE TABLE t(x)");
  Database marmot = OpenPolling(dir.File("db"), 300);
  test::Exec(app, "BEGIN IMMEDIATE");
  auto start = Clock::now();
  Status s = marmot.Exec("INSERT INTO t VALUES (1)");
  auto waited = Clock::now() - start;
  test::Exec(app, "ROLLBACK");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("locked"), std::string::npos) << s.message();
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::seconds(3));
}

}  // namespace
}  // namespace marmot
