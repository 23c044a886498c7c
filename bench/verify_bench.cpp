#include "verify_bench.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "bench_util.h"
#include "db/schema.h"
#include "db/sqlite.h"
#include "snapshot_bench.h"
#include "verify/table_digest.h"

namespace marmot::bench {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One full read: every column of every row, each value read in its own storage class.
int64_t ReadAll(Database& db) {
  Result<Statement> stmt = db.Prepare("SELECT * FROM items");
  Check(stmt.status(), "preparing the full read");
  int64_t rows = 0;
  size_t bytes = 0;
  Value value;
  while (true) {
    Result<bool> row = stmt->Step();
    Check(row.status(), "reading items");
    if (!*row) break;
    for (int c = 0; c < stmt->ColumnCount(); ++c) {
      stmt->ReadColumn(c, &value);  // each value in its own type, as the digest reads it
      bytes += value.bytes().size() + 8;
    }
    ++rows;
  }
  if (bytes == 0) std::fprintf(stderr, "verify bench: read no bytes\n");
  return rows;
}

}  // namespace

void VerifyDigest(const VerifyBenchOptions& o, std::vector<Figure>* out) {
  const char* kName = "verify";
  std::string dir = (std::filesystem::temp_directory_path() / "marmot-bench-verify").string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/node.db";
  const int64_t rows = GenerateDatabase(path, o.database_mib);
  std::vector<double> ratios, mib_per_s;
  for (int run = 0; run < o.runs; ++run) {
    Result<Database> db = Database::Open(path);
    Check(db.status(), "opening the database");
    Check(db->Exec("BEGIN"), "begin");
    auto start = Clock::now();
    int64_t read = ReadAll(*db);
    double read_s = SecondsSince(start);
    Result<std::optional<TableSchema>> schema = ReadTableSchema(*db, "items");
    Check(schema.status(), "reading the schema");
    start = Clock::now();
    Result<TableDigest> digest = DigestTable(*db, **schema);
    double digest_s = SecondsSince(start);
    Check(digest.status(), "digesting items");
    Check(db->Exec("COMMIT"), "commit");
    if (read != rows || static_cast<int64_t>(digest->rows) != rows) {
      std::fprintf(stderr, "verify bench: %lld rows generated, %lld read, %llu digested\n",
                   static_cast<long long>(rows), static_cast<long long>(read),
                   static_cast<unsigned long long>(digest->rows));
      std::exit(1);
    }
    ratios.push_back(digest_s / read_s);
    mib_per_s.push_back(static_cast<double>(o.database_mib) / digest_s);
  }
  std::filesystem::remove_all(dir);
  out->push_back({kName, "database_mib", static_cast<double>(o.database_mib), "MiB"});
  out->push_back({kName, "digest_vs_full_read", Median(ratios), "x"});
  out->push_back({kName, "digest_throughput", Median(mib_per_s), "MiB/s"});
}

}  // namespace marmot::bench
