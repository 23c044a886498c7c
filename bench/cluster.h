// The harness of the cluster scenarios: three real marmot processes (each with its embedded
// nats-server) clustered over loopback on free ports, driven through their SQLite files.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "db/sqlite.h"

namespace marmot::bench {

using Clock = std::chrono::steady_clock;

// Prints `what`, stops the marmot processes of the current Cluster and exits 1 (exit() skips
// destructors, so the Cluster's own cleanup would not run).
[[noreturn]] void Die(const std::string& what);

// Opens (creating when missing) the database at `path`, or dies.
Database OpenDb(const std::string& path);
// A new empty directory under the system's temp dir.
std::string ScratchDir();
// Removes a ScratchDir, unless MARMOT_BENCH_KEEP is set (then prints where it is, with the nodes'
// logs; MARMOT_BENCH_VERBOSE=1 makes those logs debug level).
void RemoveScratchDir(const std::string& dir);
// Rows in `items`, or -1 when it cannot be read (e.g. locked).
int64_t CountItems(Database& db);
// Waits until `db` holds items 1..`rows` (written in that order); the seconds since `since`.
// Dies after 600 s, or when the last item arrived but others are missing.
double SecondsUntilRows(Database& db, int64_t rows, Clock::time_point since, const std::string& dir);

class Cluster {
 public:
  // Three nodes in `dir`, each with the `items` table, started and running. `replicas`: stream
  // copies (a node can only be stopped without stopping the others at 3). `metrics`: each node
  // serves /metrics on 127.0.0.1:http_port(n).
  Cluster(const std::string& marmot_binary, const std::string& dir, int replicas = 1, bool metrics = false);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Starts node n's marmot process (its log is rewritten); Stop sends SIGTERM and waits.
  void Launch(int n);
  void Stop(int n);
  void WaitUntilRunning(int n) const;

  std::string File(const std::string& name) const { return dir_ + "/" + name; }
  std::string Db(int n) const { return File("node" + std::to_string(n) + ".db"); }
  pid_t pid(int n) const { return pids_[n - 1]; }
  int http_port(int n) const { return http_ports_[n - 1]; }

  // Node n's marmot process (not its nats-server): peak and current resident set in MiB, and
  // CPU seconds used so far (user + system).
  double PeakRssMiB(int n) const;
  double RssMiB(int n) const;
  double CpuSeconds(int n) const;

 private:
  std::string binary_;
  std::string dir_;
  int ports_[3] = {0, 0, 0};
  int http_ports_[3] = {0, 0, 0};
  std::vector<pid_t> pids_ = std::vector<pid_t>(3, -1);
};

// Samples a node's resident set every 100 ms on a thread of its own, to show whether memory
// stays flat under load.
class RssSampler {
 public:
  RssSampler(const Cluster& cluster, int node);
  ~RssSampler();
  RssSampler(const RssSampler&) = delete;
  RssSampler& operator=(const RssSampler&) = delete;

  // Stops sampling; the samples in MiB, oldest first.
  std::vector<double> Finish();

 private:
  std::atomic<bool> stop_{false};
  std::vector<double> samples_;
  std::thread thread_;
};

}  // namespace marmot::bench
