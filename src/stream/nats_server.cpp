#include "stream/nats_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "telemetry/logging.h"

namespace marmot {
namespace fs = std::filesystem;

Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return Status::Error("'" + address + "' is not host:port");
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  try {
    size_t used = 0;
    *port = std::stoi(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1 || *port < -1 || *port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    return Status::Error("'" + address + "' has no valid port (0-65535, or -1 for a random one)");
  }
  return Status();
}

namespace {

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
  Status s = SplitHostPort(rest, &peer.name, &peer.port);
  if (!s.ok() || peer.port <= 0)
    return Status::Error("peer " + url + ": expected dns://name:port/?min=N&interval_ms=M");
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
  addrinfo* res = nullptr;
  if (getaddrinfo(name.c_str(), nullptr, &hints, &res) != 0) return out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (ai->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, buf, sizeof(buf));
      out.insert("nats://" + std::string(buf) + ":" + std::to_string(port));
    } else if (ai->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, buf, sizeof(buf));
      out.insert("nats://[" + std::string(buf) + "]:" + std::to_string(port));
    }
  }
  freeaddrinfo(res);
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
  MARMOT_RETURN_IF_ERROR(SplitHostPort(options.bind_address, &server->client_host_, &server->client_port_)
                             .WithContext("[nats] bind_address"));
  if (server->client_host_.empty()) server->client_host_ = "0.0.0.0";
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

  std::string conf = "# Generated by marmot on every start; edit [nats] server_config instead.\n";
  conf += "server_name: " + Quote(options_.server_name) + "\n";
  conf += "listen: " + Quote(client_host_ + ":" + std::to_string(client_port_)) + "\n";
  conf += "jetstream {\n  store_dir: " + Quote(store.string()) + "\n}\n";
  if (!options_.user_name.empty()) {
    conf += "authorization {\n  user: " + Quote(options_.user_name) +
            "\n  password: " + Quote(options_.user_password) + "\n}\n";
  }
  if (options_.cluster_address) {
    std::string host;
    int port = 0;
    MARMOT_RETURN_IF_ERROR(
        SplitHostPort(*options_.cluster_address, &host, &port).WithContext("-cluster-addr"));
    if (port <= 0)
      return Status::Error("-cluster-addr " + *options_.cluster_address + ": needs a fixed port");
    Result<std::vector<std::string>> routes = ResolvePeers(options_.cluster_peers, 60000);
    if (!routes.ok()) return routes.status().WithContext("-cluster-peers");
    conf += "cluster {\n  name: \"e-marmot\"\n  listen: " + Quote(*options_.cluster_address) + "\n";
    if (!routes->empty()) conf += "  routes: " + JoinQuoted(*routes) + "\n";
    if (!options_.user_name.empty()) {
      conf += "  authorization {\n    user: " + Quote(options_.user_name) +
              "\n    password: " + Quote(options_.user_password) + "\n  }\n";
    }
    conf += "}\n";
    conf += "leafnodes {\n  listen: " + Quote(host + ":" + std::to_string(port + 1)) + "\n";
    if (!options_.leaf_servers.empty()) {
      Result<std::vector<std::string>> leafs = ResolvePeers(options_.leaf_servers, 60000);
      if (!leafs.ok()) return leafs.status().WithContext("-leaf-servers");
      conf += "  remotes: [\n";
      for (const std::string& url : *leafs) conf += "    { url: " + Quote(url) + " }\n";
      conf += "  ]\n";
    }
    conf += "}\n";
  } else if (!options_.leaf_servers.empty()) {
    Result<std::vector<std::string>> leafs = ResolvePeers(options_.leaf_servers, 60000);
    if (!leafs.ok()) return leafs.status().WithContext("-leaf-servers");
    conf += "leafnodes {\n  remotes: [\n";
    for (const std::string& url : *leafs) conf += "    { url: " + Quote(url) + " }\n";
    conf += "  ]\n}\n";
  }
  if (!options_.server_config.empty()) {
    // nats-server resolves include paths relative to the including file.
    fs::path rel = fs::relative(fs::absolute(options_.server_config), fs::path(options_.work_dir), ec);
    if (ec || rel.empty())
      return Status::Error("[nats] server_config " + options_.server_config + ": cannot include it");
    conf += "include " + Quote(rel.string()) + "\n";
  }
  std::ofstream out(config_path_, std::ios::trunc);
  out << conf;
  out.close();
  if (!out) return Status::Error("writing NATS server config " + config_path_);
  chmod(config_path_.c_str(), 0600);  // may hold a password
  return Status();
}

Status EmbeddedNatsServer::Spawn() {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return Status::Error(std::string("pipe: ") + std::strerror(errno));
  pid_t parent = getpid();
  pid_t child = fork();
  if (child < 0) return Status::Error(std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    // Child: die with marmot, whatever kills marmot.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    setpgid(0, 0);  // a Ctrl-C in marmot's terminal reaches marmot only; marmot stops the server
    execlp(options_.server_binary.c_str(), options_.server_binary.c_str(), "-c", config_path_.c_str(),
           nullptr);
    std::fprintf(stderr, "cannot run %s: %s\n", options_.server_binary.c_str(), std::strerror(errno));
    _exit(127);
  }
  close(pipe_fds[1]);
  pid_.store(child);
  if (reader_.joinable()) reader_.join();
  reader_ = std::thread([this, fd = pipe_fds[0]] { ForwardOutput(fd); });
  spdlog::info("started nats-server (pid {}) with config {}", child, config_path_);
  return Status();
}

void EmbeddedNatsServer::ForwardOutput(int fd) {
  auto log = TaggedLogger("nats");
  std::string pending;
  char buf[4096];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
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
      if (error)
        log->error("{}", line);
      else if (warn)
        log->warn("{}", line);
      else
        log->debug("{}", line);
      const std::string kListening = "Listening for client connections on ";
      size_t at = line.find(kListening);
      if (at != std::string::npos) {
        std::string addr = line.substr(at + kListening.size());
        size_t colon = addr.rfind(':');
        std::lock_guard<std::mutex> lock(mu_);
        listening_port_ = std::atoi(addr.c_str() + colon + 1);
      }
      if (line.find("Server is ready") != std::string::npos) {
        std::lock_guard<std::mutex> lock(mu_);
        listening_ = true;
        cv_.notify_all();
      }
    }
  }
  close(fd);
}

Status EmbeddedNatsServer::WaitUntilListening() {
  std::unique_lock<std::mutex> lock(mu_);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!listening_) {
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return Status::Error(
          "nats-server did not become ready within 30 s (see the [nats] log lines above; config " +
          config_path_ + ")");
    }
    int status = 0;
    if (waitpid(pid_.load(), &status, WNOHANG) == pid_.load()) {
      pid_.store(-1);
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
      backoff = std::chrono::seconds(1);
    } else {
      spdlog::error("restarting nats-server: {}", s.message());
      backoff = std::min(backoff * 2, std::chrono::seconds(30));
    }
  }
}

std::string EmbeddedNatsServer::client_url() const {
  std::string host = client_host_ == "0.0.0.0" || client_host_.empty() ? "127.0.0.1" : client_host_;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "nats://" + host + ":" + std::to_string(client_port_);
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
