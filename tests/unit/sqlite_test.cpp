// Database options that change how marmot's connections behave next to the application's.
#include "db/sqlite.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
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
  EXPECT_TRUE(s.Is(StatusCode::kBusy)) << StatusCodeName(s.code());
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::seconds(3));
}

TEST(StatementTest, AValueSqliteRefusesToBindFailsTheStatementInsteadOfBecomingNull) {
  test::TempDir dir;
  Database db = test::OpenDb(dir.File("db"));
  test::Exec(db, "CREATE TABLE t(x)");
  sqlite3_limit(db.get(), SQLITE_LIMIT_LENGTH, 1000);
  Result<Statement> insert = db.Prepare("INSERT INTO t VALUES (?1)");
  ASSERT_TRUE(insert.ok());
  insert->BindText(1, std::string(5000, 'x'));
  Status s = insert->Run();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("binding parameter 1"), std::string::npos) << s.message();
  EXPECT_TRUE(s.Is(StatusCode::kInvalidArgument)) << StatusCodeName(s.code());
  EXPECT_EQ(test::QueryInt(db, "SELECT count(*) FROM t"), 0) << "a NULL was written";
  // After Reset the statement works again.
  insert->Reset();
  insert->BindText(1, "short");
  EXPECT_TRUE(insert->Run().ok());
  // An index out of range is refused the same way.
  insert->Reset();
  insert->BindInt(2, 1);
  EXPECT_FALSE(insert->Run().ok());
}

TEST(StatusCodeTest, SqliteAndNatsCodesAreMapped) {
  EXPECT_TRUE(SqliteError(SQLITE_BUSY, "x").Is(StatusCode::kBusy));
  EXPECT_TRUE(SqliteError(SQLITE_IOERR_WRITE, "x").Is(StatusCode::kIoError));
  EXPECT_TRUE(SqliteError(SQLITE_FULL, "x").Is(StatusCode::kIoError));
  EXPECT_TRUE(SqliteError(SQLITE_NOTADB, "x").Is(StatusCode::kCorruption));
  EXPECT_TRUE(SqliteError(SQLITE_CONSTRAINT_UNIQUE, "x").Is(StatusCode::kInvalidArgument));
  EXPECT_TRUE(SqliteError(SQLITE_NOMEM, "x").Is(StatusCode::kUnknown));
  Status s = SqliteError(SQLITE_BUSY, "locked").WithContext("applying");
  EXPECT_TRUE(s.Is(StatusCode::kBusy)) << "WithContext must keep the code";
  EXPECT_EQ(s.message(), "applying: locked");
  test::TempDir dir;
  std::ofstream(dir.File("garbage")) << std::string(4096, 'g');
  Result<Database> garbage = Database::Open(dir.File("garbage"));
  ASSERT_FALSE(garbage.ok());
  EXPECT_TRUE(garbage.status().Is(StatusCode::kCorruption)) << garbage.status().message();
}

}  // namespace
}  // namespace marmot
