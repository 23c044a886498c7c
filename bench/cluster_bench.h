// Cluster scenarios of marmot_bench (see cluster.h for the harness).
#pragma once

#include <string>
#include <vector>

namespace marmot::bench {

struct Figure {
  std::string scenario;
  std::string metric;
  double value;
  std::string unit;
};

struct ClusterBenchOptions {
  std::string marmot_binary;
  int runs = 3;
  int rows = 1000000;  // replication scenario
  int rows_per_transaction = 10000;
  int catch_up_rows = 500000;
  int latency_writes = 2000;  // latency scenario
  int latency_interval_ms = 10;
  int mixed_seconds = 60;     // mixed-load scenario: every node writes this long
  int mixed_tx_per_s = 1000;  // single-row transactions per second per node
};

// Rows written on node 1 until visible on nodes 2 and 3; ratio to plain SQLite inserting the same.
void ReplicationThroughput(const ClusterBenchOptions& options, std::vector<Figure>* out);
// The replication scenario twice per run, with [prometheus] off and on (each node scraped every
// second meanwhile, as Prometheus would): throughput and CPU per row, on against off.
void MetricsCost(const ClusterBenchOptions& options, std::vector<Figure>* out);
// Node 3 stopped while `rows` are written on node 1, then started: rows/s until it has them all,
// compared with live replication to node 2 in the same run.
void CatchUp(const ClusterBenchOptions& options, std::vector<Figure>* out);
// Single-row autocommit write on node 1 until visible on node 2: p50, p99, max.
void ReplicationLatency(const ClusterBenchOptions& options, std::vector<Figure>* out);
// All three nodes write single-row transactions (insert/update/delete mix, partly on the same
// rows) at a steady rate; probes measure write-to-visible lag meanwhile, then convergence.
void MixedLoad(const ClusterBenchOptions& options, std::vector<Figure>* out);

}  // namespace marmot::bench
