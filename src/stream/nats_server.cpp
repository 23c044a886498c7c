#include "stream/nats_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>

#include "telemetry/logging.h"
#include "util/host_port.h"
#include "util/process_lock.h"
#include "util/write_file.h"

namespace marmot {
namespace fs = std::filesystem;

namespace {

// The exit status of the child when it cannot execute nats-server (as a shell's 127).
constexpr int kCannotRun = 127;

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

std::string JoinQuoted(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + Quote(items[i]);
  return out + "]";
}

// RFC 3986 percent-encoding of everything but unreserved characters (a URL's user or password).
std::string PercentEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// `url` ("nats://host:port/") with "user:password@" after the scheme, for routes and leaf remotes
// to a server that requires credentials; unchanged without a user.
std::string WithCredentials(const std::string& url, const std::string& user, const std::string& password) {
  size_t scheme = url.find("://");
  if (user.empty() || scheme == std::string::npos || url.find('@') != std::string::npos) return url;
  return url.substr(0, scheme + 3) + PercentEncode(user) + ":" + PercentEncode(password) + "@" +
         url.substr(scheme + 3);
}

// Parses "dns://name:port/?min=N&interval_ms=M".
struct DnsPeer {
  std::string name;
  int port = 0;
  int min = 1;
  int interval_ms = 1000;
};

Result<DnsPeer> ParseDnsPeer(const std::string& url) {
  DnsPeer peer;
  std::string rest = url.substr(6);  // after dns://
  std::string query;
  size_t q = rest.find('?');
  if (q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  Result<HostPort> address = ParseHostPort(rest);
  if (!address.ok() || address->port <= 0)
    return Status::Error("peer " + url + ": expected dns://name:port/?min=N&interval_ms=M");
  peer.name = address->host;
  peer.port = address->port;
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    std::string kv = query.substr(start, end == std::string::npos ? std::string::npos : end - start);
    size_t eq = kv.find('=');
    std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    try {
      if (key == "min")
        peer.min = std::stoi(value);
      else if (key == "interval_ms")
        peer.interval_ms = std::stoi(value);
      else
        return Status::Error("peer " + url + ": unknown parameter '" + key + "' (allowed: min, interval_ms)");
    } catch (const std::exception&) {
      return Status::Error("peer " + url + ": parameter '" + key + "' needs a number");
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return peer;
}

std::set<std::string> Resolve(const std::string& name, int port) {
  std::set<std::string> out;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* raw = nullptr;
  if (getaddrinfo(name.c_str(), nullptr, &hints, &raw) != 0) return out;
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> res(raw, freeaddrinfo);
  for (addrinfo* ai = res.get(); ai; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (ai->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, buf, sizeof(buf));
      out.insert("nats://" + JoinHostPort(buf, port));
    } else if (ai->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, buf, sizeof(buf));
      out.insert("nats://" + JoinHostPort(buf, port));
    }
  }
  return out;
}

}  // namespace

Result<std::vector<std::string>> ResolvePeers(const std::vector<std::string>& peers, int timeout_ms) {
  std::vector<std::string> out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (const std::string& peer : peers) {
    if (peer.rfind("dns://", 0) != 0) {
      out.push_back(peer);
      continue;
    }
    Result<DnsPeer> dns = ParseDnsPeer(peer);
    if (!dns.ok()) return dns.status();
    while (true) {
      std::set<std::string> found = Resolve(dns->name, dns->port);
      if (static_cast<int>(found.size()) >= dns->min) {
        out.insert(out.end(), found.begin(), found.end());
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return Status::Error("peer " + peer + ": found " + std::to_string(found.size()) +
                             " address(es), need " + std::to_string(dns->min));
      }
      spdlog::info("peer {}: {} of {} addresses so far, asking again in {} ms", peer, found.size(), dns->min,
                   dns->interval_ms);
      std::this_thread::sleep_for(std::chrono::milliseconds(dns->interval_ms));
    }
  }
  return out;
}

Result<std::unique_ptr<EmbeddedNatsServer>> EmbeddedNatsServer::Start(const EmbeddedNatsOptions& options) {
  std::unique_ptr<EmbeddedNatsServer> server(new EmbeddedNatsServer(options));
  Result<HostPort> bind = ParseHostPort(options.bind_address);
  if (!bind.ok()) return bind.status().WithContext("[nats] bind_address");
  server->client_host_ = bind->host.empty() ? "0.0.0.0" : bind->host;
  server->client_port_ = bind->port;
  // Open to the network without credentials: anyone who reaches the port reads and writes every
  // replicated row (and can delete the streams). Allowed, but said loudly.
  if (options.user_name.empty() && options.ca_file.empty() && options.server_config.empty()) {
    if (!IsLoopbackHost(server->client_host_)) {
      spdlog::warn(
          "the embedded NATS server listens on {} ([nats] bind_address) without credentials: every machine "
          "that reaches it can read and change the replicated data. Set [nats] user_name and user_password "
          "(and TLS through [nats] server_config), or bind to 127.0.0.1",
          JoinHostPort(server->client_host_, server->client_port_));
    }
    Result<HostPort> cluster = ParseHostPort(options.cluster_address.value_or("127.0.0.1:0"));
    if (cluster.ok() && !IsLoopbackHost(cluster->host)) {
      spdlog::warn(
          "the embedded NATS server accepts cluster routes and leaf nodes on {} (-cluster-addr) without "
          "credentials: any machine that reaches it can join the cluster. Set [nats] user_name and "
          "user_password",
          *options.cluster_address);
    }
  }
  // One server per store directory: two would corrupt each other's streams.
  std::error_code ec;
  fs::create_directories(options.work_dir, ec);
  if (ec) return Status::IoError("creating NATS directory " + options.work_dir + ": " + ec.message());
  std::string store = (fs::path(options.work_dir) / options.server_name).string();
  Result<ProcessLock> lock =
      ProcessLock::Acquire(store + ".lock", "the embedded NATS store " + store + " (node id in use twice?)");
  if (!lock.ok()) return lock.status();
  server->store_lock_.emplace(std::move(*lock));
  MARMOT_RETURN_IF_ERROR(server->WriteConfig());
  MARMOT_RETURN_IF_ERROR(server->Spawn());
  MARMOT_RETURN_IF_ERROR(server->WaitUntilListening());
  // Later restarts reuse the port it picked, so client connections can reconnect.
  server->client_port_ = server->listening_port_;
  MARMOT_RETURN_IF_ERROR(server->WriteConfig());
  server->supervisor_ = std::thread([s = server.get()] { s->Supervise(); });
  return server;
}

Status EmbeddedNatsServer::WriteConfig() {
  std::error_code ec;
  fs::path store = fs::path(options_.work_dir) / options_.server_name;
  fs::create_directories(store, ec);
  if (ec) return Status::Error("creating NATS store directory " + store.string() + ": " + ec.message());
  config_path_ = (fs::path(options_.work_dir) / (options_.server_name + ".conf")).string();

  // One TLS block for clients, routes and leaf nodes; empty without a certificate.
  std::string tls;
  if (!options_.cert_file.empty()) {
    tls = "tls {\n  cert_file: " + Quote(fs::absolute(options_.cert_file).string()) +
          "\n  key_file: " + Quote(fs::absolute(options_.key_file).string()) + "\n";
    if (!options_.ca_file.empty()) {
      tls += "  ca_file: " + Quote(fs::absolute(options_.ca_file).string()) + "\n  verify: true\n";
    }
    tls += "  timeout: 5\n}\n";
  }
  // The same files when this server connects to a leaf-node hub.
  std::string remote_tls;
  if (!options_.cert_file.empty()) {
    remote_tls =
        ", tls: { cert_file: " + Quote(fs::absolute(options_.cert_file).string()) +
        ", key_file: " + Quote(fs::absolute(options_.key_file).string()) +
        (options_.ca_file.empty() ? "" : ", ca_file: " + Quote(fs::absolute(options_.ca_file).string())) +
        " }";
  }
  std::string conf = "# Generated by marmot on every start; edit [nats] server_config instead.\n";
  conf += "server_name: " + Quote(options_.server_name) + "\n";
  conf += "listen: " + Quote(JoinHostPort(client_host_, client_port_)) + "\n";
  bool leaf_only = !options_.cluster_address && !options_.leaf_servers.empty();
  if (leaf_only) {
    // No JetStream of its own: its clients' JetStream requests go to the hub's domain, over the
    // leaf connection, so the whole cluster has one copy (and one order) of every stream.
    conf += "mappings = { \"$JS.API.>\": " + Quote("$JS." + options_.jetstream_domain + ".API.>") + " }\n";
  } else {
    conf += "jetstream {\n  store_dir: " + Quote(store.string()) + "\n";
    // A cluster names its domain, which leaf-only nodes use (above).
    if (options_.cluster_address) conf += "  domain: " + Quote(options_.jetstream_domain) + "\n";
    conf += "}\n";
  }
  if (!options_.user_name.empty()) {
    conf += "authorization {\n  user: " + Quote(options_.user_name) +
            "\n  password: " + Quote(options_.user_password) + "\n}\n";
  }
  conf += tls;
  if (options_.cluster_address) {
    Result<HostPort> cluster = ParseHostPort(*options_.cluster_address);
    if (!cluster.ok()) return cluster.status().WithContext("-cluster-addr");
    if (cluster->port <= 0 || cluster->port >= 65535) {
      return Status::Error("-cluster-addr " + *options_.cluster_address +
                           ": needs a fixed port from 1 to 65534 (leaf nodes listen on port + 1)");
    }
    Result<std::vector<std::string>> routes = ResolvePeers(options_.cluster_peers, 60000);
    if (!routes.ok()) return routes.status().WithContext("-cluster-peers");
    conf += "cluster {\n  name: \"e-marmot\"\n  listen: " + Quote(*options_.cluster_address) + "\n";
    // Routes present the cluster's credentials (the file is 0600).
    for (std::string& route : *routes)
      route = WithCredentials(route, options_.user_name, options_.user_password);
    if (!routes->empty()) conf += "  routes: " + JoinQuoted(*routes) + "\n";
    if (!options_.user_name.empty()) {
      conf += "  authorization {\n    user: " + Quote(options_.user_name) +
              "\n    password: " + Quote(options_.user_password) + "\n  }\n";
    }
    conf += tls;
    conf += "}\n";
    conf += "leafnodes {\n  listen: " + Quote(JoinHostPort(cluster->host, cluster->port + 1)) + "\n";
    if (!options_.user_name.empty()) {
      conf += "  authorization {\n    user: " + Quote(options_.user_name) +
              "\n    password: " + Quote(options_.user_password) + "\n  }\n";
    }
    conf += tls;
    if (!options_.leaf_servers.empty()) {
      Result<std::vector<std::string>> leafs = ResolvePeers(options_.leaf_servers, 60000);
      if (!leafs.ok()) return leafs.status().WithContext("-leaf-servers");
      conf += "  remotes: [\n";
      for (const std::string& url : *leafs)
        conf += "    { url: " + Quote(WithCredentials(url, options_.user_name, options_.user_password)) +
                remote_tls + " }\n";
      conf += "  ]\n";
    }
    conf += "}\n";
  } else if (!options_.leaf_servers.empty()) {
    Result<std::vector<std::string>> leafs = ResolvePeers(options_.leaf_servers, 60000);
    if (!leafs.ok()) return leafs.status().WithContext("-leaf-servers");
    conf += "leafnodes {\n  remotes: [\n";
    for (const std::string& url : *leafs)
      conf += "    { url: " + Quote(WithCredentials(url, options_.user_name, options_.user_password)) +
              remote_tls + " }\n";
    conf += "  ]\n}\n";
  }
  if (!options_.server_config.empty()) {
    // nats-server resolves include paths relative to the including file.
    fs::path rel = fs::relative(fs::absolute(options_.server_config), fs::path(options_.work_dir), ec);
    if (ec || rel.empty())
      return Status::Error("[nats] server_config " + options_.server_config + ": cannot include it");
    conf += "include " + Quote(rel.string()) + "\n";
  }
  // 0600 from the start: it may hold a password.
  return WriteFileWithMode(config_path_, conf, 0600).WithContext("writing NATS server config");
}

Status EmbeddedNatsServer::Spawn() {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return Status::Error(std::string("pipe: ") + std::strerror(errno));
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);  // closed on every early return
  pid_t parent = getpid();
  pid_t child = fork();
  if (child < 0) return Status::Error(std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    // Child: die with marmot, whatever kills marmot.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    dup2(write_end.get(), STDOUT_FILENO);
    dup2(write_end.get(), STDERR_FILENO);
    setpgid(0, 0);  // a Ctrl-C in marmot's terminal reaches marmot only; marmot stops the server
    execlp(options_.server_binary.c_str(), options_.server_binary.c_str(), "-c", config_path_.c_str(),
           nullptr);
    // "[ERR]": forwarded at error level (ForwardOutput), like nats-server's own errors.
    std::fprintf(stderr, "[ERR] cannot run %s: %s\n", options_.server_binary.c_str(), std::strerror(errno));
    _exit(kCannotRun);
  }
  write_end.Reset();  // the child holds it now; the reader sees EOF when the child exits
  pid_.store(child);
  if (reader_.joinable()) reader_.join();
  reader_ = std::thread([this, fd = std::move(read_end)]() mutable { ForwardOutput(std::move(fd)); });
  spdlog::info("started nats-server (pid {}) with config {}", child, config_path_);
  return Status();
}

void EmbeddedNatsServer::ForwardOutput(UniqueFd fd) {
  auto log = TaggedLogger("nats");
  std::string pending;
  char buf[4096];
  while (true) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      bool error = line.find("[ERR]") != std::string::npos || line.find("[FTL]") != std::string::npos;
      bool warn = line.find("[WRN]") != std::string::npos;
      // While a cluster forms, peers that are not up yet refuse routes; only a peer that stays
      // away is worth a warning.
      size_t attempt = line.find("connect to route (attempt ");
      if (error && attempt != std::string::npos) {
        error = false;
        warn = std::atoi(line.c_str() + attempt + 26) > 10;
      }
      // A client connection refused (bad password, certificate, TLS) is the client's fault, and
      // the client is told; on this node it is worth a warning, not its "last error".
      if (error && line.find(" - cid:") != std::string::npos) {
        error = false;
        warn = true;
      }
      if (error)
        log->error("{}", line);
      else if (warn)
        log->warn("{}", line);
      else
        log->debug("{}", line);
      const std::string kListening = "Listening for client connections on ";
      size_t at = line.find(kListening);
      if (at != std::string::npos) {
        Result<HostPort> addr = ParseHostPort(line.substr(at + kListening.size()));
        std::lock_guard<std::mutex> lock(mu_);
        if (addr.ok()) listening_port_ = addr->port;
      }
      if (line.find("Server is ready") != std::string::npos) {
        std::lock_guard<std::mutex> lock(mu_);
        listening_ = true;
        cv_.notify_all();
      }
    }
  }
}

Status EmbeddedNatsServer::WaitUntilListening() {
  std::unique_lock<std::mutex> lock(mu_);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!listening_) {
    // Woken when the server listens; every 100 ms it also looks whether the server exited.
    cv_.wait_until(lock,
                   std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
    if (listening_) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Error(
          "nats-server did not become ready within 30 s (see the [nats] log lines above; config " +
          config_path_ + ")");
    }
    int status = 0;
    if (waitpid(pid_.load(), &status, WNOHANG) == pid_.load()) {
      pid_.store(-1);
      if (WIFEXITED(status) && WEXITSTATUS(status) == kCannotRun) {
        return Status::Error("cannot run " + options_.server_binary +
                             " (see the [nats] log line above): install nats-server (Debian: apt install "
                             "nats-server) or put it on PATH");
      }
      return Status::Error("nats-server exited at start (see the [nats] log lines above; config " +
                           config_path_ + ")");
    }
  }
  return Status();
}

void EmbeddedNatsServer::Supervise() {
  auto backoff = std::chrono::seconds(1);
  while (!stopping_.load()) {
    int status = 0;
    pid_t pid = pid_.load();
    pid_t done = waitpid(pid, &status, 0);
    if (done != pid) continue;
    if (stopping_.load()) return;
    spdlog::error("nats-server (pid {}) exited unexpectedly ({} {}); restarting in {} s", pid,
                  WIFSIGNALED(status) ? "signal" : "status",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), backoff.count());
    for (int i = 0; i < backoff.count() * 10 && !stopping_.load(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (stopping_.load()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      listening_ = false;
    }
    Status s = Spawn();
    if (s.ok()) s = WaitUntilListening();
    if (s.ok()) {
      spdlog::info("nats-server is back (pid {})", pid_.load());
      restarts_.fetch_add(1);
      backoff = std::chrono::seconds(1);
    } else {
      spdlog::error("restarting nats-server: {}", s.message());
      backoff = std::min(backoff * 2, std::chrono::seconds(30));
    }
  }
}

std::string EmbeddedNatsServer::client_url() const {
  std::string host = client_host_ == "0.0.0.0" || client_host_.empty() ? "127.0.0.1" : client_host_;
  return "nats://" + JoinHostPort(host, client_port_);
}

EmbeddedNatsServer::~EmbeddedNatsServer() {
  stopping_.store(true);
  pid_t pid = pid_.load();
  if (pid > 0) {
    kill(pid, SIGTERM);
    // The supervisor thread is blocked in waitpid and reaps the child; wait up to 10 s for it.
    for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) {
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (kill(pid, 0) == 0) {
      spdlog::warn("nats-server (pid {}) did not stop within 10 s; killing it", pid);
      kill(pid, SIGKILL);
    }
  }
  if (supervisor_.joinable()) supervisor_.join();
  if (reader_.joinable()) reader_.join();
}

}  // namespace marmot
