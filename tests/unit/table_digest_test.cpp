// Table digests (verify/table_digest.h): equal content gives equal digests whatever the row order
// or column declaration order; any change of a value, its type or a key changes them; buckets and
// row listings narrow a difference down to its key.
#include "verify/table_digest.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "db/schema.h"
#include "test_util.h"

namespace marmot {
namespace {

using test::Exec;
using test::OpenDb;
using test::TempDir;

TableSchema SchemaOf(Database& db, const std::string& table) {
  Result<std::optional<TableSchema>> schema = ReadTableSchema(db, table);
  EXPECT_TRUE(schema.ok()) << schema.status().message();
  EXPECT_TRUE(schema->has_value());
  return **schema;
}

TableDigest Digest(Database& db, const std::string& table) {
  Result<TableDigest> digest = DigestTable(db, SchemaOf(db, table));
  EXPECT_TRUE(digest.ok()) << digest.status().message();
  return *digest;
}

TEST(TableDigestTest, SameContentSameDigestWhateverTheOrder) {
  TempDir dir;
  Database a = OpenDb(dir.File("a.db"));
  Database b = OpenDb(dir.File("b.db"));
  Exec(a, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)");
  Exec(b, "CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB, score REAL, name TEXT)");  // other column order
  Exec(a, "INSERT INTO t VALUES (1, 'one', 1.5, x'01'), (2, 'two', NULL, x''), (3, NULL, -0.0, NULL)");
  Exec(b,
       "INSERT INTO t (id, name, score, data) VALUES (3, NULL, -0.0, NULL), (1, 'one', 1.5, x'01'), "
       "(2, 'two', NULL, x'')");
  TableDigest da = Digest(a, "t");
  TableDigest db = Digest(b, "t");
  EXPECT_EQ(da.rows, 3u);
  EXPECT_EQ(da.sum, db.sum);
  EXPECT_EQ(da.bucket_sums, db.bucket_sums);
  EXPECT_EQ(da.bucket_rows, db.bucket_rows);
}

TEST(TableDigestTest, AnyChangeOfAValueOrItsTypeChangesTheDigest) {
  TempDir dir;
  Database db = OpenDb(dir.File("a.db"));
  Exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)");  // no type: no affinity converts values
  Exec(db, "INSERT INTO t VALUES (1, 1)");
  RowSum original = Digest(db, "t").sum;
  std::vector<RowSum> seen = {original};
  for (const char* v : {"'1'", "1.0", "x'31'", "NULL", "2", "-0.0", "0.0"}) {
    Exec(db, std::string("UPDATE t SET v = ") + v);
    RowSum now = Digest(db, "t").sum;
    for (const RowSum& before : seen) EXPECT_NE(now, before) << "value " << v;
    seen.push_back(now);
  }
  Exec(db, "UPDATE t SET v = 1");
  EXPECT_EQ(Digest(db, "t").sum, original);
  Exec(db, "UPDATE t SET id = 2");  // same values under another key
  EXPECT_NE(Digest(db, "t").sum, original);
}

TEST(TableDigestTest, BucketsAndRowListingsFindTheDifferingKey) {
  TempDir dir;
  Database a = OpenDb(dir.File("a.db"));
  Database b = OpenDb(dir.File("b.db"));
  for (Database* d : {&a, &b}) {
    Exec(*d, "CREATE TABLE kv (k TEXT, n INTEGER, v TEXT, PRIMARY KEY (k, n)) WITHOUT ROWID");
    Exec(*d,
         "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 5000) "
         "INSERT INTO kv SELECT 'key' || x, x % 7, 'value ' || x FROM i");
  }
  Exec(b, "UPDATE kv SET v = 'changed' WHERE k = 'key1234'");
  TableDigest da = Digest(a, "kv");
  TableDigest db = Digest(b, "kv");
  EXPECT_EQ(da.rows, 5000u);
  EXPECT_NE(da.sum, db.sum);
  std::vector<uint32_t> differing;
  for (uint32_t i = 0; i < TableDigest::kBuckets; ++i) {
    if (da.bucket_sums[i] != db.bucket_sums[i]) differing.push_back(i);
  }
  ASSERT_EQ(differing.size(), 1u);
  Result<std::vector<KeyedRow>> ra = RowsInBuckets(a, SchemaOf(a, "kv"), differing);
  Result<std::vector<KeyedRow>> rb = RowsInBuckets(b, SchemaOf(b, "kv"), differing);
  ASSERT_TRUE(ra.ok() && rb.ok());
  ASSERT_EQ(ra->size(), rb->size());
  EXPECT_EQ(ra->size(), da.bucket_rows[differing[0]]);
  std::vector<std::string> changed;
  for (size_t i = 0; i < ra->size(); ++i) {
    ASSERT_EQ((*ra)[i].key, (*rb)[i].key);
    if ((*ra)[i].hash != (*rb)[i].hash) changed.push_back(KeyToText((*ra)[i].key));
  }
  EXPECT_EQ(changed, std::vector<std::string>{"('key1234', 2)"});

  bool found = false;
  RowSum hash;
  uint32_t bucket = 0;
  std::vector<Value> key = {Value::Text("key1234"), Value::Integer(2)};
  ASSERT_TRUE(HashRowByKey(b, SchemaOf(b, "kv"), key, &found, &hash, &bucket).ok());
  EXPECT_TRUE(found);
  EXPECT_EQ(bucket, differing[0]);
  key[1] = Value::Integer(3);
  ASSERT_TRUE(HashRowByKey(b, SchemaOf(b, "kv"), key, &found, &hash, &bucket).ok());
  EXPECT_FALSE(found);
}

TEST(TableDigestTest, KeysRoundTripThroughJsonExactly) {
  std::vector<Value> key = {Value::Integer(-5),
                            Value::Text("ü \"quoted\""),
                            Value::Null(),
                            Value::Real(0.1),
                            Value::Real(-0.0),
                            Value::Real(std::numeric_limits<double>::infinity()),
                            Value::Blob(std::string("\x00\xff\x10", 3))};
  nlohmann::json json = KeyToJson(key);
  Result<std::vector<Value>> back = KeyFromJson(nlohmann::json::parse(json.dump()));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, key);
  EXPECT_TRUE(std::signbit((*back)[4].real()));
  EXPECT_FALSE(KeyFromJson(nlohmann::json::parse(R"([{"blob": "abc"}])")).ok());
  EXPECT_FALSE(KeyFromJson(nlohmann::json::parse(R"([[1]])")).ok());
  EXPECT_FALSE(KeyFromJson(nlohmann::json::parse(R"({"k": 1})")).ok());
}

TEST(TableDigestTest, RowSumHexRoundTrips) {
  RowSum s{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  RowSum back;
  ASSERT_TRUE(RowSum::FromHex(s.Hex(), &back));
  EXPECT_EQ(back, s);
  EXPECT_FALSE(RowSum::FromHex("xyz", &back));
}

}  // namespace
}  // namespace marmot
