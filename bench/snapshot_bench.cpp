#include "snapshot_bench.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "bench_util.h"
#include "cluster.h"
#include "db/capture.h"
#include "db/marmot_tables.h"
#include "db/schema.h"
#include "db/sqlite.h"
#include "loopback_ports.h"
#include "snapshot/live_restore.h"
#include "snapshot/snapshot_file.h"

namespace marmot::bench {
namespace {

namespace fs = std::filesystem;

// nats-server and marmot processes started by this scenario, for Fail().
std::vector<pid_t> g_spawned;

[[noreturn]] void Fail(const std::string& what) {
  for (pid_t pid : g_spawned) kill(pid, SIGTERM);
  Die(what);
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Starts `argv` with its standard error (and output) appended to `log`, which is emptied first.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::ofstream(log, std::ios::trunc).close();
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "a", stderr);
    f = std::freopen(log.c_str(), "a", stdout);
    (void)f;
    execv(args[0], args.data());
    _exit(127);
  }
  if (pid < 0) Fail("fork failed");
  g_spawned.push_back(pid);
  return pid;
}

void Forget(pid_t pid) { std::erase(g_spawned, pid); }

void Terminate(pid_t pid) {
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  Forget(pid);
}

// VmHWM of a running process in MiB (0 once it has exited).
double PeakRssMiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

bool LogContains(const std::string& path, const std::string& text) {
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return all.find(text) != std::string::npos;
}

// A JetStream nats-server on a free loopback port, its store in `dir`.
class NatsServer {
 public:
  explicit NatsServer(const std::string& dir) : port_(FreeLoopbackPorts(1)) {
    std::string binary =
        fs::exists("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : "/usr/bin/nats-server";
    fs::create_directories(dir + "/nats-store");
    pid_ = Spawn({binary, "-js", "-a", "127.0.0.1", "-p", std::to_string(port_), "-sd", dir + "/nats-store"},
                 dir + "/nats-server.log");
    auto deadline = Clock::now() + std::chrono::seconds(30);
    while (!test::LoopbackAccepts(port_)) {
      if (Clock::now() > deadline || waitpid(pid_, nullptr, WNOHANG) == pid_)
        Fail("nats-server did not start; see " + dir + "/nats-server.log");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~NatsServer() { Terminate(pid_); }
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_;
  pid_t pid_;
};

// Words of the generated descriptions: text that compresses like real text, not like noise.
constexpr const char* kWords[] = {
    "steel",   "oak",     "blue",    "red",      "green",   "small",  "large",   "compact",  "classic",
    "modern",  "outdoor", "indoor",  "kitchen",  "garden",  "office", "travel",  "premium",  "basic",
    "durable", "light",   "heavy",   "water",    "proof",   "cotton", "leather", "wooden",   "glass",
    "ceramic", "set",     "pack",    "of",       "with",    "and",    "for",     "the",      "a",
    "lamp",    "chair",   "table",   "shelf",    "bottle",  "mug",    "plate",   "bowl",     "knife",
    "spoon",   "fork",    "pan",     "pot",      "kettle",  "towel",  "blanket", "pillow",   "rug",
    "curtain", "frame",   "clock",   "mirror",   "basket",  "box",    "bag",     "backpack", "jacket",
    "shirt",   "shoe",    "sock",    "hat",      "glove",   "scarf",  "belt",    "wallet",   "watch",
    "cable",   "charger", "adapter", "speaker",  "battery", "switch", "sensor",  "filter",   "pump",
    "hose",    "tool",    "drill",   "saw",      "hammer",  "wrench", "screw",   "bolt",     "nail",
    "hand",    "made",    "eco",     "friendly", "easy",    "clean",  "fits",    "most",     "models",
    "size",    "color",   "black",   "white",    "grey",    "silver", "gold",    "new",      "edition"};
constexpr int kWordCount = sizeof(kWords) / sizeof(kWords[0]);
constexpr const char* kCategories[] = {"home",  "garden", "kitchen", "tools",  "clothing", "shoes",
                                       "bags",  "office", "sports",  "travel", "lighting", "audio",
                                       "power", "bath",   "decor",   "toys"};

std::string NodeConfig(const std::string& db_path, int node_id, const std::string& nats_url) {
  return "db_path = \"" + db_path + "\"\nnode_id = " + std::to_string(node_id) + "\n[nats]\nurls = [\"" +
         nats_url +
         "\"]\n[replication_log]\nreplicas = 1\n[snapshot]\nenabled = true\nstore = \"nats\"\n"
         "[snapshot.nats]\nreplicas = 1\n" +
         (std::getenv("MARMOT_BENCH_VERBOSE") ? "[logging]\nverbose = true\n" : "");
}

void RemoveDb(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path + suffix);
}

int64_t CountRows(const std::string& path) {
  Database db = OpenDb(path);
  return CountItems(db);
}

}  // namespace

int64_t GenerateDatabase(const std::string& path, int64_t mib) {
  Database db = OpenDb(path);
  Check(db.Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;"
                "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, "
                "qty INTEGER NOT NULL, price REAL NOT NULL, updated_at INTEGER NOT NULL, description TEXT);"
                "CREATE INDEX items_category_price ON items(category, price);"),
        "creating the items table");
  Result<Statement> insert = db.Prepare("INSERT INTO items VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  Check(insert.status(), "preparing insert");
  uint64_t x = 0x9E3779B97F4A7C15ull;  // xorshift64: the same database every time
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  const int64_t target = mib << 20;
  int64_t id = 0;
  std::string name, description;
  while (true) {
    Check(db.Exec("BEGIN"), "begin");
    for (int i = 0; i < 50000; ++i) {
      ++id;
      name = "item-" + std::to_string(id);
      description.clear();
      int words = 6 + static_cast<int>(next() % 14);
      for (int w = 0; w < words; ++w) {
        if (w) description += ' ';
        description += kWords[next() % kWordCount];
      }
      insert->BindInt(1, id);
      insert->BindText(2, name);
      insert->BindText(3, kCategories[next() % 16]);
      insert->BindInt(4, static_cast<int64_t>(next() % 10000));
      insert->BindDouble(5, static_cast<double>(next() % 100000) / 100.0);
      insert->BindInt(6, 1767225600 + id * 3 + static_cast<int64_t>(next() % 1000));
      insert->BindText(7, description);
      Check(insert->Run(), "insert");
      insert->Reset();
    }
    Check(db.Exec("COMMIT"), "commit");
    Result<int64_t> pages = db.QueryInt("PRAGMA page_count");
    Result<int64_t> page_size = db.QueryInt("PRAGMA page_size");
    Check(pages.status(), "page_count");
    Check(page_size.status(), "page_size");
    if (*pages * *page_size >= target) break;
  }
  Result<std::vector<TableSchema>> tables = ReadSchema(db);
  Check(tables.status(), "reading schema");
  Check(InstallCapture(db, *tables), "installing capture");
  // Position 0 of shard 1's stream: a node that has joined the (still empty) stream. Without a
  // position and with rows it is no new node either, but a position is what a node's file holds.
  Check(db.Exec(std::string("INSERT INTO ") + kPositionsTable +
                " (stream, seq, stream_created) VALUES ('marmot-changes-c-1', 0, 0);"
                "PRAGMA wal_checkpoint(TRUNCATE);"),
        "recording a stream position");
  return id;
}

void SnapshotSaveRestore(const SnapshotBenchOptions& o, std::vector<Figure>* out) {
  const std::string kName = "snapshot";
  std::string dir = ScratchDir();
  std::string source = dir + "/source.db";
  auto generate_start = Clock::now();
  const int64_t rows = GenerateDatabase(source, o.database_mib);
  const double db_mib = static_cast<double>(fs::file_size(source)) / (1 << 20);
  std::fprintf(stderr, "marmot_bench: snapshot: generated %.0f MiB (%lld rows) in %.1f s\n", db_mib,
               static_cast<long long>(rows), SecondsSince(generate_start));

  std::vector<double> vacuum, copy, durable_copy, save, save_ratio, compression, unpack, prepare, backup,
      restore, restore_ratio, restore_durable_ratio, bootstrap_durable_ratio, marmot_save, marmot_save_ratio,
      marmot_save_rss, bootstrap, bootstrap_ratio, bootstrap_rss;
  for (int run = 0; run < o.runs; ++run) {
    // Every step reads a warm page cache (nothing is dropped); sync() before each timed step so
    // the writeback of the previous step's output does not slow the next one.
    std::string vacuumed = dir + "/vacuum-into.db";
    ::sync();
    {
      Database db = OpenDb(source);
      auto t0 = Clock::now();
      Check(db.Exec("VACUUM INTO '" + vacuumed + "'"), "VACUUM INTO");
      vacuum.push_back(SecondsSince(t0));
    }
    RemoveDb(vacuumed);

    std::string live = dir + "/live.db";
    RemoveDb(live);
    ::sync();
    auto t0 = Clock::now();
    fs::copy_file(source, live);
    copy.push_back(SecondsSince(t0));
    // The same copy made durable (what a restore must be): copy, then fsync.
    std::string durable = dir + "/durable-copy.db";
    RemoveDb(durable);
    ::sync();
    t0 = Clock::now();
    fs::copy_file(source, durable);
    {
      int fd = ::open(durable.c_str(), O_RDONLY);
      if (fd < 0 || ::fsync(fd) != 0) Fail("fsync of the durable copy failed");
      ::close(fd);
    }
    durable_copy.push_back(SecondsSince(t0));
    RemoveDb(durable);

    // Save in process.
    std::string work = dir + "/work";
    fs::create_directories(work);
    ::sync();
    t0 = Clock::now();
    Result<LocalSnapshot> snap = WriteSnapshotFile(source, work, /*node_id=*/1, nullptr);
    save.push_back(SecondsSince(t0));
    Check(snap.status(), "WriteSnapshotFile");
    save_ratio.push_back(save.back() / vacuum.back());
    compression.push_back(static_cast<double>(snap->manifest.db_bytes) / snap->manifest.object_bytes);

    // Restore in process into a copy of the same database.
    std::string unpacked = work + "/unpacked.db";
    ::sync();
    t0 = Clock::now();
    Check(UnpackSnapshotFile(snap->data_path, snap->manifest, unpacked, nullptr), "UnpackSnapshotFile");
    auto t1 = Clock::now();
    Check(PrepareSnapshotForRestore(unpacked, live), "PrepareSnapshotForRestore");
    auto t2 = Clock::now();
    std::atomic<bool> never_stop{false};
    auto nothing_to_check = [] { return Status(); };
    Check(RestoreDatabase(live, unpacked, nothing_to_check, nullptr, never_stop), "RestoreDatabase");
    auto t3 = Clock::now();
    unpack.push_back(std::chrono::duration<double>(t1 - t0).count());
    prepare.push_back(std::chrono::duration<double>(t2 - t1).count());
    backup.push_back(std::chrono::duration<double>(t3 - t2).count());
    restore.push_back(std::chrono::duration<double>(t3 - t0).count());
    restore_ratio.push_back(restore.back() / copy.back());
    restore_durable_ratio.push_back(restore.back() / durable_copy.back());
    if (int64_t n = CountRows(live); n != rows)
      Die("the restored copy holds " + std::to_string(n) + " rows, not " + std::to_string(rows));
    fs::remove_all(work);
    RemoveDb(live);

    {
      // The real binary against an external nats-server (each marmot would otherwise start its
      // own embedded server, and the new node would not see the first one's store).
      NatsServer nats(dir + "/run" + std::to_string(run));
      std::string log_a = dir + "/save.log", log_b = dir + "/bootstrap.log";
      std::ofstream(dir + "/a.toml") << NodeConfig(source, 1, nats.url());
      {
        // This run's nats-server is new: the stream the previous run's marmot recorded (with its
        // creation time) is gone, and marmot would rightly record a gap and refuse to save.
        Database db = OpenDb(source);
        Check(db.Exec(std::string("UPDATE ") + kPositionsTable + " SET seq = 0, stream_created = 0"),
              "resetting the stream position");
      }
      ::sync();
      t0 = Clock::now();
      pid_t pid = Spawn({o.marmot_binary, "-config", dir + "/a.toml", "-save-snapshot"}, log_a);
      // Not wait4's ru_maxrss: Linux carries the forking parent's (this program's) peak over
      // exec into it. VmHWM belongs to the exec'd image alone and only grows, so the last reading
      // before the exit is its peak (not the maximum of all readings: one taken between fork and
      // exec is this program's). Read every 10 ms: only a peak in the last 10 ms is missed.
      double save_hwm = 0;
      int status = 0;
      while (waitpid(pid, &status, WNOHANG) != pid) {
        if (double hwm = PeakRssMiB(pid); hwm > 0) save_hwm = hwm;  // the last reading: see above
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      marmot_save.push_back(SecondsSince(t0));
      Forget(pid);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Fail("marmot -save-snapshot failed; see " + log_a);
      marmot_save_rss.push_back(save_hwm);
      marmot_save_ratio.push_back(marmot_save.back() / vacuum.back());

      // A new node: an empty database file, the same NATS and store.
      std::string fresh = dir + "/new-node.db";
      RemoveDb(fresh);
      std::ofstream(fresh).close();
      std::ofstream(dir + "/b.toml") << NodeConfig(fresh, 2, nats.url());
      ::sync();
      t0 = Clock::now();
      pid = Spawn({o.marmot_binary, "-config", dir + "/b.toml"}, log_b);
      while (!LogContains(log_b, "restored snapshot")) {
        if (LogContains(log_b, "replaying the streams") || LogContains(log_b, "the database is as it was"))
          Fail("the new node did not restore the snapshot; see " + log_b);
        if (waitpid(pid, nullptr, WNOHANG) == pid) {
          Forget(pid);
          Fail("the new node exited; see " + log_b);
        }
        if (SecondsSince(t0) > 1200) Fail("the new node did not restore within 1200 s; see " + log_b);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      bootstrap.push_back(SecondsSince(t0));
      bootstrap_ratio.push_back(bootstrap.back() / copy.back());
      bootstrap_durable_ratio.push_back(bootstrap.back() / durable_copy.back());
      bootstrap_rss.push_back(PeakRssMiB(pid));
      Terminate(pid);
      if (int64_t n = CountRows(fresh); n != rows)
        Fail("the new node's database holds " + std::to_string(n) + " rows, not " + std::to_string(rows) +
             "; see " + log_b);
      RemoveDb(fresh);
    }
    fs::remove_all(dir + "/run" + std::to_string(run));
    std::fprintf(stderr,
                 "marmot_bench: snapshot run %d/%d: VACUUM INTO %.2f s, copy %.2f s; save %.2f s (%.2fx), "
                 "restore %.2f s (%.2fx: unpack %.2f, prepare %.2f, backup %.2f); marmot -save-snapshot "
                 "%.2f s (%.2fx, %.1f MiB), new node %.2f s (%.2fx, %.1f MiB)\n",
                 run + 1, o.runs, vacuum.back(), copy.back(), save.back(), save_ratio.back(), restore.back(),
                 restore_ratio.back(), unpack.back(), prepare.back(), backup.back(), marmot_save.back(),
                 marmot_save_ratio.back(), marmot_save_rss.back(), bootstrap.back(), bootstrap_ratio.back(),
                 bootstrap_rss.back());
  }
  RemoveScratchDir(dir);

  out->push_back({kName, "database_mib", db_mib, "MiB"});
  out->push_back({kName, "rows", static_cast<double>(rows), "rows"});
  out->push_back({kName, "vacuum_into_seconds", Median(vacuum), "s"});
  out->push_back({kName, "file_copy_seconds", Median(copy), "s"});
  out->push_back({kName, "durable_file_copy_seconds", Median(durable_copy), "s"});
  out->push_back({kName, "save_seconds", Median(save), "s"});
  out->push_back({kName, "ratio_save_to_vacuum_into", Median(save_ratio), "x"});
  out->push_back({kName, "compression_ratio", Median(compression), "x"});
  out->push_back({kName, "restore_seconds", Median(restore), "s"});
  out->push_back({kName, "restore_unpack_seconds", Median(unpack), "s"});
  out->push_back({kName, "restore_prepare_seconds", Median(prepare), "s"});
  out->push_back({kName, "restore_backup_seconds", Median(backup), "s"});
  out->push_back({kName, "ratio_restore_to_file_copy", Median(restore_ratio), "x"});
  out->push_back({kName, "ratio_restore_to_durable_copy", Median(restore_durable_ratio), "x"});
  out->push_back({kName, "marmot_save_seconds", Median(marmot_save), "s"});
  out->push_back({kName, "ratio_marmot_save_to_vacuum", Median(marmot_save_ratio), "x"});
  out->push_back({kName, "marmot_save_peak_rss", Median(marmot_save_rss), "MiB"});
  out->push_back({kName, "bootstrap_seconds", Median(bootstrap), "s"});
  out->push_back({kName, "ratio_bootstrap_to_copy", Median(bootstrap_ratio), "x"});
  out->push_back({kName, "ratio_bootstrap_to_durable_copy", Median(bootstrap_durable_ratio), "x"});
  out->push_back({kName, "bootstrap_peak_rss", Median(bootstrap_rss), "MiB"});
}

}  // namespace marmot::bench
