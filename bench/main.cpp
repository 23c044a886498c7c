// marmot_bench: measures marmot against a baseline run in the same invocation.
//
//   marmot_bench [--quick] [--runs N] [--rows N] [--seconds N] [--snapshot-mb N] [--json FILE]
//                [scenario...]
//   (--rows: rows of the replication scenario; --seconds: how long the mixed-load scenario writes;
//   --snapshot-mb: size of the snapshot scenario's database)
//
// Scenarios (default: all):
//   capture_bulk                200k rows, one prepared INSERT per row, in one transaction
//   capture_bulk_one_statement  200k rows, one INSERT ... SELECT
//   capture_autocommit          2k rows, one autocommit INSERT each (SQLite's default durability)
//   replication                 1M rows (10k per transaction) written on node 1 of a 3-node
//                               cluster until visible on nodes 2 and 3, vs plain SQLite; the
//                               RSS of node 1's marmot during it and CPU per 1,000 rows
//   catch_up                    node 3 stopped during 500k rows, then started: rows/s until it
//                               has them, vs live replication to node 2 in the same run
//   latency                     2,000 single-row writes on node 1, 10 ms apart, until visible on
//                               node 2
//   mixed_load                  each node writes 1,000 single-row transactions/s for 60 s
//                               (insert/update/delete/key change); lag while it runs, and the
//                               time until the three databases are identical
//   metrics_cost                the replication scenario with [prometheus] off and on (every
//                               node scraped each second): throughput and CPU per row, on/off
//   snapshot                    a 1 GiB node database (--snapshot-mb; --quick: 20 MiB): snapshot
//                               save vs VACUUM INTO, restore vs a file copy, in process; then
//                               `marmot -save-snapshot` to a NATS object store and a new node's
//                               bootstrap from it (external nats-server), with their peak RSS.
//                               At most 2 runs (1 GiB each)
//   verify                      what `marmot verify` costs a node: the table digest of a 1 GiB
//                               database (--snapshot-mb) vs one full read of the same rows
// The cluster scenarios run the real marmot binary (--marmot PATH; default: ../marmot next to
// this program).
// Every figure is the median of N runs (default 5; --quick: 1 run on smaller inputs, used by CI
// so the program cannot rot). Ratios are captured/plain on the same machine in the same process.
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "bench_util.h"
#include "cluster_bench.h"
#include "db/capture.h"
#include "db/schema.h"
#include "db/sqlite.h"
#include "snapshot_bench.h"
#include "verify_bench.h"

namespace marmot::bench {
namespace {

struct Options {
  std::string marmot_binary;
  bool quick = false;
  int runs = 5;
  std::string json_path;
  int mixed_seconds = 0;  // 0: the scenario's default
  int rows = 0;           // rows of the replication scenario; 0: its default
  int snapshot_mib = 0;   // database size of the snapshot scenario; 0: its default
  std::vector<std::string> scenarios;
};

class Scratch {
 public:
  Scratch() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "marmot-bench-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
  }
  ~Scratch() { std::filesystem::remove_all(dir_); }
  std::string File(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
};

enum class Capture { kNone, kMarmot, kFloor };

// A fresh WAL database with the benchmark table and, depending on `capture`: nothing, marmot's
// capture, or the cheapest trigger SQLite allows (one INSERT of the key into a bare table: the
// floor any trigger-based capture pays).
// With `unique_name`, items.name is also UNIQUE (capture then also notes the rows a REPLACE would
// remove: docs/CAPTURE.md).
Database MakeDb(const std::string& path, Capture capture, bool unique_name) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  Database::Options options;
  options.create = true;
  Result<Database> db = Database::Open(path, options);
  Check(db.status(), "opening database");
  // A UNIQUE constraint, not CREATE UNIQUE INDEX: capture follows only those (docs/CAPTURE.md).
  const std::string schema =
      unique_name ? "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT UNIQUE, qty INTEGER, price REAL);"
                  : kItemsSchema;
  Check(db->Exec("PRAGMA journal_mode=WAL;" + schema), "creating table");
  if (capture == Capture::kFloor) {
    Check(db->Exec("CREATE TABLE floor_log(k); CREATE TRIGGER floor AFTER INSERT ON items BEGIN "
                   "INSERT INTO floor_log VALUES (NEW.id); END;"),
          "creating floor trigger");
  }
  if (capture == Capture::kMarmot) {
    Result<std::vector<TableSchema>> tables = ReadSchema(*db);
    Check(tables.status(), "reading schema");
    Check(InstallCapture(*db, *tables), "installing capture");
  }
  return std::move(*db);
}

double Seconds(const std::function<void()>& fn) {
  auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

enum class InsertForm { kStatementPerRowInOneTransaction, kOneStatement, kAutocommitPerRow };

// Inserts `rows` rows in the given form and returns the seconds it took.
double InsertRows(Database& db, int rows, InsertForm form) {
  if (form == InsertForm::kOneStatement) {
    std::string sql =
        "INSERT INTO items WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < " +
        std::to_string(rows) + ") SELECT i, 'item-' || i, i * 7, i * 0.25 FROM s";
    return Seconds([&] { Check(db.Exec(sql), "insert"); });
  }
  int per_transaction = form == InsertForm::kStatementPerRowInOneTransaction ? rows : 0;
  return Seconds([&] { InsertItems(db, 1, rows, per_transaction); });
}

void CaptureOverhead(const Options& o, const std::string& name, int rows, InsertForm form,
                     std::vector<Figure>* out, bool unique_name = false) {
  Scratch scratch;
  const Capture kSides[] = {Capture::kNone, Capture::kMarmot, Capture::kFloor};
  std::vector<double> seconds[3];
  for (int run = 0; run < o.runs; ++run) {
    // Rotate the order so drift on a shared machine hits every side alike.
    for (int k = 0; k < 3; ++k) {
      int side = (k + run) % 3;
      Database db = MakeDb(scratch.File("side" + std::to_string(side) + ".db"), kSides[side], unique_name);
      seconds[side].push_back(InsertRows(db, rows, form));
    }
  }
  double plain = Median(seconds[0]), marmot = Median(seconds[1]), floor = Median(seconds[2]);
  out->push_back({name, "rows", static_cast<double>(rows), "rows"});
  out->push_back({name, "plain_seconds", plain, "s"});
  out->push_back({name, "captured_seconds", marmot, "s"});
  out->push_back({name, "ratio_captured_to_plain", marmot / plain, "x"});
  out->push_back({name, "ratio_floor_trigger_to_plain", floor / plain, "x"});
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      o.quick = true;
      o.runs = 1;
    } else if (a == "--runs" && i + 1 < argc) {
      o.runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--rows" && i + 1 < argc) {
      o.rows = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--seconds" && i + 1 < argc) {
      o.mixed_seconds = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--snapshot-mb" && i + 1 < argc) {
      o.snapshot_mib = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--marmot" && i + 1 < argc) {
      o.marmot_binary = argv[++i];
    } else if (a == "--json" && i + 1 < argc) {
      o.json_path = argv[++i];
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: marmot_bench [--quick] [--runs N] [--rows N] [--seconds N] [--snapshot-mb N] [--json FILE] "
          "[--marmot PATH] "
          "[capture_bulk] [capture_bulk_unique] "
          "[capture_bulk_one_statement] [capture_autocommit] [replication] [catch_up] [latency] "
          "[mixed_load] [metrics_cost] [snapshot] [verify]\n");
      return 0;
    } else if (!a.empty() && a[0] != '-') {
      o.scenarios.push_back(a);
    } else {
      std::fprintf(stderr, "marmot_bench: unknown argument %s (see --help)\n", a.c_str());
      return 2;
    }
  }
  auto wanted = [&](const std::string& s) {
    return o.scenarios.empty() || std::find(o.scenarios.begin(), o.scenarios.end(), s) != o.scenarios.end();
  };
  spdlog::set_level(spdlog::level::warn);
  std::vector<Figure> figures;
  int bulk_rows = o.quick ? 20000 : 200000;
  if (wanted("capture_bulk"))
    CaptureOverhead(o, "capture_bulk", bulk_rows, InsertForm::kStatementPerRowInOneTransaction, &figures);
  if (wanted("capture_bulk_unique"))
    CaptureOverhead(o, "capture_bulk_unique", bulk_rows, InsertForm::kStatementPerRowInOneTransaction,
                    &figures,
                    /*unique_name=*/true);
  if (wanted("capture_bulk_one_statement"))
    CaptureOverhead(o, "capture_bulk_one_statement", bulk_rows, InsertForm::kOneStatement, &figures);
  if (wanted("capture_autocommit"))
    CaptureOverhead(o, "capture_autocommit", o.quick ? 200 : 2000, InsertForm::kAutocommitPerRow, &figures);
  ClusterBenchOptions co;
  co.marmot_binary =
      o.marmot_binary.empty()
          ? (std::filesystem::path(argv[0]).parent_path() / ".." / "marmot").lexically_normal().string()
          : o.marmot_binary;
  co.runs = o.quick ? 1 : std::min(o.runs, 3);
  if (o.quick) {
    co.rows = 20000;
    co.catch_up_rows = 20000;
    co.latency_writes = 50;
    co.mixed_seconds = 3;
    co.mixed_tx_per_s = 200;
  }
  if (o.mixed_seconds > 0) co.mixed_seconds = o.mixed_seconds;
  if (o.rows > 0) co.rows = o.rows;
  if (wanted("replication")) ReplicationThroughput(co, &figures);
  if (wanted("catch_up")) CatchUp(co, &figures);
  if (wanted("latency")) ReplicationLatency(co, &figures);
  if (wanted("mixed_load")) MixedLoad(co, &figures);
  if (wanted("metrics_cost")) MetricsCost(co, &figures);
  if (wanted("snapshot")) {
    SnapshotBenchOptions so;
    so.marmot_binary = co.marmot_binary;
    so.runs = o.quick ? 1 : std::min(o.runs, 2);  // 1 GiB a run: every run writes ~8 GiB
    so.database_mib = o.snapshot_mib > 0 ? o.snapshot_mib : (o.quick ? 20 : 1024);
    SnapshotSaveRestore(so, &figures);
  }
  if (wanted("verify")) {
    VerifyBenchOptions vo;
    vo.runs = o.quick ? 1 : std::min(o.runs, 3);
    vo.database_mib = o.snapshot_mib > 0 ? o.snapshot_mib : (o.quick ? 20 : 1024);
    VerifyDigest(vo, &figures);
  }

  std::printf("%-22s %-26s %14s\n", "scenario", "metric", "median");
  for (const Figure& f : figures)
    std::printf("%-22s %-26s %12.4f %s\n", f.scenario.c_str(), f.metric.c_str(), f.value, f.unit.c_str());
  if (!o.json_path.empty()) {
    std::ofstream json(o.json_path);
    json << "{\"runs\": " << o.runs << ", \"quick\": " << (o.quick ? "true" : "false") << ", \"figures\": [";
    for (size_t i = 0; i < figures.size(); ++i) {
      const Figure& f = figures[i];
      json << (i ? ", " : "") << "{\"scenario\": \"" << f.scenario << "\", \"metric\": \"" << f.metric
           << "\", \"value\": " << f.value << ", \"unit\": \"" << f.unit << "\"}";
    }
    json << "]}\n";
  }
  return 0;
}

}  // namespace
}  // namespace marmot::bench

int main(int argc, char** argv) { return marmot::bench::Main(argc, argv); }
