#include "db/schema.h"

#include "test_util.h"

namespace marmot {
namespace {

using test::Exec;
using test::OpenDb;
using test::TempDir;

TEST(QuoteIdentTest, DoublesQuotes) {
  EXPECT_EQ(QuoteIdent("books"), "\"books\"");
  EXPECT_EQ(QuoteIdent("odd \"table\" name"), "\"odd \"\"table\"\" name\"");
  EXPECT_EQ(QuoteIdent(""), "\"\"");
}

TEST(SchemaTest, ReadsKeysTypesAndGeneratedColumns) {
  TempDir dir;
  Database db = OpenDb(dir.File("s.db"));
  Exec(db,
       "CREATE TABLE plain(a TEXT, b INT);"
       "CREATE TABLE ipk(id INTEGER PRIMARY KEY, v TEXT);"
       "CREATE TABLE composite(x TEXT, y INT, z BLOB, PRIMARY KEY(y, x));"
       "CREATE TABLE wr(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
       "CREATE TABLE gen(id INTEGER PRIMARY KEY, a INT, b INT GENERATED ALWAYS AS (a*2) VIRTUAL,"
       "  c INT GENERATED ALWAYS AS (a*3) STORED);"
       "CREATE TABLE shadowed(rowid TEXT, v);"
       "CREATE TABLE __marmot__x(a);"
       "CREATE VIEW vw AS SELECT * FROM plain;");
  Result<std::vector<TableSchema>> tables = ReadSchema(db);
  ASSERT_TRUE(tables.ok()) << tables.status().message();
  std::vector<std::string> names;
  for (const TableSchema& t : *tables) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"composite", "gen", "ipk", "plain", "shadowed", "wr"}));

  auto find = [&](const std::string& name) -> const TableSchema& {
    for (const TableSchema& t : *tables)
      if (t.name == name) return t;
    throw std::runtime_error(name);
  };
  EXPECT_EQ(find("plain").KeyColumns(), (std::vector<std::string>{"rowid"}));
  EXPECT_EQ(find("plain").StoredColumns(), (std::vector<std::string>{"rowid", "a", "b"}));
  EXPECT_EQ(find("ipk").KeyColumns(), (std::vector<std::string>{"id"}));
  EXPECT_FALSE(find("ipk").rowid_alias.has_value());
  EXPECT_EQ(find("composite").KeyColumns(), (std::vector<std::string>{"y", "x"}));
  EXPECT_TRUE(find("wr").without_rowid);
  EXPECT_FALSE(find("composite").without_rowid);
  EXPECT_EQ(find("gen").StoredColumns(), (std::vector<std::string>{"id", "a"}));
  EXPECT_EQ(find("gen").columns.size(), 4u);
  EXPECT_EQ(find("shadowed").KeyColumns(), (std::vector<std::string>{"_rowid_"}));
  EXPECT_EQ(find("composite").columns[2].declared_type, "BLOB");
}

TEST(SchemaTest, SkipsTableWhoseRowidIsHidden) {
  TempDir dir;
  Database db = OpenDb(dir.File("s.db"));
  Exec(db, "CREATE TABLE t(rowid, _rowid_, oid);");
  Result<std::vector<TableSchema>> tables = ReadSchema(db);
  ASSERT_TRUE(tables.ok());
  EXPECT_TRUE(tables->empty());
}

TEST(SchemaTest, ReadsOneTableByName) {
  TempDir dir;
  Database db = OpenDb(dir.File("s.db"));
  Exec(db, "CREATE TABLE \"we ird\"\"name\"(id INTEGER PRIMARY KEY);");
  Result<std::optional<TableSchema>> t = ReadTableSchema(db, "we ird\"name");
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->has_value());
  EXPECT_EQ((*t)->KeyColumns(), (std::vector<std::string>{"id"}));
  Result<std::optional<TableSchema>> missing = ReadTableSchema(db, "nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

}  // namespace
}  // namespace marmot

namespace marmot {
namespace {

// The row hash picks a row's shard on every node, so it must never change: these values are part
// of the wire contract (docs/PROTOCOL.md).
TEST(RowHashTest, IsStableAcrossReleases) {
  Value one = Value::Integer(1), text = Value::Text("k"), real = Value::Real(-0.0), null = Value::Null();
  EXPECT_EQ(RowHash("", {}), 0xaf63bd4c8601b7dfULL);  // FNV-1a of a single 0 byte
  uint64_t books1 = RowHash("books", {&one});
  EXPECT_NE(books1, RowHash("books", {&text}));
  EXPECT_NE(RowHash("books", {&real}), RowHash("books", {&null}));
  EXPECT_NE(books1, RowHash("book", {&one}));
  EXPECT_EQ(books1, 0xe2352534ce3f80f9ULL);  // computed independently with Python
}

}  // namespace
}  // namespace marmot
