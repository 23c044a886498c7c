// The metrics_cost scenario: what [prometheus] enable (and being scraped) costs replication.
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "bench_util.h"
#include "cluster.h"
#include "cluster_bench.h"

namespace marmot::bench {
namespace {

struct Run {
  double rows_per_s = 0;
  double cpu_per_1k = 0;  // marmot CPU seconds per 1,000 rows, mean of the three nodes
  int scrapes = 0;        // /metrics answers received (0 with metrics off)
};

Run ReplicateOnce(const ClusterBenchOptions& o, bool metrics) {
  Run r;
  std::string dir = ScratchDir();
  {
    Cluster cluster(o.marmot_binary, dir, /*replicas=*/1, metrics);
    Database writer = OpenDb(cluster.Db(1));
    Database r2 = OpenDb(cluster.Db(2)), r3 = OpenDb(cluster.Db(3));
    double cpu_before = cluster.CpuSeconds(1) + cluster.CpuSeconds(2) + cluster.CpuSeconds(3);
    std::atomic<bool> done{false};
    std::thread scraper;
    if (metrics) {
      scraper = std::thread([&] {
        while (!done.load()) {
          for (int n = 1; n <= 3; ++n) {
            httplib::Client client("127.0.0.1", cluster.http_port(n));
            httplib::Result res = client.Get("/metrics");
            if (res && res->status == 200) ++r.scrapes;
          }
          for (int i = 0; i < 10 && !done.load(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      });
    }
    auto start = Clock::now();
    std::thread load([&] { InsertItems(writer, 1, o.rows, o.rows_per_transaction); });
    SecondsUntilRows(r2, o.rows, start, dir);
    double seconds = SecondsUntilRows(r3, o.rows, start, dir);
    load.join();
    done.store(true);
    if (scraper.joinable()) scraper.join();
    r.rows_per_s = o.rows / seconds;
    double cpu = cluster.CpuSeconds(1) + cluster.CpuSeconds(2) + cluster.CpuSeconds(3) - cpu_before;
    r.cpu_per_1k = cpu / 3 / (o.rows / 1000.0);
  }
  RemoveScratchDir(dir);
  return r;
}

}  // namespace

void MetricsCost(const ClusterBenchOptions& o, std::vector<Figure>* out) {
  std::vector<double> rate_ratio, cpu_ratio, off_rates, on_rates;
  for (int run = 0; run < o.runs; ++run) {
    // Alternate which side goes first, so drift on a shared machine hits both alike.
    Run off, on;
    if (run % 2 == 0) {
      off = ReplicateOnce(o, false);
      on = ReplicateOnce(o, true);
    } else {
      on = ReplicateOnce(o, true);
      off = ReplicateOnce(o, false);
    }
    if (on.scrapes == 0) Die("metrics_cost: no /metrics answer from the nodes with [prometheus] enabled");
    off_rates.push_back(off.rows_per_s);
    on_rates.push_back(on.rows_per_s);
    rate_ratio.push_back(on.rows_per_s / off.rows_per_s);
    cpu_ratio.push_back(on.cpu_per_1k / off.cpu_per_1k);
    std::fprintf(stderr,
                 "marmot_bench: metrics_cost run %d/%d: off %.0f rows/s, on %.0f rows/s (%d scrapes), "
                 "throughput on/off %.3f, CPU per row on/off %.3f\n",
                 run + 1, o.runs, off.rows_per_s, on.rows_per_s, on.scrapes, rate_ratio.back(),
                 cpu_ratio.back());
  }
  out->push_back({"metrics_cost", "rows", static_cast<double>(o.rows), "rows"});
  out->push_back({"metrics_cost", "off_rows_per_s", Median(off_rates), "rows/s"});
  out->push_back({"metrics_cost", "on_rows_per_s", Median(on_rates), "rows/s"});
  out->push_back({"metrics_cost", "throughput_on_over_off", Median(rate_ratio), "x"});
  out->push_back({"metrics_cost", "cpu_per_row_on_over_off", Median(cpu_ratio), "x"});
}

}  // namespace marmot::bench
