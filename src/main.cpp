// marmot: keeps many copies of one SQLite database in sync over NATS JetStream.
//
// Exit codes: 0 after a clean stop (SIGINT/SIGTERM) or a finished one-shot command; 1 when the
// node cannot start or run (database, NATS); 2 for bad flags or configuration. `marmot verify`
// has its own: 0 agree, 1 differ, 2 could not ask (verify/verify_command.h).
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "config/config.h"
#include "config/flags.h"
#include "db/capture.h"
#include "db/sqlite.h"
#include "git_commit.h"  // generated at build time (cmake/git_commit.cmake)
#include "node/dead_letter_command.h"
#include "node/node.h"
#include "node/status_command.h"
#include "telemetry/logging.h"
#include "util/process_lock.h"
#include "verify/verify_command.h"
#include "verify/verify_protocol.h"

namespace marmot {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Set when the database file was deleted or replaced under the node: the stop then exits 1.
std::atomic<bool> g_database_lost{false};

int Cleanup(const Config& config) {
  if (!std::filesystem::exists(config.db_path)) {
    spdlog::error("-cleanup: database {} does not exist", config.db_path);
    return kExitFailure;
  }
  // Not while a node runs on it: it would go on writing to the tables removed here.
  Result<ProcessLock> lock =
      ProcessLock::Acquire(DatabaseLockPath(config.db_path), "database " + config.db_path);
  if (!lock.ok()) {
    spdlog::error("-cleanup: {}", lock.status().message());
    return kExitFailure;
  }
  Result<Database> db = Database::Open(config.db_path);
  if (!db.ok()) {
    spdlog::error("-cleanup: {}", db.status().message());
    return kExitFailure;
  }
  Status s = RemoveCapture(*db);
  if (!s.ok()) {
    spdlog::error("-cleanup: {}", s.message());
    return kExitFailure;
  }
  spdlog::info("removed marmot's triggers and tables from {}", config.db_path);
  return 0;
}

// The [nats] credentials: user + password, NKey seed, TLS files.
void SetNatsCredentials(const Config& c, NatsClientOptions* o) {
  o->user_name = c.nats.user_name;
  o->user_password = c.nats.user_password;
  o->seed_file = c.nats.seed_file;
  o->ca_file = c.nats.ca_file;
  o->cert_file = c.nats.cert_file;
  o->key_file = c.nats.key_file;
}

// `marmot verify`: finds the nodes' NATS (-nats-url, [nats] urls, or the URL the local node's
// embedded server left next to the database) and compares the nodes (docs/VERIFY.md).
// The nodes' NATS for a command (`command`: "verify", "status"): -nats-url, [nats] urls, or the
// URL the local node's embedded server left next to the database. False (after saying why) when
// there is none.
bool FindNodesNats(const Config& c, const CommandLine& flags, const std::string& command,
                   NatsClientOptions* o) {
  if (!flags.nats_url.empty()) {
    o->urls = {flags.nats_url};
  } else if (!c.nats.urls.empty()) {
    o->urls = c.nats.urls;
  } else {
    std::ifstream file(NodeNatsUrlPath(c.db_path));
    std::string url;
    if (!(file >> url)) {
      std::fprintf(stderr,
                   "marmot %s: no [nats] urls in the configuration and no node running on %s here "
                   "(%s is missing); give -nats-url nats://HOST:PORT of any node's NATS\n",
                   command.c_str(), c.db_path.c_str(), NodeNatsUrlPath(c.db_path).c_str());
      return false;
    }
    o->urls = {url};
  }
  SetNatsCredentials(c, o);
  o->name = "marmot-" + command;
  o->connect_retries = 1;
  return true;
}

// `marmot status`: the cluster's heartbeats as a table (node/status_command.h).
int ClusterStatus(const Config& c, const CommandLine& flags) {
  if (!c.logging.verbose) spdlog::set_level(spdlog::level::warn);  // the table is the output
  StatusCommand s;
  if (!FindNodesNats(c, flags, "status", &s.nats)) return kStatusCannotAsk;
  s.stream_prefix = c.nats.stream_prefix;
  return RunStatusCommand(s);
}

int Verify(const Config& c, const CommandLine& flags) {
  if (!c.logging.verbose) spdlog::set_level(spdlog::level::warn);  // the report is the output
  VerifyOptions o;
  if (!FindNodesNats(c, flags, "verify", &o.nats)) return kVerifyCannotAsk;
  o.layout.stream_prefix = c.nats.stream_prefix;
  o.layout.subject_prefix = c.nats.subject_prefix;
  o.layout.shards = static_cast<int>(c.replication_log.shards);
  o.expected_nodes = flags.verify_nodes;
  if (flags.verify_wait) o.wait = std::chrono::seconds(*flags.verify_wait);
  o.repair_from = flags.repair_from;
  return RunVerify(o);
}

NodeOptions ToNodeOptions(const Config& c, const CommandLine& flags) {
  NodeOptions o;
  o.db_path = c.db_path;
  o.node_id = c.node_id;
  o.publish = c.publish;
  o.replicate = c.replicate;
  o.scan_max_changes = static_cast<size_t>(c.scan_max_changes);
  o.cleanup_interval = c.cleanup_interval;
  o.polling_interval = c.polling_interval;
  o.selection.include = c.replication.include;
  o.selection.exclude = c.replication.exclude;
  o.layout.stream_prefix = c.nats.stream_prefix;
  o.layout.subject_prefix = c.nats.subject_prefix;
  o.layout.shards = static_cast<int>(c.replication_log.shards);
  o.layout.replicas = EffectiveReplicas(c.replication_log);
  o.layout.max_entries = c.replication_log.max_entries;
  o.layout.compress = c.replication_log.compress;
  o.layout.update_existing = c.replication_log.update_existing;
  o.max_message_bytes = static_cast<size_t>(c.replication_log.max_message_bytes);
  o.max_batch_bytes = static_cast<size_t>(c.replication_log.max_batch_bytes);
  o.nats.urls = c.nats.urls;
  o.nats.name = "marmot-node-" + std::to_string(c.node_id);
  SetNatsCredentials(c, &o.nats);
  o.nats.connect_retries = static_cast<int>(c.nats.connect_retries);
  o.nats.reconnect_wait = std::chrono::seconds(c.nats.reconnect_wait_seconds);
  if (c.nats.urls.empty()) {
    EmbeddedNatsOptions e;
    e.server_name = "marmot-node-" + std::to_string(c.node_id);
    e.work_dir = (std::filesystem::absolute(c.db_path).parent_path() / "nats").string();
    e.bind_address = c.nats.bind_address;
    e.cluster_address = flags.cluster_addr;
    e.cluster_peers = flags.cluster_peers;
    e.leaf_servers = flags.leaf_servers;
    e.jetstream_domain = c.nats.jetstream_domain;
    e.server_config = c.nats.server_config;
    e.user_name = c.nats.user_name;
    e.user_password = c.nats.user_password;
    e.cert_file = c.nats.cert_file;
    e.key_file = c.nats.key_file;
    e.ca_file = c.nats.ca_file;
    o.embedded = e;
  }
  o.snapshot = c.snapshot;
  o.snapshot_bucket = SnapshotBucket(c);
  o.lease_bucket = c.nats.stream_prefix + "-snapshot-lease";
  o.sleep_timeout = c.sleep_timeout;
  o.prometheus = c.prometheus;
  o.on_sleep_timeout = [] { ::kill(::getpid(), SIGTERM); };  // the signal waiter stops the node
  o.on_database_lost = [] {
    g_database_lost.store(true);
    ::kill(::getpid(), SIGTERM);
  };
  return o;
}

int Run(int argc, char** argv) {
  Result<CommandLine> flags = ParseFlags(std::vector<std::string>(argv + 1, argv + argc));
  if (!flags.ok()) {
    std::fprintf(stderr, "marmot: %s\n", flags.status().message().c_str());
    return kExitUsage;
  }
  if (flags->help) {
    std::fputs(FlagUsage().c_str(), stdout);
    return 0;
  }
  if (flags->version) {
    std::printf("marmot %s (commit %s)\n", MARMOT_VERSION, MARMOT_GIT_COMMIT);
    return 0;
  }
  Result<Config> config =
      flags->config_path.empty() ? ParseConfigToml("", "(defaults)") : LoadConfigFile(flags->config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "marmot: %s\n", config.status().message().c_str());
    return kExitUsage;
  }
  ApplyFlags(*flags, &*config);
  ConfigureSqliteForMarmot();
  SetupLogging(config->logging.verbose, config->logging.format);
  if (flags->cleanup) return Cleanup(*config);
  if (flags->verify) return Verify(*config, *flags);
  if (flags->command == "status") return ClusterStatus(*config, *flags);
  if (flags->command == "dead-letter") {
    DeadLetterCommand d;
    d.db_path = config->db_path;
    d.action = flags->dead_letter_action;
    d.table = flags->dead_letter_table;
    d.id = flags->dead_letter_id;
    d.all = flags->dead_letter_all;
    d.limit = flags->dead_letter_limit;
    return RunDeadLetterCommand(d);
  }
  if (flags->save_snapshot && !config->snapshot.enabled) {
    spdlog::error("-save-snapshot: snapshots are disabled in the configuration ([snapshot] enabled = false)");
    return kExitFailure;
  }
  if (config->nats.urls.empty() && flags->cluster_addr && flags->cluster_peers.empty()) {
    spdlog::error(
        "-cluster-addr without -cluster-peers: a clustered JetStream needs routes to its peers; "
        "give -cluster-peers, or drop -cluster-addr for a single node");
    return kExitUsage;
  }

  // Signals are taken by sigwait below; every thread started from here on inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGUSR1);  // internal: wakes the signal waiter when the start fails
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // A signal during the start (which may wait for NATS, or recover what a crash left) cancels it.
  std::atomic<bool> cancel{false};
  std::atomic<int> received{0};
  std::atomic<bool> start_failed{false};
  std::thread waiter([&] {
    int sig = 0;
    do {
      sigwait(&stop_signals, &sig);
    } while (sig == SIGUSR1 && !start_failed.load());
    if (sig == SIGUSR1) return;
    received.store(sig);
    cancel.store(true);
  });
  Result<std::unique_ptr<Node>> node = Node::Start(ToNodeOptions(*config, *flags), &cancel);
  if (!node.ok()) {
    bool signalled = received.load() != 0;
    if (signalled) {
      spdlog::info("stopped during start: {}", node.status().message());
    } else {
      spdlog::error("cannot start: {}", node.status().message());
      start_failed.store(true);
      pthread_kill(waiter.native_handle(), SIGUSR1);  // wakes the waiter
    }
    waiter.join();
    return signalled ? 0 : kExitFailure;
  }
  if (flags->save_snapshot) {
    // Save, upload, exit: 0 when the snapshot is stored, 1 with the reason when not.
    Status saved = (*node)->SaveSnapshot(std::chrono::seconds(60));
    if (!saved.ok()) spdlog::error("-save-snapshot: {}", saved.message());
    (*node)->Stop();
    start_failed.store(true);
    pthread_kill(waiter.native_handle(), SIGUSR1);
    waiter.join();
    return saved.ok() ? 0 : kExitFailure;
  }
  waiter.join();
  int sig = received.load();
  if (!g_database_lost.load()) spdlog::info("received {}", sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*node)->Stop();
  return g_database_lost.load() ? kExitFailure : 0;
}

}  // namespace
}  // namespace marmot

int main(int argc, char** argv) { return marmot::Run(argc, argv); }
