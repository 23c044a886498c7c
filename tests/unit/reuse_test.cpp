// The pieces that let the hot path reuse memory from batch to batch: Value's in-place setters,
// RowChangeList, HashSet64, reading and comparing columns without copies, and decoding into a list
// that already holds changes.
#include <cmath>
#include <limits>

#include "codec/wire_format.h"
#include "test_util.h"
#include "util/hash_set64.h"

namespace marmot {
namespace {

TEST(ValueSetTest, SettersReplaceTypeAndContent) {
  Value v = Value::Text("a text longer than the inline buffer of a string");
  v.SetBlob(std::string("\0\1", 2));
  EXPECT_EQ(v, Value::Blob(std::string("\0\1", 2)));
  v.SetInteger(-5);
  EXPECT_EQ(v, Value::Integer(-5));
  EXPECT_TRUE(v.bytes().empty());  // no stale bytes behind a non-text value
  v.SetReal(-0.0);
  EXPECT_EQ(v, Value::Real(-0.0));
  EXPECT_FALSE(v == Value::Real(0.0));
  v.SetNull();
  EXPECT_TRUE(v.is_null());
  v.SetText("x");
  EXPECT_EQ(v, Value::Text("x"));
  EXPECT_FALSE(v == Value::Blob("x"));
}

TEST(RowHasherTest, MatchesRowHash) {
  Value a = Value::Integer(7), b = Value::Text("k");
  RowHasher h("t");
  h.Add(a);
  h.Add(b);
  EXPECT_EQ(h.hash(), RowHash("t", {&a, &b}));
  EXPECT_NE(h.hash(), RowHash("t", {&b, &a}));
}

TEST(RowChangeListTest, ReusesSlotsAfterClear) {
  RowChangeList list;
  RowChange& first = list.Append();
  first.table = "t";
  first.op = RowChange::Op::kDelete;
  first.echo = true;
  first.row_hash = 9;
  first.values = {Value::Integer(1), Value::Text("one")};
  list.push_back(RowChange{"u", RowChange::Op::kUpsert, nullptr, {Value::Null()}, 0, false});
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1].table, "u");

  list.clear();
  EXPECT_TRUE(list.empty());
  RowChange& again = list.Append();
  // Op, echo and hash are reset; values are left for the caller to overwrite.
  EXPECT_EQ(again.op, RowChange::Op::kUpsert);
  EXPECT_FALSE(again.echo);
  EXPECT_EQ(again.row_hash, 0u);
  EXPECT_EQ(again.values.size(), 2u);
  list.Append();
  list.Truncate(1);
  EXPECT_EQ(list.size(), 1u);
  std::span<const RowChange> view = list;
  EXPECT_EQ(view.size(), 1u);
  EXPECT_EQ(&view[0], &list[0]);
}

TEST(RowChangeListTest, MovedFromListIsEmptyAndBufferBytesCountsAllSlots) {
  RowChangeList list;
  list.push_back(
      RowChange{"t", RowChange::Op::kUpsert, nullptr, {Value::Text(std::string(100, 'x'))}, 0, false});
  list.push_back(
      RowChange{"t", RowChange::Op::kUpsert, nullptr, {Value::Blob(std::string(50, 'y'))}, 0, false});
  list.Truncate(1);
  EXPECT_GE(list.BufferBytes(), 150u);  // the dropped slot's buffer is still held
  RowChangeList moved = std::move(list);
  EXPECT_EQ(moved.size(), 1u);
  EXPECT_EQ(list.size(), 0u);  // NOLINT(bugprone-use-after-move): moving leaves it empty
  EXPECT_EQ(list.begin(), list.end());
  list.push_back(moved[0]);
  EXPECT_EQ(list.size(), 1u);
}

TEST(HashSet64Test, InsertContainsClearAndGrow) {
  HashSet64 set;
  EXPECT_FALSE(set.Contains(0));
  EXPECT_FALSE(set.Contains(42));
  EXPECT_TRUE(set.Insert(0));  // zero is a value like any other
  EXPECT_FALSE(set.Insert(0));
  EXPECT_TRUE(set.Contains(0));
  // Values that agree in their low bits, many more than the first table holds.
  for (uint64_t i = 1; i <= 1000; ++i) EXPECT_TRUE(set.Insert(i << 32));
  for (uint64_t i = 1; i <= 1000; ++i) EXPECT_TRUE(set.Contains(i << 32));
  EXPECT_FALSE(set.Contains(1001ULL << 32));
  EXPECT_FALSE(set.Insert(500ULL << 32));
  set.Clear();
  EXPECT_FALSE(set.Contains(0));
  EXPECT_FALSE(set.Contains(1ULL << 32));
  EXPECT_TRUE(set.Insert(1ULL << 32));
}

TEST(ColumnEqualsTest, ComparesStorageClassAndBytesExactly) {
  test::TempDir dir;
  Database db = test::OpenDb(dir.File("a.db"));
  Result<Statement> stmt = db.Prepare("SELECT 1, 1.0, -0.0, 'ab', x'6162', NULL, 'a' || char(0) || 'b'");
  ASSERT_TRUE(stmt.ok()) << stmt.status().message();
  ASSERT_TRUE(*stmt->Step());
  EXPECT_TRUE(stmt->ColumnEquals(0, Value::Integer(1)));
  EXPECT_FALSE(stmt->ColumnEquals(0, Value::Real(1.0)));
  EXPECT_TRUE(stmt->ColumnEquals(1, Value::Real(1.0)));
  EXPECT_FALSE(stmt->ColumnEquals(1, Value::Integer(1)));
  EXPECT_TRUE(stmt->ColumnEquals(2, Value::Real(-0.0)));
  EXPECT_FALSE(stmt->ColumnEquals(2, Value::Real(0.0)));
  EXPECT_TRUE(stmt->ColumnEquals(3, Value::Text("ab")));
  EXPECT_FALSE(stmt->ColumnEquals(3, Value::Blob("ab")));
  EXPECT_FALSE(stmt->ColumnEquals(3, Value::Text("abc")));
  EXPECT_TRUE(stmt->ColumnEquals(4, Value::Blob("ab")));
  EXPECT_FALSE(stmt->ColumnEquals(4, Value::Text("ab")));
  EXPECT_TRUE(stmt->ColumnEquals(5, Value::Null()));
  EXPECT_FALSE(stmt->ColumnEquals(5, Value::Integer(0)));
  EXPECT_TRUE(stmt->ColumnEquals(6, Value::Text(std::string("a\0b", 3))));

  Value into = Value::Text("a long text that owns a heap buffer already");
  for (int c = 0; c < 7; ++c) {
    stmt->ReadColumn(c, &into);
    EXPECT_EQ(into, stmt->ColumnValue(c)) << "column " << c;
    EXPECT_TRUE(stmt->ColumnEquals(c, into)) << "column " << c;
  }
}

TEST(DecodeIntoListTest, AppendsAfterExistingChangesAndLeavesThemOnError) {
  auto columns = std::make_shared<const std::vector<std::string>>(std::vector<std::string>{"id", "v"});
  ChangeMessage m;
  m.node_id = 3;
  m.changes.push_back(
      RowChange{"t", RowChange::Op::kUpsert, columns, {Value::Integer(1), Value::Text("a")}, 0, false});
  m.changes.push_back(
      RowChange{"t", RowChange::Op::kUpsert, columns, {Value::Integer(2), Value::Real(2.5)}, 0, false});
  std::string bytes = EncodeChangeMessage(m);

  RowChangeList list;
  list.push_back(
      RowChange{"earlier", RowChange::Op::kDelete, columns, {Value::Integer(9), Value::Null()}, 0, false});
  MessageOrigin origin;
  ASSERT_TRUE(DecodeChangeMessage(bytes, &origin, &list).ok());
  EXPECT_EQ(origin.node_id, 3u);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].table, "earlier");
  EXPECT_EQ(list[2].values, (std::vector<Value>{Value::Integer(2), Value::Real(2.5)}));

  // Cut inside the second change: the first one of the message must not stay behind.
  list.Truncate(1);
  Status cut = DecodeChangeMessage(std::string_view(bytes).substr(0, bytes.size() - 3), &origin, &list);
  EXPECT_FALSE(cut.ok());
  EXPECT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].table, "earlier");
}

}  // namespace
}  // namespace marmot
