// EmbeddedNatsServer: runs and supervises a nats-server child process for one marmot node.
//
// Used when [nats] urls is empty. The generated configuration (written next to the JetStream
// store, <dir of db_path>/nats/<server name>.conf) names the server marmot-node-<node id>, turns
// JetStream on with its store in <dir of db_path>/nats/<server name>, listens for clients on
// bind_address (loopback and a random port unless configured), and with a cluster address opens
// the cluster listener (cluster e-marmot) plus a leaf-node listener on port + 1. A user's
// server_config file is included at the end, so its settings win.
//
// The generated configuration may hold the user's password: it is written with mode 0600 from the
// moment it exists (util/write_file.h).
//
// The child gets SIGKILL when marmot dies (PR_SET_PDEATHSIG), so it never outlives marmot, even
// after a SIGKILL of marmot. Its output is logged with the tag "nats". If it exits while marmot
// runs, it is restarted with backoff (1 s doubling to 30 s) on the same client port.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "util/process_lock.h"
#include "util/status.h"
#include "util/unique_fd.h"

namespace marmot {

struct EmbeddedNatsOptions {
  std::string server_name;                     // marmot-node-<node id>
  std::string work_dir;                        // <dir of db_path>/nats
  std::string bind_address = "127.0.0.1:-1";   // host:port for clients, port -1 = random
  std::optional<std::string> cluster_address;  // host:port; leaf-node listener on port + 1
  std::vector<std::string> cluster_peers;      // nats://host:port or dns://name:port/?min=N&interval_ms=M
  std::vector<std::string> leaf_servers;       // same syntax
  // With cluster_address: this server's JetStream domain. Without cluster_address but with
  // leaf_servers: the hub's domain, whose JetStream this server's clients use (it has none).
  std::string jetstream_domain = "marmot";
  std::string server_config;             // optional nats-server config file to include
  std::string user_name, user_password;  // required from clients when set
  // TLS ([nats] cert_file, key_file, ca_file): with a certificate, clients, cluster routes and leaf
  // connections use TLS; with a CA too, the peer must present a certificate that CA signed.
  std::string cert_file, key_file, ca_file;
  std::string server_binary = "nats-server";
};

class EmbeddedNatsServer {
 public:
  // Starts the server and waits until it accepts clients (not yet until JetStream has a leader:
  // the caller checks that through its client connection).
  static Result<std::unique_ptr<EmbeddedNatsServer>> Start(const EmbeddedNatsOptions& options);
  ~EmbeddedNatsServer();  // stops the server: SIGTERM, then SIGKILL after 10 s
  EmbeddedNatsServer(const EmbeddedNatsServer&) = delete;
  EmbeddedNatsServer& operator=(const EmbeddedNatsServer&) = delete;

  // nats://host:port of the client listener.
  std::string client_url() const;
  pid_t pid() const { return pid_.load(); }
  // Times the server was started again after it exited on its own.
  uint64_t restarts() const { return restarts_.load(); }

 private:
  explicit EmbeddedNatsServer(EmbeddedNatsOptions options) : options_(std::move(options)) {}
  Status WriteConfig();
  Status Spawn();  // fork/exec; starts the output reader thread
  Status WaitUntilListening();
  void ForwardOutput(UniqueFd fd);  // runs on reader_, logs lines, learns the client port
  void Supervise();                 // runs on supervisor_, restarts on unexpected exit

  EmbeddedNatsOptions options_;
  std::optional<ProcessLock> store_lock_;  // held while this object lives
  std::string config_path_;
  std::string client_host_;
  int client_port_ = -1;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool listening_ = false;
  int listening_port_ = 0;
  std::atomic<pid_t> pid_{-1};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> restarts_{0};
  std::thread reader_;
  std::thread supervisor_;
};

// Expands `dns://name:port/?min=N&interval_ms=M` entries into nats://ip:port routes by resolving
// A/AAAA records until at least N addresses are found (re-querying every M ms, default 1 and
// 1000); nats:// entries pass through. Gives up after `timeout`.
Result<std::vector<std::string>> ResolvePeers(const std::vector<std::string>& peers, int timeout_ms);

}  // namespace marmot
