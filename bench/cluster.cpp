#include "cluster.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "bench_util.h"

namespace marmot::bench {
namespace {

namespace fs = std::filesystem;

// marmot processes started by the current Cluster, for Die().
std::vector<pid_t> g_children;

void WaitForLog(const std::string& path, const std::string& text) {
  auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    std::ifstream in(path);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (all.find(text) != std::string::npos) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Die("node did not start, see " + path);
}

// The value of `key` (e.g. "VmRSS:") in /proc/<pid>/status, in MiB; 0 when absent.
double ProcStatusMiB(pid_t pid, const std::string& key) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;
  }
  return 0;
}

}  // namespace

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "marmot_bench: %s\n", what.c_str());
  for (pid_t pid : g_children) {
    if (pid > 0) kill(pid, SIGTERM);
  }
  std::exit(1);
}

Database OpenDb(const std::string& path) {
  Database::Options o;
  o.create = true;
  Result<Database> db = Database::Open(path, o);
  Check(db.status(), "opening " + path);
  return std::move(*db);
}

std::string ScratchDir() {
  std::string tmpl = (fs::temp_directory_path() / "marmot-bench-cluster-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

void RemoveScratchDir(const std::string& dir) {
  if (std::getenv("MARMOT_BENCH_KEEP")) {
    std::fprintf(stderr, "marmot_bench: kept %s\n", dir.c_str());
    return;
  }
  fs::remove_all(dir);
}

int64_t CountItems(Database& db) {
  Result<int64_t> n = db.QueryInt("SELECT count(*) FROM items");
  return n.ok() ? *n : -1;
}

double SecondsUntilRows(Database& db, int64_t rows, Clock::time_point since, const std::string& dir) {
  // A key lookup, not count(*): a full scan every few ms of a million-row table would take the
  // CPU the cluster needs. Rows arrive in stream order, so the last one comes last.
  Result<Statement> last = db.Prepare("SELECT 1 FROM items WHERE id = ?1");
  Check(last.status(), "prepare");
  while (true) {
    last->BindInt(1, rows);
    Result<bool> found = last->Step();
    last->Reset();
    if (found.ok() && *found) break;
    if (Clock::now() - since > std::chrono::seconds(600)) Die("rows did not arrive within 600 s; see " + dir);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  double seconds = std::chrono::duration<double>(Clock::now() - since).count();
  int64_t count = CountItems(db);
  if (count != rows)
    Die("item " + std::to_string(rows) + " arrived but the table holds " + std::to_string(count) +
        " rows; see " + dir);
  return seconds;
}

Cluster::Cluster(const std::string& marmot_binary, const std::string& dir, int replicas, bool metrics)
    : binary_(marmot_binary), dir_(dir) {
  for (int& p : ports_) p = FreeLoopbackPorts(2);
  if (metrics) {
    for (int& p : http_ports_) p = FreeLoopbackPorts(2);
  }
  for (int n = 1; n <= 3; ++n) {
    Database d = OpenDb(Db(n));
    Check(d.Exec(std::string("PRAGMA journal_mode=WAL;") + kItemsSchema), "schema");
    std::ofstream(File("node" + std::to_string(n) + ".toml"))
        << "db_path = \"" << Db(n) << "\"\nnode_id = " << n
        << "\n[replication_log]\nmax_entries = 65536\nreplicas = " << replicas
        << "\n[snapshot]\nenabled = false\n"
        << (metrics ? "[prometheus]\nenable = true\nbind = \"127.0.0.1:" +
                          std::to_string(http_ports_[n - 1]) + "\"\n"
                    : std::string())
        << (std::getenv("MARMOT_BENCH_VERBOSE") ? "[logging]\nverbose = true\n" : "");
  }
  for (int n = 1; n <= 3; ++n) Launch(n);
  for (int n = 1; n <= 3; ++n) WaitUntilRunning(n);
}

Cluster::~Cluster() {
  g_children.clear();
  for (pid_t pid : pids_) {
    if (pid > 0) kill(pid, SIGTERM);
  }
  for (pid_t pid : pids_) {
    if (pid > 0) waitpid(pid, nullptr, 0);
  }
}

void Cluster::Launch(int n) {
  std::string peers;
  for (int m = 1; m <= 3; ++m) {
    if (m != n)
      peers +=
          (peers.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(ports_[m - 1]) + "/";
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

void Cluster::Stop(int n) {
  kill(pids_[n - 1], SIGTERM);
  waitpid(pids_[n - 1], nullptr, 0);
  pids_[n - 1] = -1;
  g_children = pids_;
}

void Cluster::WaitUntilRunning(int n) const {
  WaitForLog(File("node" + std::to_string(n) + ".log"), "running on");
}

double Cluster::PeakRssMiB(int n) const { return ProcStatusMiB(pid(n), "VmHWM:"); }
double Cluster::RssMiB(int n) const { return ProcStatusMiB(pid(n), "VmRSS:"); }

double Cluster::CpuSeconds(int n) const {
  std::ifstream stat("/proc/" + std::to_string(pid(n)) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(all.substr(all.rfind(')') + 2));
  std::string f;
  long ticks = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14 || i == 15) ticks += std::stol(f);  // utime, stime
  }
  return static_cast<double>(ticks) / sysconf(_SC_CLK_TCK);
}

RssSampler::RssSampler(const Cluster& cluster, int node) {
  thread_ = std::thread([this, &cluster, node] {
    while (!stop_.load()) {
      samples_.push_back(cluster.RssMiB(node));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
}

RssSampler::~RssSampler() { Finish(); }

std::vector<double> RssSampler::Finish() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  return samples_;
}

}  // namespace marmot::bench
