// The mixed-load scenario: every node of a 3-node cluster writes at once, as an application
// spread over the nodes would. Each node runs `mixed_tx_per_s` single-row autocommit
// transactions per second for `mixed_seconds`:
//   45% insert a new row (in the node's own key range),
//   35% update a random row of a shared set every node updates (concurrent writes to the same
//       rows: the last one in stream order must win everywhere),
//   15% delete a random row the node inserted,
//    5% change the primary key of a row the node inserted.
// Meanwhile a probe writes one row on node 1 every 100 ms and times it until visible on nodes 2
// and 3: if the nodes keep up, that lag stays bounded. After the writers stop, the time until all
// three databases hold identical rows. From each node's /metrics: how long marmot's apply
// transactions held the database's write lock (p99 across the nodes, from the histogram's
// buckets, and the maximum), i.e. how long an application's writer had to wait for marmot.
#include <httplib.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "bench_util.h"
#include "cluster.h"
#include "cluster_bench.h"
#include "util/fnv.h"

namespace marmot::bench {
namespace {

constexpr int64_t kSharedRows = 10000;     // ids 1..kSharedRows, preloaded on node 1
constexpr int64_t kNodeRange = 100000000;  // node n inserts ids from n * kNodeRange
constexpr int64_t kProbeIds = 9 * kNodeRange;

// A hash of every row of `items` in key order: equal on nodes holding the same rows.
uint64_t ContentHash(Database& db) {
  Result<Statement> rows = db.Prepare("SELECT id, name, qty, price FROM items ORDER BY id");
  if (!rows.ok()) return 0;
  uint64_t h = kFnv1a64OffsetBasis;
  const char separator = '\xff';
  auto mix = [&](const std::string& bytes) {
    h = Fnv1a64Add(h, bytes);
    h = Fnv1a64Add(h, &separator, 1);
  };
  while (true) {
    Result<bool> more = rows->Step();
    if (!more.ok()) return 0;  // locked for too long: compare again later
    if (!*more) break;
    for (int c = 0; c < 4; ++c) mix(rows->ColumnText(c));
  }
  return h;
}

struct WriterStats {
  int64_t transactions = 0;
  double seconds = 0;
  std::vector<double> write_ms;  // how long each of the application's writes took
};

// Node `node`'s application: the operation mix above at `rate` transactions/s for `seconds`.
WriterStats RunWriter(const std::string& db_path, int node, int rate, int seconds) {
  Database db = OpenDb(db_path);
  // As WAL applications commonly run (SQLite's advice for WAL; PocketBase, Rails): no fsync per
  // commit. With FULL, three nodes' 3,000 fsyncs a second measure the disk, not marmot.
  Check(db.Exec("PRAGMA synchronous=NORMAL"), "setting synchronous");
  Result<Statement> insert = db.Prepare("INSERT INTO items VALUES (?1, 'mixed', ?2, 0.5)");
  Result<Statement> update = db.Prepare("UPDATE items SET qty = ?2, name = ?3 WHERE id = ?1");
  Result<Statement> remove = db.Prepare("DELETE FROM items WHERE id = ?1");
  Result<Statement> rekey = db.Prepare("UPDATE items SET id = ?2 WHERE id = ?1");
  Check(insert.status(), "prepare");
  Check(update.status(), "prepare");
  Check(remove.status(), "prepare");
  Check(rekey.status(), "prepare");
  std::mt19937_64 random(static_cast<uint64_t>(node));  // fixed seed: the same mix every run
  int64_t next_own = node * kNodeRange;
  const int64_t first_own = next_own;
  auto own_row = [&] { return first_own + static_cast<int64_t>(random() % (next_own - first_own)); };
  const std::string label = "node-" + std::to_string(node);
  auto period = std::chrono::nanoseconds(1000000000LL / rate);
  int64_t total = static_cast<int64_t>(rate) * seconds;
  WriterStats stats;
  stats.write_ms.reserve(static_cast<size_t>(total));
  auto start = Clock::now();
  for (int64_t i = 0; i < total; ++i) {
    std::this_thread::sleep_until(start + i * period);  // returns at once when behind
    int pick = static_cast<int>(random() % 100);
    Statement* stmt;
    if (pick < 45 || next_own == first_own) {
      stmt = &*insert;
      stmt->BindInt(1, next_own++);
      stmt->BindInt(2, i);
    } else if (pick < 80) {
      stmt = &*update;
      stmt->BindInt(1, 1 + static_cast<int64_t>(random() % kSharedRows));
      stmt->BindInt(2, i);
      stmt->BindText(3, label);
    } else if (pick < 95) {
      stmt = &*remove;
      stmt->BindInt(1, own_row());
    } else {
      stmt = &*rekey;
      stmt->BindInt(1, own_row());
      stmt->BindInt(2, next_own++);
    }
    auto t0 = Clock::now();
    Check(stmt->Run(), "mixed-load write on node " + std::to_string(node));
    stats.write_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    stmt->Reset();
  }
  stats.transactions = total;
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return stats;
}

// Writes a probe row on node 1 every 100 ms until `stop`; the milliseconds each took to be
// visible on nodes 2 and 3.
std::vector<double> RunProbes(const Cluster& cluster, const std::atomic<bool>& stop) {
  Database writer = OpenDb(cluster.Db(1));
  Database r2 = OpenDb(cluster.Db(2)), r3 = OpenDb(cluster.Db(3));
  Result<Statement> insert = writer.Prepare("INSERT INTO items VALUES (?1, 'probe', 0, 0.0)");
  Result<Statement> p2 = r2.Prepare("SELECT 1 FROM items WHERE id = ?1");
  Result<Statement> p3 = r3.Prepare("SELECT 1 FROM items WHERE id = ?1");
  Check(insert.status(), "prepare");
  Check(p2.status(), "prepare");
  Check(p3.status(), "prepare");
  auto visible = [](Statement& probe, int64_t id) {
    probe.BindInt(1, id);
    Result<bool> found = probe.Step();
    probe.Reset();
    return found.ok() && *found;
  };
  std::vector<double> lag_ms;
  for (int64_t id = kProbeIds; !stop.load(); ++id) {
    auto next = Clock::now() + std::chrono::milliseconds(100);
    insert->BindInt(1, id);
    auto t0 = Clock::now();
    Check(insert->Run(), "probe write");
    insert->Reset();
    bool on2 = false, on3 = false;
    while (!(on2 && on3)) {
      on2 = on2 || visible(*p2, id);
      on3 = on3 || visible(*p3, id);
      if (Clock::now() - t0 > std::chrono::seconds(120)) Die("a probe was not replicated within 120 s");
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    lag_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    std::this_thread::sleep_until(next);
  }
  return lag_ms;
}

// The lock-hold histogram of every node summed: p99 (the upper bound of the bucket it falls in) and
// the largest maximum, in ms.
struct LockHold {
  double p99_ms = 0;
  double max_ms = 0;
};
LockHold ReadLockHold(const Cluster& cluster) {
  std::map<double, double> buckets;  // le -> cumulative count over the nodes
  LockHold out;
  for (int n = 1; n <= 3; ++n) {
    httplib::Client client("127.0.0.1", cluster.http_port(n));
    httplib::Result res = client.Get("/metrics");
    if (!res || res->status != 200) Die("mixed_load: no /metrics from node " + std::to_string(n));
    std::istringstream lines(res->body);
    std::string line;
    const std::string bucket = "marmot_apply_lock_hold_seconds_bucket{le=\"";
    const std::string max = "marmot_apply_lock_hold_max_seconds ";
    while (std::getline(lines, line)) {
      if (line.rfind(bucket, 0) == 0) {
        size_t end = line.find('"', bucket.size());
        std::string le = line.substr(bucket.size(), end - bucket.size());
        double bound = le == "+Inf" ? 1e18 : std::stod(le);
        buckets[bound] += std::stod(line.substr(line.rfind(' ') + 1));
      } else if (line.rfind(max, 0) == 0) {
        out.max_ms = std::max(out.max_ms, 1000 * std::stod(line.substr(max.size())));
      }
    }
  }
  double total = buckets.empty() ? 0 : buckets.rbegin()->second;
  for (const auto& [bound, count] : buckets) {
    if (count >= 0.99 * total) {
      out.p99_ms = std::min(1000 * bound, out.max_ms);
      break;
    }
  }
  return out;
}

}  // namespace

void MixedLoad(const ClusterBenchOptions& o, std::vector<Figure>* out) {
  std::vector<double> achieved, p50, p99, max_lag, last_third_max, converge, rss, cpu_per_1k, write_p99,
      write_max, hold_p99, hold_max;
  for (int run = 0; run < o.runs; ++run) {
    std::string dir = ScratchDir();
    {
      Cluster cluster(o.marmot_binary, dir, /*replicas=*/1, /*metrics=*/true);
      {
        Database node1 = OpenDb(cluster.Db(1));
        InsertItems(node1, 1, static_cast<int>(kSharedRows), static_cast<int>(kSharedRows));
        for (int n = 2; n <= 3; ++n) {
          Database other = OpenDb(cluster.Db(n));
          SecondsUntilRows(other, kSharedRows, Clock::now(), dir);
        }
      }
      double cpu_before = cluster.CpuSeconds(1) + cluster.CpuSeconds(2) + cluster.CpuSeconds(3);
      RssSampler rss_node1(cluster, 1);
      std::atomic<bool> stop_probes{false};
      std::vector<double> lag;
      std::thread probes([&] { lag = RunProbes(cluster, stop_probes); });
      std::vector<WriterStats> stats(3);
      std::vector<std::thread> writers;
      for (int n = 1; n <= 3; ++n) {
        writers.emplace_back(
            [&, n] { stats[n - 1] = RunWriter(cluster.Db(n), n, o.mixed_tx_per_s, o.mixed_seconds); });
      }
      for (std::thread& w : writers) w.join();
      auto writes_done = Clock::now();
      stop_probes = true;
      probes.join();

      // Converged: the three databases hold the same rows, twice in a row 200 ms apart.
      std::vector<Database> dbs;
      for (int n = 1; n <= 3; ++n) dbs.push_back(OpenDb(cluster.Db(n)));
      int equal_polls = 0;
      while (equal_polls < 2) {
        if (Clock::now() - writes_done > std::chrono::seconds(300))
          Die("the nodes did not converge within 300 s after the mixed load; see " + dir);
        uint64_t h1 = ContentHash(dbs[0]);
        bool equal = h1 != 0 && h1 == ContentHash(dbs[1]) && h1 == ContentHash(dbs[2]);
        equal_polls = equal ? equal_polls + 1 : 0;
        if (equal_polls < 2) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      // The second equal poll came 200 ms after the first: count from the first.
      converge.push_back(std::chrono::duration<double>(Clock::now() - writes_done).count() - 0.2);
      LockHold hold = ReadLockHold(cluster);
      hold_p99.push_back(hold.p99_ms);
      hold_max.push_back(hold.max_ms);

      double slowest = 1e18;
      int64_t transactions = 0;
      std::vector<double> write_ms;
      for (const WriterStats& s : stats) {
        slowest = std::min(slowest, s.transactions / s.seconds);
        transactions += s.transactions;
        write_ms.insert(write_ms.end(), s.write_ms.begin(), s.write_ms.end());
      }
      write_p99.push_back(Percentile(write_ms, 0.99));
      write_max.push_back(Percentile(write_ms, 1.0));
      achieved.push_back(slowest);
      p50.push_back(Percentile(lag, 0.50));
      p99.push_back(Percentile(lag, 0.99));
      max_lag.push_back(Percentile(lag, 1.0));
      last_third_max.push_back(Percentile(std::vector<double>(lag.end() - lag.size() / 3, lag.end()), 1.0));
      std::vector<double> samples = rss_node1.Finish();
      rss.push_back(*std::max_element(samples.begin(), samples.end()));
      double cpu = cluster.CpuSeconds(1) + cluster.CpuSeconds(2) + cluster.CpuSeconds(3) - cpu_before;
      // Every node applies every node's transactions: per node, per 1000 of them.
      cpu_per_1k.push_back(cpu / 3 / (transactions / 1000.0));
    }
    RemoveScratchDir(dir);
  }
  const std::string s = "mixed_load";
  out->push_back({s, "seconds", static_cast<double>(o.mixed_seconds), "s"});
  out->push_back({s, "target_tx_per_s_per_node", static_cast<double>(o.mixed_tx_per_s), "tx/s"});
  out->push_back({s, "achieved_tx_per_s_slowest", Median(achieved), "tx/s"});
  out->push_back({s, "app_write_p99", Median(write_p99), "ms"});
  out->push_back({s, "app_write_max", Median(write_max), "ms"});
  out->push_back({s, "marmot_lock_hold_p99", Median(hold_p99), "ms"});
  out->push_back({s, "marmot_lock_hold_max", Median(hold_max), "ms"});
  out->push_back({s, "lag_p50", Median(p50), "ms"});
  out->push_back({s, "lag_p99", Median(p99), "ms"});
  out->push_back({s, "lag_max", Median(max_lag), "ms"});
  out->push_back({s, "lag_max_last_third", Median(last_third_max), "ms"});
  out->push_back({s, "converged_after_writes", Median(converge), "s"});
  out->push_back({s, "marmot_peak_rss_node1", Median(rss), "MiB"});
  out->push_back({s, "cpu_s_per_1000_tx_per_node", Median(cpu_per_1k), "s"});
}

}  // namespace marmot::bench
