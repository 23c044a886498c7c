#include "cluster_bench.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench_util.h"
#include "db/sqlite.h"

namespace marmot::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// marmot processes started by the current Cluster: Die() stops them, since exit() skips the
// Cluster's destructor (their nats-servers follow them through PR_SET_PDEATHSIG).
std::vector<pid_t> g_children;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "marmot_bench: %s\n", what.c_str());
  for (pid_t pid : g_children) {
    if (pid > 0) kill(pid, SIGTERM);
  }
  std::exit(1);
}

// Two consecutive free loopback ports (cluster port and leaf-node port).
int FreePortPair() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    int port =
        20000 + static_cast<int>((Clock::now().time_since_epoch().count() / 7 + attempt * 7919) % 40000);
    std::string cmd = "python3 -c \"import socket; [socket.socket().bind(('127.0.0.1', p)) for p in (" +
                      std::to_string(port) + "," + std::to_string(port + 1) + ")]\" 2>/dev/null";
    if (std::system(cmd.c_str()) == 0) return port;
  }
  Die("no free ports");
}

Database OpenDb(const std::string& path) {
  Database::Options o;
  o.create = true;
  Result<Database> db = Database::Open(path, o);
  Check(db.status(), "opening " + path);
  return std::move(*db);
}

class Cluster {
 public:
  // `replicas`: stream copies; a node can only be stopped without stopping the others at 3.
  Cluster(const ClusterBenchOptions& o, const std::string& dir, int replicas = 1)
      : binary_(o.marmot_binary), dir_(dir) {
    for (int& p : ports_) p = FreePortPair();
    for (int n = 1; n <= 3; ++n) {
      Database d = OpenDb(Db(n));
      Check(d.Exec(std::string("PRAGMA journal_mode=WAL;") + kItemsSchema), "schema");
      std::ofstream(File("node" + std::to_string(n) + ".toml"))
          << "db_path = \"" << Db(n) << "\"\nnode_id = " << n
          << "\n[replication_log]\nmax_entries = 65536\nreplicas = " << replicas
          << "\n[snapshot]\nenabled = false\n";
    }
    for (int n = 1; n <= 3; ++n) Launch(n);
    for (int n = 1; n <= 3; ++n) WaitUntilRunning(n);
  }
  ~Cluster() {
    g_children.clear();
    for (pid_t pid : pids_) {
      if (pid > 0) kill(pid, SIGTERM);
    }
    for (pid_t pid : pids_) {
      if (pid > 0) waitpid(pid, nullptr, 0);
    }
  }

  // Starts node n's marmot process (its log is rewritten).
  void Launch(int n) {
    std::string peers;
    for (int m = 1; m <= 3; ++m) {
      if (m != n)
        peers += (peers.empty() ? "" : ",") + std::string("nats://127.0.0.1:") +
                 std::to_string(ports_[m - 1]) + "/";
    }
    std::string log = File("node" + std::to_string(n) + ".log");
    std::string config = File("node" + std::to_string(n) + ".toml");
    std::string addr = "127.0.0.1:" + std::to_string(ports_[n - 1]);
    std::ofstream(log, std::ios::trunc).close();  // before the fork: WaitUntilRunning must not see an old log
    pid_t pid = fork();
    if (pid == 0) {
      FILE* f = std::freopen(log.c_str(), "a", stderr);
      (void)f;
      execl(binary_.c_str(), binary_.c_str(), "-config", config.c_str(), "-cluster-addr", addr.c_str(),
            "-cluster-peers", peers.c_str(), nullptr);
      _exit(127);
    }
    pids_[n - 1] = pid;
    g_children = pids_;
  }
  void Stop(int n) {
    kill(pids_[n - 1], SIGTERM);
    waitpid(pids_[n - 1], nullptr, 0);
    pids_[n - 1] = -1;
    g_children = pids_;
  }
  void WaitUntilRunning(int n) const { WaitForLog(File("node" + std::to_string(n) + ".log"), "running on"); }

  std::string File(const std::string& name) const { return dir_ + "/" + name; }
  std::string Db(int n) const { return File("node" + std::to_string(n) + ".db"); }
  pid_t pid(int n) const { return pids_[n - 1]; }

  // Peak resident set of node n's marmot process (not its nats-server), in MiB.
  double PeakRssMiB(int n) const {
    std::ifstream status("/proc/" + std::to_string(pid(n)) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    }
    return 0;
  }
  double CpuSeconds(int n) const {
    std::ifstream stat("/proc/" + std::to_string(pid(n)) + "/stat");
    std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    std::istringstream fields(all.substr(all.rfind(')') + 2));
    std::string f;
    long ticks = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i) {
      if (i == 14 || i == 15) ticks += std::stol(f);
    }
    return static_cast<double>(ticks) / sysconf(_SC_CLK_TCK);
  }

 private:
  static void WaitForLog(const std::string& path, const std::string& text) {
    auto deadline = Clock::now() + std::chrono::seconds(120);
    while (Clock::now() < deadline) {
      std::ifstream in(path);
      std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (all.find(text) != std::string::npos) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    Die("node did not start, see " + path);
  }
  std::string binary_;
  std::string dir_;
  int ports_[3] = {0, 0, 0};
  std::vector<pid_t> pids_ = std::vector<pid_t>(3, -1);
};

std::string ScratchDir() {
  std::string tmpl = (fs::temp_directory_path() / "marmot-bench-cluster-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

}  // namespace

void ReplicationThroughput(const ClusterBenchOptions& o, std::vector<Figure>* out) {
  std::vector<double> rates, plain_rates, rss, cpu_per_1k;
  for (int run = 0; run < o.runs; ++run) {
    std::string dir = ScratchDir();
    {
      // Baseline: plain SQLite, same rows, same transactions.
      Database plain = OpenDb(dir + "/plain.db");
      Check(plain.Exec(std::string("PRAGMA journal_mode=WAL;") + kItemsSchema), "schema");
      auto t0 = Clock::now();
      InsertItems(plain, 1, o.rows, o.rows_per_transaction);
      plain_rates.push_back(o.rows / std::chrono::duration<double>(Clock::now() - t0).count());

      Cluster cluster(o, dir);
      Database writer = OpenDb(cluster.Db(1));
      Database r2 = OpenDb(cluster.Db(2)), r3 = OpenDb(cluster.Db(3));
      double cpu_before = cluster.CpuSeconds(1) + cluster.CpuSeconds(2) + cluster.CpuSeconds(3);
      auto start = Clock::now();
      std::thread load([&] { InsertItems(writer, 1, o.rows, o.rows_per_transaction); });
      auto deadline = start + std::chrono::seconds(600);
      while (Clock::now() < deadline) {
        Result<int64_t> c2 = r2.QueryInt("SELECT count(*) FROM items");
        Result<int64_t> c3 = r3.QueryInt("SELECT count(*) FROM items");
        if (c2.ok() && c3.ok() && *c2 == o.rows && *c3 == o.rows) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      load.join();
      if (Clock::now() >= deadline) Die("replication did not finish within 600 s; see " + dir);
      rates.push_back(o.rows / seconds);
      rss.push_back(cluster.PeakRssMiB(1));
      double cpu = cluster.CpuSeconds(1) + cluster.CpuSeconds(2) + cluster.CpuSeconds(3) - cpu_before;
      cpu_per_1k.push_back(cpu / (o.rows / 1000.0) / 3);
    }
    fs::remove_all(dir);
  }
  double rate = Median(rates), plain = Median(plain_rates);
  out->push_back({"replication", "rows", static_cast<double>(o.rows), "rows"});
  out->push_back({"replication", "plain_sqlite_rows_per_s", plain, "rows/s"});
  out->push_back({"replication", "replicated_rows_per_s", rate, "rows/s"});
  out->push_back({"replication", "ratio_to_plain_sqlite", rate / plain, "x"});
  out->push_back({"replication", "marmot_peak_rss_node1", Median(rss), "MiB"});
  out->push_back({"replication", "cpu_s_per_1000_rows_per_node", Median(cpu_per_1k), "s"});
}

int64_t CountItems(Database& db) {
  Result<int64_t> n = db.QueryInt("SELECT count(*) FROM items");
  return n.ok() ? *n : -1;
}

// Waits until `db` holds `rows` items; the seconds it took, or exits after 600 s.
double SecondsUntilCount(Database& db, int64_t rows, Clock::time_point since, const std::string& dir) {
  while (CountItems(db) != rows) {
    if (Clock::now() - since > std::chrono::seconds(600)) Die("rows did not arrive within 600 s; see " + dir);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void CatchUp(const ClusterBenchOptions& o, std::vector<Figure>* out) {
  std::vector<double> live, catch_up, catch_up_with_start;
  for (int run = 0; run < o.runs; ++run) {
    std::string dir = ScratchDir();
    {
      Cluster cluster(o, dir, /*replicas=*/3);
      cluster.Stop(3);
      Database writer = OpenDb(cluster.Db(1));
      Database r2 = OpenDb(cluster.Db(2));
      auto start = Clock::now();
      InsertItems(writer, 1, o.rows, o.rows_per_transaction);
      live.push_back(o.rows / SecondsUntilCount(r2, o.rows, start, dir));
      // Node 3 was away for all of it: from its start, and from the moment it runs, to caught up.
      auto launched = Clock::now();
      cluster.Launch(3);
      cluster.WaitUntilRunning(3);
      auto running = Clock::now();
      Database r3 = OpenDb(cluster.Db(3));
      double after_running = SecondsUntilCount(r3, o.rows, running, dir);
      catch_up.push_back(o.rows / after_running);
      catch_up_with_start.push_back(o.rows / std::chrono::duration<double>(Clock::now() - launched).count());
    }
    fs::remove_all(dir);
  }
  out->push_back({"catch_up", "rows", static_cast<double>(o.rows), "rows"});
  out->push_back({"catch_up", "live_rows_per_s_node2", Median(live), "rows/s"});
  out->push_back({"catch_up", "catch_up_rows_per_s_node3", Median(catch_up), "rows/s"});
  out->push_back({"catch_up", "catch_up_rows_per_s_incl_start", Median(catch_up_with_start), "rows/s"});
  out->push_back({"catch_up", "ratio_catch_up_to_live", Median(catch_up) / Median(live), "x"});
}

void ReplicationLatency(const ClusterBenchOptions& o, std::vector<Figure>* out) {
  std::string dir = ScratchDir();
  std::vector<double> latencies_ms;
  {
    Cluster cluster(o, dir);
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
      while (true) {
        probe->BindInt(1, i);
        Result<bool> found = probe->Step();
        probe->Reset();
        if (found.ok() && *found) break;
        if (Clock::now() - t0 > std::chrono::seconds(30)) Die("a write was not replicated within 30 s");
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      std::this_thread::sleep_until(next);
    }
  }
  fs::remove_all(dir);
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    return latencies_ms[std::min(latencies_ms.size() - 1, static_cast<size_t>(p * latencies_ms.size()))];
  };
  out->push_back({"latency", "writes", static_cast<double>(latencies_ms.size()), "writes"});
  out->push_back({"latency", "p50", pct(0.50), "ms"});
  out->push_back({"latency", "p99", pct(0.99), "ms"});
  out->push_back({"latency", "max", latencies_ms.back(), "ms"});
}

}  // namespace marmot::bench
