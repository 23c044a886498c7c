#include "bench_util.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "loopback_ports.h"

namespace marmot::bench {

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) {
    std::fprintf(stderr, "marmot_bench: %s: %s\n", what.c_str(), s.message().c_str());
    std::exit(1);
  }
}

int FreeLoopbackPorts(int count) {
  int port = test::FreeLoopbackPorts(count);
  if (port < 0) {
    std::fprintf(stderr, "marmot_bench: found no %d free loopback port(s) in 1,000 tries\n", count);
    std::exit(1);
  }
  return port;
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
