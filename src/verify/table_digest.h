// Table digests: what `marmot verify` compares between nodes (docs/VERIFY.md).
//
// A row's hash is XXH3-128 over a canonical encoding of its key values and of its stored
// non-key columns (taken by name, in name order, so two nodes that declared the same columns in
// another order still agree). Each value is encoded with its storage class: 1, 1.0, '1' and
// x'31' all differ, as they do in SQLite; REAL by its bits. Generated columns are left out (they
// follow from the stored ones).
//
// A table's digest is the sum of its rows' hashes (two 64-bit lanes, each modulo 2^64), so it
// does not depend on the order rows are read in, and one row's hash can be taken out again.
// Rows also fall into kBuckets buckets by a hash of their key alone, each with its own sum and
// count: two nodes whose table digests differ compare buckets, then list the rows of the buckets
// that differ, and the keys whose row hashes differ are the answer.
//
// Thread safety: free functions; each reads through the Database it is given.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "db/schema.h"
#include "db/value.h"
#include "util/status.h"

namespace marmot {

class Database;

// An order-independent sum of row hashes.
struct RowSum {
  uint64_t low = 0;
  uint64_t high = 0;
  void Add(const RowSum& h) {
    low += h.low;
    high += h.high;
  }
  void Subtract(const RowSum& h) {
    low -= h.low;
    high -= h.high;
  }
  friend bool operator==(const RowSum&, const RowSum&) = default;
  std::string Hex() const;  // 32 lowercase hex digits
  static bool FromHex(const std::string& hex, RowSum* out);
};

struct TableDigest {
  static constexpr int kBucketBits = 12;
  static constexpr size_t kBuckets = size_t{1} << kBucketBits;

  std::string table;
  uint64_t rows = 0;
  RowSum sum;
  std::vector<uint64_t> bucket_rows;  // kBuckets entries
  std::vector<RowSum> bucket_sums;    // kBuckets entries
};

// One row as the row listing gives it: its key values and its hash.
struct KeyedRow {
  std::vector<Value> key;
  RowSum hash;
};

// Reads every row of `table` (inside whatever transaction `db` has open) into a digest.
Result<TableDigest> DigestTable(Database& db, const TableSchema& table);

// The rows of `table` whose keys fall into one of `buckets` (indexes below kBuckets).
Result<std::vector<KeyedRow>> RowsInBuckets(Database& db, const TableSchema& table,
                                            const std::vector<uint32_t>& buckets);

// The hash and bucket of the row `key` names in `table`; false in `*found` when no such row.
Status HashRowByKey(Database& db, const TableSchema& table, const std::vector<Value>& key, bool* found,
                    RowSum* hash, uint32_t* bucket);

// Key values as JSON, exactly: INTEGER as a number, TEXT as a string, NULL as null, REAL as
// {"real": x} (printed so it reads back bit for bit), BLOB as {"blob": "<hex>"}.
nlohmann::json KeyToJson(const std::vector<Value>& key);
Result<std::vector<Value>> KeyFromJson(const nlohmann::json& json);
// A short rendering for people: (1, 'abc', x'00ff').
std::string KeyToText(const std::vector<Value>& key);

}  // namespace marmot
