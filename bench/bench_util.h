// Helpers shared by the benchmark scenarios.
#pragma once

#include <string>
#include <vector>

#include "db/sqlite.h"

namespace marmot::bench {

// Exits the benchmark with `what` and the status message when `s` failed.
void Check(const Status& s, const std::string& what);
double Median(std::vector<double> values);
// The first of `count` consecutive loopback ports free now, picked at random below the kernel's
// ephemeral range (a port inside it can go to any outgoing connection before a server binds it).
int FreeLoopbackPorts(int count);
// The value at fraction `p` (0..1) of the sorted `values`; 0 when empty.
double Percentile(std::vector<double> values, double p);

// The table every scenario writes: items(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL).
inline constexpr char kItemsSchema[] =
    "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL);";

// Inserts items first .. first+count-1 with one prepared statement, `per_transaction` rows per
// transaction, or each row in its own autocommit statement when `per_transaction` is 0.
void InsertItems(Database& db, int first, int count, int per_transaction);

}  // namespace marmot::bench
