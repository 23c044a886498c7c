#include "verify/table_digest.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "db/sqlite.h"

namespace marmot {
namespace {

void AppendUint64(uint64_t v, std::string* out) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(v >> (8 * i));
  out->append(bytes, 8);
}

void AppendValue(const Value& v, std::string* out) {
  out->push_back(static_cast<char>(v.type()));
  switch (v.type()) {
    case Value::Type::kNull:
      break;
    case Value::Type::kInteger:
      AppendUint64(static_cast<uint64_t>(v.integer()), out);
      break;
    case Value::Type::kReal:
      AppendUint64(std::bit_cast<uint64_t>(v.real()), out);
      break;
    default:
      AppendUint64(v.bytes().size(), out);
      out->append(v.bytes());
  }
}

// The key columns, then the other stored columns sorted by name, and the SELECT reading them.
struct RowQuery {
  std::vector<std::string> key_columns;
  std::vector<std::string> value_columns;
  std::string sql;
};

RowQuery MakeRowQuery(const TableSchema& table, const std::string& where) {
  RowQuery q;
  q.key_columns = table.KeyColumns();
  for (const std::string& c : table.StoredColumns()) {
    if (std::find(q.key_columns.begin(), q.key_columns.end(), c) == q.key_columns.end()) {
      q.value_columns.push_back(c);
    }
  }
  std::sort(q.value_columns.begin(), q.value_columns.end());
  std::string cols;
  for (const auto* list : {&q.key_columns, &q.value_columns}) {
    for (const std::string& c : *list) cols += (cols.empty() ? "" : ", ") + QuoteIdent(c);
  }
  q.sql = "SELECT " + cols + " FROM " + QuoteIdent(table.name) + where;
  return q;
}

// Reads the current row of `stmt` into `key`, and hashes it: the row's hash, and its bucket.
class RowDigester {
 public:
  explicit RowDigester(const RowQuery& query) : query_(query) {}

  void Read(const Statement& stmt, std::vector<Value>* key, RowSum* hash, uint32_t* bucket) {
    size_t keys = query_.key_columns.size();
    key->resize(keys);
    buffer_.clear();
    for (size_t i = 0; i < keys; ++i) {
      stmt.ReadColumn(static_cast<int>(i), &(*key)[i]);
      AppendValue((*key)[i], &buffer_);
    }
    uint64_t key_hash = XXH3_64bits(buffer_.data(), buffer_.size());
    *bucket = static_cast<uint32_t>(key_hash >> (64 - TableDigest::kBucketBits));
    for (size_t i = 0; i < query_.value_columns.size(); ++i) {
      const std::string& name = query_.value_columns[i];
      AppendUint64(name.size(), &buffer_);
      buffer_.append(name);
      stmt.ReadColumn(static_cast<int>(keys + i), &value_);
      AppendValue(value_, &buffer_);
    }
    XXH128_hash_t h = XXH3_128bits(buffer_.data(), buffer_.size());
    hash->low = h.low64;
    hash->high = h.high64;
  }

 private:
  const RowQuery& query_;
  std::string buffer_;
  Value value_;
};

// " WHERE k1 IS ? AND k2 IS ?" over the key columns.
std::string KeyWhere(const TableSchema& table) {
  std::string where;
  for (const std::string& c : table.KeyColumns())
    where += (where.empty() ? " WHERE " : " AND ") + QuoteIdent(c) + " IS ?";
  return where;
}

}  // namespace

std::string RowSum::Hex() const {
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(high),
                static_cast<unsigned long long>(low));
  return text;
}

bool RowSum::FromHex(const std::string& hex, RowSum* out) {
  if (hex.size() != 32 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) return false;
  out->high = std::stoull(hex.substr(0, 16), nullptr, 16);
  out->low = std::stoull(hex.substr(16), nullptr, 16);
  return true;
}

Result<TableDigest> DigestTable(Database& db, const TableSchema& table) {
  RowQuery query = MakeRowQuery(table, "");
  Result<Statement> stmt = db.Prepare(query.sql);
  if (!stmt.ok()) return stmt.status().WithContext("digesting table " + table.name);
  TableDigest digest;
  digest.table = table.name;
  digest.bucket_rows.assign(TableDigest::kBuckets, 0);
  digest.bucket_sums.assign(TableDigest::kBuckets, RowSum{});
  RowDigester hasher(query);
  std::vector<Value> key;
  RowSum hash;
  uint32_t bucket = 0;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status().WithContext("digesting table " + table.name);
    if (!*row) break;
    hasher.Read(*stmt, &key, &hash, &bucket);
    ++digest.rows;
    digest.sum.Add(hash);
    ++digest.bucket_rows[bucket];
    digest.bucket_sums[bucket].Add(hash);
  }
  return digest;
}

Result<std::vector<KeyedRow>> RowsInBuckets(Database& db, const TableSchema& table,
                                            const std::vector<uint32_t>& buckets) {
  std::vector<bool> wanted(TableDigest::kBuckets, false);
  for (uint32_t b : buckets) {
    if (b < TableDigest::kBuckets) wanted[b] = true;
  }
  RowQuery query = MakeRowQuery(table, "");
  Result<Statement> stmt = db.Prepare(query.sql);
  if (!stmt.ok()) return stmt.status().WithContext("listing rows of table " + table.name);
  RowDigester hasher(query);
  std::vector<KeyedRow> rows;
  KeyedRow row;
  uint32_t bucket = 0;
  while (true) {
    Result<bool> more = stmt->Step();
    if (!more.ok()) return more.status().WithContext("listing rows of table " + table.name);
    if (!*more) break;
    hasher.Read(*stmt, &row.key, &row.hash, &bucket);
    if (wanted[bucket]) rows.push_back(row);
  }
  return rows;
}

Status HashRowByKey(Database& db, const TableSchema& table, const std::vector<Value>& key, bool* found,
                    RowSum* hash, uint32_t* bucket) {
  RowQuery query = MakeRowQuery(table, KeyWhere(table));
  if (key.size() != query.key_columns.size()) {
    return Status::InvalidArgument("table " + table.name + " has " +
                                   std::to_string(query.key_columns.size()) +
                                   " key column(s), the key given has " + std::to_string(key.size()));
  }
  Result<Statement> stmt = db.Prepare(query.sql);
  if (!stmt.ok()) return stmt.status().WithContext("reading a row of table " + table.name);
  for (size_t i = 0; i < key.size(); ++i) stmt->Bind(static_cast<int>(i + 1), key[i]);
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status().WithContext("reading a row of table " + table.name);
  *found = *row;
  if (*found) {
    RowDigester hasher(query);
    std::vector<Value> read_key;
    hasher.Read(*stmt, &read_key, hash, bucket);
  }
  return Status();
}

nlohmann::json KeyToJson(const std::vector<Value>& key) {
  nlohmann::json out = nlohmann::json::array();
  for (const Value& v : key) {
    switch (v.type()) {
      case Value::Type::kNull:
        out.push_back(nullptr);
        break;
      case Value::Type::kInteger:
        out.push_back(v.integer());
        break;
      case Value::Type::kReal:
        // JSON has no infinities (SQLite stores no NaN: it becomes NULL).
        if (std::isfinite(v.real())) {
          out.push_back({{"real", v.real()}});
        } else {
          out.push_back({{"real", v.real() > 0 ? "inf" : "-inf"}});
        }
        break;
      case Value::Type::kText:
        out.push_back(v.bytes());
        break;
      case Value::Type::kBlob: {
        static constexpr char kDigits[] = "0123456789abcdef";
        std::string hex;
        for (unsigned char c : v.bytes()) {
          hex.push_back(kDigits[c >> 4]);
          hex.push_back(kDigits[c & 15]);
        }
        out.push_back({{"blob", hex}});
        break;
      }
    }
  }
  return out;
}

Result<std::vector<Value>> KeyFromJson(const nlohmann::json& json) {
  if (!json.is_array()) return Status::InvalidArgument("a key must be a JSON array, got " + json.dump());
  std::vector<Value> key;
  for (const nlohmann::json& v : json) {
    if (v.is_null()) {
      key.push_back(Value::Null());
    } else if (v.is_number_integer()) {
      key.push_back(Value::Integer(v.get<int64_t>()));
    } else if (v.is_string()) {
      key.push_back(Value::Text(v.get<std::string>()));
    } else if (v.is_object() && v.contains("real") && v["real"].is_number()) {
      key.push_back(Value::Real(v["real"].get<double>()));
    } else if (v.is_object() && v.contains("real") && (v["real"] == "inf" || v["real"] == "-inf")) {
      double inf = std::numeric_limits<double>::infinity();
      key.push_back(Value::Real(v["real"] == "inf" ? inf : -inf));
    } else if (v.is_object() && v.contains("blob") && v["blob"].is_string()) {
      const std::string hex = v["blob"].get<std::string>();
      if (hex.size() % 2 != 0 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return Status::InvalidArgument("a key's blob must be lowercase hex, got " + v.dump());
      }
      std::string bytes;
      for (size_t i = 0; i < hex.size(); i += 2)
        bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
      key.push_back(Value::Blob(std::move(bytes)));
    } else {
      return Status::InvalidArgument(
          "a key value must be null, an integer, a string, {\"real\": x} or {\"blob\": hex}, got " +
          v.dump());
    }
  }
  return key;
}

std::string KeyToText(const std::vector<Value>& key) {
  std::string text = "(";
  for (size_t i = 0; i < key.size(); ++i) text += (i ? ", " : "") + key[i].ToDebugString();
  return text + ")";
}

}  // namespace marmot
