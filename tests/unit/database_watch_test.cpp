// DatabaseWatch (node/database_watch.h): the same file is no change; a file moved over it or its
// deletion is, and the reason says which.
#include "node/database_watch.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace marmot {
namespace {

TEST(DatabaseWatchTest, NoticesReplacementAndDeletion) {
  test::TempDir dir;
  const std::string path = dir.File("app.db");
  std::ofstream(path) << "first";
  Result<DatabaseWatch> watch = DatabaseWatch::Open(path);
  ASSERT_TRUE(watch.ok()) << watch.status().message();
  EXPECT_FALSE(watch->Changed().has_value());
  std::ofstream(path, std::ios::app) << " written in place";  // same file: not a change
  EXPECT_FALSE(watch->Changed().has_value());

  std::ofstream(dir.File("backup.db")) << "restored";
  std::filesystem::rename(dir.File("backup.db"), path);
  ASSERT_TRUE(watch->Changed().has_value());
  EXPECT_NE(watch->Changed()->find("was replaced by another file"), std::string::npos) << *watch->Changed();

  std::filesystem::remove(path);
  ASSERT_TRUE(watch->Changed().has_value());
  EXPECT_NE(watch->Changed()->find("was deleted"), std::string::npos) << *watch->Changed();

  EXPECT_FALSE(DatabaseWatch::Open(dir.File("missing.db")).ok());
}

}  // namespace
}  // namespace marmot
