// Random writes on database A (capture installed) are read by the ChangeReader and applied to
// database B by the Applier; A and B must end identical. The seed is printed on failure and can
// be set with MARMOT_TEST_SEED; the operation count with MARMOT_TEST_OPS.
#include <cstring>
#include <random>

#include "db/applier.h"
#include "db/capture.h"
#include "db/change_reader.h"
#include "test_util.h"

namespace marmot {
namespace {

using test::Exec;
using test::OpenDb;
using test::Rows;
using test::TempDir;

const char* kSchema =
    "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB, n INT);"
    "CREATE TABLE \"odd \"\"table\"\" name\"(\"key col\" TEXT PRIMARY KEY, \"select\" ANY, \"ü\" INT) ;"
    "CREATE TABLE pairs(a INT, b TEXT, v ANY, PRIMARY KEY(a, b)) WITHOUT ROWID;"
    "CREATE TABLE nokey(x ANY, y ANY);"
    "CREATE TABLE gen(id INTEGER PRIMARY KEY, a INT, g INT GENERATED ALWAYS AS (coalesce(a, 0) * 2) STORED);";

// The comparison: every column of every table (rowid too for the table keyed by it).
const char* kDumps[] = {
    "SELECT * FROM items ORDER BY id",   "SELECT * FROM \"odd \"\"table\"\" name\" ORDER BY \"key col\"",
    "SELECT * FROM pairs ORDER BY a, b", "SELECT rowid, * FROM nokey ORDER BY rowid",
    "SELECT * FROM gen ORDER BY id",
};

class RandomWriter {
 public:
  explicit RandomWriter(uint64_t seed) : rng_(seed) {}

  Value RandomValue() {
    switch (Pick(6)) {
      case 0:
        return Value::Null();
      case 1:
        return Value::Integer(static_cast<int64_t>(rng_()));
      case 2: {
        uint64_t bits = rng_();
        double d;
        std::memcpy(&d, &bits, sizeof d);
        if (std::isnan(d)) d = -0.0;  // SQLite stores NaN as NULL
        return Value::Real(d);
      }
      case 3: {
        std::string s;
        size_t n = Pick(20);
        for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(Pick(2) ? 'a' + Pick(26) : Pick(128)));
        return Value::Text(s);
      }
      case 4: {
        std::string b(Pick(3) == 0 ? Pick(70000) : Pick(40), '\0');
        for (char& c : b) c = static_cast<char>(rng_());
        return Value::Blob(b);
      }
      default:
        return Value::Integer(static_cast<int64_t>(Pick(1000)) - 500);
    }
  }

  // One random statement against A.
  void Step(Database& db) {
    int table = static_cast<int>(Pick(5));
    int op = static_cast<int>(Pick(10));  // 0-4 insert, 5-7 update, 8 key change, 9 delete
    std::string sql;
    std::vector<Value> params;
    auto small_key = [&] { return Value::Integer(static_cast<int64_t>(Pick(60))); };
    auto text_key = [&] { return Value::Text("k" + std::to_string(Pick(60))); };
    switch (table) {
      case 0:
        if (op < 5)
          sql = "INSERT OR REPLACE INTO items VALUES (?1, ?2, ?3, ?4, ?5)",
          params = {small_key(), RandomValue(), RandomValue(), RandomValue(), RandomValue()};
        else if (op < 8)
          sql = "UPDATE items SET name = ?2, data = ?3 WHERE id = ?1",
          params = {small_key(), RandomValue(), RandomValue()};
        else if (op == 8)
          sql = "UPDATE OR REPLACE items SET id = ?2 WHERE id = ?1", params = {small_key(), small_key()};
        else
          sql = "DELETE FROM items WHERE id = ?1", params = {small_key()};
        break;
      case 1:
        if (op < 5)
          sql = "INSERT OR REPLACE INTO \"odd \"\"table\"\" name\" VALUES (?1, ?2, ?3)",
          params = {text_key(), RandomValue(), RandomValue()};
        else if (op < 8)
          sql = "UPDATE \"odd \"\"table\"\" name\" SET \"select\" = ?2 WHERE \"key col\" = ?1",
          params = {text_key(), RandomValue()};
        else if (op == 8)
          sql = "UPDATE OR REPLACE \"odd \"\"table\"\" name\" SET \"key col\" = ?2 WHERE \"key col\" = ?1",
          params = {text_key(), text_key()};
        else
          sql = "DELETE FROM \"odd \"\"table\"\" name\" WHERE \"key col\" = ?1", params = {text_key()};
        break;
      case 2:
        if (op < 5)
          sql = "INSERT OR REPLACE INTO pairs VALUES (?1, ?2, ?3)",
          params = {Value::Integer(static_cast<int64_t>(Pick(8))), text_key(), RandomValue()};
        else if (op < 8)
          sql = "UPDATE pairs SET v = ?2 WHERE a = ?1",
          params = {Value::Integer(static_cast<int64_t>(Pick(8))), RandomValue()};
        else if (op == 8)
          sql = "UPDATE OR REPLACE pairs SET b = ?2 WHERE a = ?1",
          params = {Value::Integer(static_cast<int64_t>(Pick(8))), text_key()};
        else
          sql = "DELETE FROM pairs WHERE a = ?1 AND b > ?2",
          params = {Value::Integer(static_cast<int64_t>(Pick(8))), text_key()};
        break;
      case 3:
        if (op < 5)
          sql = "INSERT INTO nokey VALUES (?1, ?2)", params = {RandomValue(), RandomValue()};
        else if (op < 8)
          sql = "UPDATE nokey SET y = ?2 WHERE rowid % 7 = ?1",
          params = {Value::Integer(static_cast<int64_t>(Pick(7))), RandomValue()};
        else if (op == 8)
          sql = "UPDATE OR REPLACE nokey SET rowid = ?2 WHERE rowid = ?1",
          params = {small_key(), small_key()};
        else
          sql = "DELETE FROM nokey WHERE rowid % 5 = ?1",
          params = {Value::Integer(static_cast<int64_t>(Pick(5)))};
        break;
      default:
        if (op < 5)
          sql = "INSERT OR REPLACE INTO gen(id, a) VALUES (?1, ?2)",
          params = {small_key(), Value::Integer(static_cast<int64_t>(Pick(100)))};
        else if (op < 9)
          sql = "UPDATE gen SET a = a + 1 WHERE id = ?1", params = {small_key()};
        else
          sql = "DELETE FROM gen WHERE id = ?1", params = {small_key()};
    }
    Result<Statement> stmt = db.Prepare(sql);
    ASSERT_TRUE(stmt.ok()) << stmt.status().message();
    for (size_t i = 0; i < params.size(); ++i) stmt->Bind(static_cast<int>(i + 1), params[i]);
    Status s = stmt->Run();
    ASSERT_TRUE(s.ok()) << s.message();
  }

  uint64_t Pick(uint64_t n) { return rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

TEST(RoundTripTest, RandomWritesOnAEndUpIdenticalOnB) {
  uint64_t seed = EnvOr("MARMOT_TEST_SEED", std::random_device{}());
  uint64_t ops = EnvOr("MARMOT_TEST_OPS", 4000);
  SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with MARMOT_TEST_SEED=" + std::to_string(seed) +
               ")");
  TempDir dir;
  Database a = OpenDb(dir.File("a.db"));
  Database b = OpenDb(dir.File("b.db"));
  Exec(a, kSchema);
  Exec(b, kSchema);
  Result<std::vector<TableSchema>> tables = ReadSchema(a);
  ASSERT_TRUE(tables.ok());
  ASSERT_TRUE(InstallCapture(a, *tables).ok());
  Result<std::unique_ptr<ChangeReader>> reader = ChangeReader::Open(dir.File("a.db"));
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  Result<std::unique_ptr<Applier>> applier = Applier::Open(dir.File("b.db"));
  ASSERT_TRUE(applier.ok()) << applier.status().message();

  RandomWriter writer(seed);
  uint64_t position = 0;
  auto ship_one_batch = [&](size_t max_entries) {
    Result<ChangeBatch> batch = (*reader)->ReadBatch(max_entries);
    EXPECT_TRUE(batch.ok()) << batch.status().message();
    if (!batch.ok() || batch->empty()) return false;
    Result<ApplyStats> stats = (*applier)->Apply(batch->changes, StreamPosition{"s", ++position});
    EXPECT_TRUE(stats.ok()) << stats.status().message();
    EXPECT_EQ(stats->dead_lettered, 0u);
    (*reader)->Confirm(batch->last_seq, {});
    return true;
  };

  for (uint64_t i = 0; i < ops; ++i) {
    // Group some writes in transactions, like applications do.
    bool txn = writer.Pick(4) == 0;
    if (txn) Exec(a, "BEGIN");
    int n = txn ? 1 + static_cast<int>(writer.Pick(20)) : 1;
    for (int j = 0; j < n; ++j) {
      ASSERT_NO_FATAL_FAILURE(writer.Step(a));
    }
    if (txn) Exec(a, "COMMIT");
    if (writer.Pick(10) == 0) ship_one_batch(1 + writer.Pick(64));
    if (writer.Pick(50) == 0) {
      ASSERT_TRUE((*reader)->DeleteConfirmed().ok());
    }
  }
  while (ship_one_batch(512)) {
  }
  for (const char* dump : kDumps) {
    std::vector<std::string> rows_a = Rows(a, dump);
    std::vector<std::string> rows_b = Rows(b, dump);
    EXPECT_EQ(rows_a.size(), rows_b.size()) << dump;
    for (size_t i = 0; i < std::min(rows_a.size(), rows_b.size()); ++i) {
      if (rows_a[i] != rows_b[i]) {
        ADD_FAILURE() << dump << ": first difference at row " << i << "\n  A: " << rows_a[i].substr(0, 200)
                      << "\n  B: " << rows_b[i].substr(0, 200);
        break;
      }
    }
  }
  EXPECT_EQ(*(*applier)->LoadPosition("s"), position);
  EXPECT_GT(test::QueryInt(b, "SELECT count(*) FROM items"), 0);
}

}  // namespace
}  // namespace marmot
