#include "bench_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>

namespace marmot::bench {

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) {
    std::fprintf(stderr, "marmot_bench: %s: %s\n", what.c_str(), s.message().c_str());
    std::exit(1);
  }
}

namespace {

bool LoopbackPortFree(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return free;
}

}  // namespace

int FreeLoopbackPorts(int count) {
  int low = 32768, high = 60999;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d %d", &low, &high) != 2) low = 32768, high = 60999;
    std::fclose(f);
  }
  int first = low > 11000 ? 10000 : high + 1, last = (low > 11000 ? low - 1 : 65535) - count;
  std::random_device random;
  std::uniform_int_distribution<int> pick(first, last);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int port = pick(random), free = 0;
    while (free < count && LoopbackPortFree(port + free)) ++free;
    if (free == count) return port;
  }
  std::fprintf(stderr, "marmot_bench: no free loopback ports between %d and %d\n", first, last);
  std::exit(1);
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

void InsertItems(Database& db, int first, int count, int per_transaction) {
  Result<Statement> stmt = db.Prepare("INSERT INTO items VALUES (?1, ?2, ?3, ?4)");
  Check(stmt.status(), "preparing insert");
  char name[32];
  for (int done = 0; done < count;) {
    if (per_transaction > 0) Check(db.Exec("BEGIN"), "begin");
    int batch_end = per_transaction > 0 ? std::min(count, done + per_transaction) : done + 1;
    for (; done < batch_end; ++done) {
      int id = first + done;
      std::snprintf(name, sizeof(name), "item-%d", id);
      stmt->BindInt(1, id);
      stmt->BindText(2, name);
      stmt->BindInt(3, id * 7);
      stmt->BindDouble(4, id * 0.25);
      Check(stmt->Run(), "insert");
      stmt->Reset();
    }
    if (per_transaction > 0) Check(db.Exec("COMMIT"), "commit");
  }
}

}  // namespace marmot::bench
