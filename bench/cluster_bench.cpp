#include "cluster_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "bench_util.h"
#include "cluster.h"

namespace marmot::bench {

void ReplicationThroughput(const ClusterBenchOptions& o, std::vector<Figure>* out) {
  std::vector<double> rates, plain_rates, ratios, rss, rss_start, cpu_per_1k, cpu_writer_per_1k,
      cpu_other_per_1k;
  for (int run = 0; run < o.runs; ++run) {
    std::string dir = ScratchDir();
    {
      // Baseline: plain SQLite, same rows, same transactions.
      Database plain = OpenDb(dir + "/plain.db");
      Check(plain.Exec(std::string("PRAGMA journal_mode=WAL;") + kItemsSchema), "schema");
      auto t0 = Clock::now();
      InsertItems(plain, 1, o.rows, o.rows_per_transaction);
      plain_rates.push_back(o.rows / std::chrono::duration<double>(Clock::now() - t0).count());

      Cluster cluster(o.marmot_binary, dir);
      Database writer = OpenDb(cluster.Db(1));
      Database r2 = OpenDb(cluster.Db(2)), r3 = OpenDb(cluster.Db(3));
      double cpu_before[3] = {cluster.CpuSeconds(1), cluster.CpuSeconds(2), cluster.CpuSeconds(3)};
      RssSampler rss_node1(cluster, 1);
      auto start = Clock::now();
      std::thread load([&] { InsertItems(writer, 1, o.rows, o.rows_per_transaction); });
      SecondsUntilRows(r2, o.rows, start, dir);
      double seconds = SecondsUntilRows(r3, o.rows, start, dir);
      load.join();
      rates.push_back(o.rows / seconds);
      ratios.push_back(rates.back() / plain_rates.back());  // both from this run: the noise cancels
      std::fprintf(stderr,
                   "marmot_bench: replication run %d/%d: %.0f rows/s, plain SQLite %.0f rows/s, ratio %.3f\n",
                   run + 1, o.runs, rates.back(), plain_rates.back(), ratios.back());
      // Flat memory: the resident set after the first second of the burst against its peak.
      std::vector<double> samples = rss_node1.Finish();
      rss_start.push_back(samples.size() > 10 ? samples[10] : samples.back());
      rss.push_back(*std::max_element(samples.begin(), samples.end()));
      double cpu[3];
      for (int n = 1; n <= 3; ++n)
        cpu[n - 1] = (cluster.CpuSeconds(n) - cpu_before[n - 1]) / (o.rows / 1000.0);
      cpu_per_1k.push_back((cpu[0] + cpu[1] + cpu[2]) / 3);
      cpu_writer_per_1k.push_back(cpu[0]);
      cpu_other_per_1k.push_back((cpu[1] + cpu[2]) / 2);
    }
    RemoveScratchDir(dir);
  }
  double rate = Median(rates), plain = Median(plain_rates);
  out->push_back({"replication", "rows", static_cast<double>(o.rows), "rows"});
  out->push_back({"replication", "plain_sqlite_rows_per_s", plain, "rows/s"});
  out->push_back({"replication", "replicated_rows_per_s", rate, "rows/s"});
  out->push_back({"replication", "ratio_to_plain_sqlite", Median(ratios), "x"});
  out->push_back({"replication", "marmot_rss_node1_after_1s", Median(rss_start), "MiB"});
  out->push_back({"replication", "marmot_peak_rss_node1", Median(rss), "MiB"});
  out->push_back({"replication", "cpu_s_per_1000_rows_per_node", Median(cpu_per_1k), "s"});
  out->push_back({"replication", "cpu_s_per_1000_rows_node1", Median(cpu_writer_per_1k), "s"});
  out->push_back({"replication", "cpu_s_per_1000_rows_nodes2_3", Median(cpu_other_per_1k), "s"});
}

void CatchUp(const ClusterBenchOptions& o, std::vector<Figure>* out) {
  std::vector<double> live, catch_up, catch_up_with_start;
  for (int run = 0; run < o.runs; ++run) {
    std::string dir = ScratchDir();
    {
      Cluster cluster(o.marmot_binary, dir, /*replicas=*/3);
      cluster.Stop(3);
      Database writer = OpenDb(cluster.Db(1));
      Database r2 = OpenDb(cluster.Db(2));
      auto start = Clock::now();
      InsertItems(writer, 1, o.catch_up_rows, o.rows_per_transaction);
      live.push_back(o.catch_up_rows / SecondsUntilRows(r2, o.catch_up_rows, start, dir));
      // Node 3 was away for all of it: from its start, and from the moment it runs, to caught up.
      auto launched = Clock::now();
      cluster.Launch(3);
      cluster.WaitUntilRunning(3);
      auto running = Clock::now();
      Database r3 = OpenDb(cluster.Db(3));
      double after_running = SecondsUntilRows(r3, o.catch_up_rows, running, dir);
      catch_up.push_back(o.catch_up_rows / after_running);
      catch_up_with_start.push_back(o.catch_up_rows /
                                    std::chrono::duration<double>(Clock::now() - launched).count());
    }
    RemoveScratchDir(dir);
  }
  out->push_back({"catch_up", "rows", static_cast<double>(o.catch_up_rows), "rows"});
  out->push_back({"catch_up", "live_rows_per_s_node2", Median(live), "rows/s"});
  out->push_back({"catch_up", "catch_up_rows_per_s_node3", Median(catch_up), "rows/s"});
  out->push_back({"catch_up", "catch_up_rows_per_s_incl_start", Median(catch_up_with_start), "rows/s"});
  out->push_back({"catch_up", "ratio_catch_up_to_live", Median(catch_up) / Median(live), "x"});
}

void ReplicationLatency(const ClusterBenchOptions& o, std::vector<Figure>* out) {
  std::string dir = ScratchDir();
  std::vector<double> latencies_ms, after_commit_ms, commit_ms;
  {
    Cluster cluster(o.marmot_binary, dir);
    Database writer = OpenDb(cluster.Db(1));
    Database reader = OpenDb(cluster.Db(2));
    Result<Statement> insert = writer.Prepare("INSERT INTO items VALUES (?1, 'latency', 1, 1.0)");
    Result<Statement> probe = reader.Prepare("SELECT 1 FROM items WHERE id = ?1");
    Check(insert.status(), "prepare");
    Check(probe.status(), "prepare");
    for (int i = 1; i <= o.latency_writes; ++i) {
      auto next = Clock::now() + std::chrono::milliseconds(o.latency_interval_ms);
      insert->BindInt(1, i);
      auto t0 = Clock::now();
      Check(insert->Run(), "insert");
      insert->Reset();
      auto committed = Clock::now();
      while (true) {
        probe->BindInt(1, i);
        Result<bool> found = probe->Step();
        probe->Reset();
        if (found.ok() && *found) break;
        if (Clock::now() - t0 > std::chrono::seconds(30)) Die("a write was not replicated within 30 s");
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      auto seen = Clock::now();
      latencies_ms.push_back(std::chrono::duration<double, std::milli>(seen - t0).count());
      after_commit_ms.push_back(std::chrono::duration<double, std::milli>(seen - committed).count());
      commit_ms.push_back(std::chrono::duration<double, std::milli>(committed - t0).count());
      std::this_thread::sleep_until(next);
    }
  }
  RemoveScratchDir(dir);
  out->push_back({"latency", "writes", static_cast<double>(latencies_ms.size()), "writes"});
  out->push_back({"latency", "p50", Percentile(latencies_ms, 0.50), "ms"});
  out->push_back({"latency", "p99", Percentile(latencies_ms, 0.99), "ms"});
  out->push_back({"latency", "max", Percentile(latencies_ms, 1.0), "ms"});
  // The same writes from the moment their commit returned on node 1 (without the writer's own
  // fsync, whose median is the last figure).
  out->push_back({"latency", "p50_after_commit", Percentile(after_commit_ms, 0.50), "ms"});
  out->push_back({"latency", "p99_after_commit", Percentile(after_commit_ms, 0.99), "ms"});
  out->push_back({"latency", "commit_p50", Percentile(commit_ms, 0.50), "ms"});
}

}  // namespace marmot::bench
