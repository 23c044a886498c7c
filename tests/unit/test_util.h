// Helpers shared by the unit tests: a temp directory removed on exit, quick SQL helpers that
// fail the test with SQLite's message, and a capture of the log lines.
#pragma once

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "db/sqlite.h"
#include "db/value.h"

namespace marmot::test {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "marmot-test-XXXXXX").string();
    char* made = mkdtemp(tmpl.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Opens (creating) a WAL database.
inline Database OpenDb(const std::string& path) {
  Database::Options options;
  options.create = true;
  Result<Database> db = Database::Open(path, options);
  if (!db.ok()) ADD_FAILURE() << db.status().message();
  EXPECT_TRUE(db->Exec("PRAGMA journal_mode=WAL").ok());
  return std::move(*db);
}

inline void Exec(Database& db, const std::string& sql) {
  Status s = db.Exec(sql);
  ASSERT_TRUE(s.ok()) << s.message();
}

// Renders each row of a query with `render(statement)`; fails the test on an SQLite error.
template <typename Render>
std::vector<std::string> RenderRows(Database& db, const std::string& sql, Render render) {
  std::vector<std::string> rows;
  Result<Statement> stmt = db.Prepare(sql);
  if (!stmt.ok()) {
    ADD_FAILURE() << stmt.status().message();
    return rows;
  }
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) {
      ADD_FAILURE() << row.status().message();
      break;
    }
    if (!*row) break;
    rows.push_back(render(*stmt));
  }
  return rows;
}

// All rows of a query, each row rendered with Value::ToDebugString and typeof(), for comparisons.
inline std::vector<std::string> Rows(Database& db, const std::string& sql) {
  return RenderRows(db, sql, [](const Statement& stmt) {
    std::string line;
    for (int c = 0; c < stmt.ColumnCount(); ++c) {
      Value v = stmt.ColumnValue(c);
      line += (c ? "|" : "") + std::to_string(static_cast<int>(v.type())) + ":" + v.ToDebugString();
    }
    return line;
  });
}

// The first column of every row of a query, as text.
inline std::vector<std::string> Texts(Database& db, const std::string& sql) {
  return RenderRows(db, sql, [](const Statement& stmt) { return stmt.ColumnText(0); });
}

inline int64_t QueryInt(Database& db, const std::string& sql) {
  Result<int64_t> v = db.QueryInt(sql);
  if (!v.ok()) ADD_FAILURE() << v.status().message();
  return v.ok() ? *v : -1;
}

// Sends the default logger's lines to `out` while alive, as "<level> <message>" with `levels`, else
// just the message.
class CapturedLog {
 public:
  explicit CapturedLog(std::ostringstream* out, bool levels = false) : previous_(spdlog::default_logger()) {
    auto logger =
        std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(*out));
    logger->set_pattern(levels ? "%l %v" : "%v");
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;

 private:
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace marmot::test
