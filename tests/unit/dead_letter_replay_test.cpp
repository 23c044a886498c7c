// Replaying dead letters (Applier::ReplayDeadLetter): a change applies once its cause is fixed; a
// later change to the same row makes it superseded (replaying would undo that change); what
// cannot be replayed stays, with the reason.
#include <gtest/gtest.h>

#include "db/applier.h"
#include "db/capture.h"
#include "db/schema.h"
#include "test_util.h"

namespace marmot {
namespace {

using test::Exec;
using test::OpenDb;
using test::QueryInt;
using test::Rows;
using test::TempDir;

RowChange Change(RowChange::Op op, std::vector<std::string> cols, std::vector<Value> values, uint64_t seq) {
  RowChange c;
  c.table = "items";
  c.op = op;
  c.columns = std::make_shared<const std::vector<std::string>>(std::move(cols));
  c.values = std::move(values);
  c.stream_seq = seq;
  return c;
}

// An upsert carrying a column `w` that this node's table lacks until the test adds it.
RowChange WithW(int64_t id, const std::string& v, uint64_t seq) {
  return Change(RowChange::Op::kUpsert, {"id", "v", "w"},
                {Value::Integer(id), Value::Text(v), Value::Integer(7)}, seq);
}

class DeadLetterReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Exec(db_, "CREATE TABLE items(id INTEGER PRIMARY KEY, v TEXT)");
    Result<std::unique_ptr<Applier>> applier = Applier::Open(path_);
    ASSERT_TRUE(applier.ok()) << applier.status().message();
    applier_ = std::move(*applier);
  }
  ApplyStats Apply(const std::vector<RowChange>& changes, uint64_t last_seq) {
    Result<ApplyStats> stats = applier_->Apply(changes, StreamPosition{"s-1", last_seq, 1});
    EXPECT_TRUE(stats.ok()) << stats.status().message();
    return stats.ok() ? *stats : ApplyStats{};
  }
  int64_t IdOf(int64_t row_id) {
    return QueryInt(db_, "SELECT id FROM __marmot__dead_letter WHERE statement LIKE '%VALUES (" +
                             std::to_string(row_id) + ",%'");
  }
  Applier::ReplayOutcome Replay(int64_t id) {
    Result<Applier::ReplayOutcome> outcome = applier_->ReplayDeadLetter(id);
    EXPECT_TRUE(outcome.ok()) << outcome.status().message();
    return outcome.ok() ? *outcome : Applier::ReplayOutcome{};
  }

  TempDir dir_;
  std::string path_ = dir_.File("replica.db");
  Database db_ = OpenDb(path_);
  std::unique_ptr<Applier> applier_;
};

TEST_F(DeadLetterReplayTest, AChangeAppliesOnceItsCauseIsFixedAndItsRecordGoes) {
  EXPECT_EQ(Apply({WithW(1, "one", 5)}, 5).dead_lettered, 1u);
  EXPECT_EQ(
      QueryInt(
          db_,
          "SELECT count(*) FROM __marmot__dead_letter WHERE change IS NOT NULL AND row_hash IS NOT NULL"),
      1);
  int64_t id = IdOf(1);
  // Not fixed yet: it fails again and stays.
  Applier::ReplayOutcome early = Replay(id);
  EXPECT_EQ(early.result, Applier::ReplayResult::kFailed);
  EXPECT_NE(early.detail.find("w"), std::string::npos) << early.detail;
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__dead_letter"), 1);

  Exec(db_, "ALTER TABLE items ADD COLUMN w INTEGER");
  EXPECT_EQ(Replay(id).result, Applier::ReplayResult::kApplied);
  EXPECT_EQ(Rows(db_, "SELECT id, v, w FROM items"), (std::vector<std::string>{"1:1|3:'one'|1:7"}));
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__dead_letter"), 0);
}

TEST_F(DeadLetterReplayTest, ALaterChangeToTheRowSupersedesItsDeadLetter) {
  Apply({WithW(2, "two", 5), WithW(3, "three", 5)}, 5);
  // Row 2 is deleted later in the stream (a delete needs only the key, so it applies here).
  Apply({Change(RowChange::Op::kDelete, {"id"}, {Value::Integer(2)}, 9)}, 9);
  EXPECT_EQ(
      QueryInt(db_, "SELECT superseded_seq FROM __marmot__dead_letter WHERE id = " + std::to_string(IdOf(2))),
      9);
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__dead_letter WHERE superseded_seq IS NULL"), 1);

  Exec(db_, "ALTER TABLE items ADD COLUMN w INTEGER");
  Applier::ReplayOutcome two = Replay(IdOf(2));
  EXPECT_EQ(two.result, Applier::ReplayResult::kSuperseded);
  EXPECT_NE(two.detail.find("9"), std::string::npos) << two.detail;
  EXPECT_EQ(Replay(IdOf(3)).result, Applier::ReplayResult::kApplied);
  // Row 2 stays deleted, as on the nodes that applied the whole stream; row 3 arrived.
  EXPECT_EQ(Rows(db_, "SELECT id FROM items ORDER BY id"), (std::vector<std::string>{"1:3"}));
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__dead_letter"), 0);
}

TEST_F(DeadLetterReplayTest, SupersedingSurvivesAnApplierRestart) {
  Apply({WithW(4, "four", 3)}, 3);
  applier_.reset();
  Result<std::unique_ptr<Applier>> reopened = Applier::Open(path_);
  ASSERT_TRUE(reopened.ok());
  applier_ = std::move(*reopened);
  Apply({Change(RowChange::Op::kUpsert, {"id", "v"}, {Value::Integer(4), Value::Text("newer")}, 8)}, 8);
  EXPECT_EQ(QueryInt(db_, "SELECT superseded_seq FROM __marmot__dead_letter"), 8);
  Exec(db_, "ALTER TABLE items ADD COLUMN w INTEGER");
  EXPECT_EQ(Replay(IdOf(4)).result, Applier::ReplayResult::kSuperseded);
  EXPECT_EQ(Rows(db_, "SELECT v FROM items WHERE id = 4"), (std::vector<std::string>{"3:'newer'"}));
}

TEST_F(DeadLetterReplayTest, UndecodableMessagesAndUnpublishedLocalWritesAreKept) {
  applier_->DeadLetterMessage(StreamPosition{"s-1", 4, 1}, "not CBOR");
  Apply({WithW(5, "five", 6)}, 6);
  int64_t message = QueryInt(db_, "SELECT id FROM __marmot__dead_letter WHERE change IS NULL");
  Applier::ReplayOutcome undecodable = Replay(message);
  EXPECT_EQ(undecodable.result, Applier::ReplayResult::kNotReplayable);

  // The application writes row 5 here, and the change log still holds that write: it is newer
  // than the dead letter and will be published, so the replay must not overwrite it.
  Result<std::vector<TableSchema>> tables = ReadSchema(db_);
  ASSERT_TRUE(tables.ok());
  ASSERT_TRUE(InstallCapture(db_, *tables).ok());
  Exec(db_, "ALTER TABLE items ADD COLUMN w INTEGER");
  Exec(db_, "INSERT INTO items(id, v) VALUES (5, 'local')");
  Applier::ReplayOutcome local = Replay(IdOf(5));
  EXPECT_EQ(local.result, Applier::ReplayResult::kFailed);
  EXPECT_NE(local.detail.find("local writes"), std::string::npos) << local.detail;
  EXPECT_EQ(Rows(db_, "SELECT v FROM items WHERE id = 5"), (std::vector<std::string>{"3:'local'"}));
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__dead_letter"), 2);
}

TEST_F(DeadLetterReplayTest, AHugeChangeIsKeptAsAnExcerptOnlyAndIsNotReplayable) {
  std::string big(Applier::kMaxDeadLetterChange + 1, 'x');
  Apply({Change(RowChange::Op::kUpsert, {"id", "v", "w"},
                {Value::Integer(6), Value::Text(big), Value::Integer(1)}, 7)},
        7);
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__dead_letter WHERE change IS NULL"), 1);
  EXPECT_LE(QueryInt(db_, "SELECT length(statement) FROM __marmot__dead_letter"),
            static_cast<int64_t>(Applier::kMaxDeadLetterStatement) + 100);
  Exec(db_, "ALTER TABLE items ADD COLUMN w INTEGER");
  EXPECT_EQ(Replay(IdOf(6)).result, Applier::ReplayResult::kNotReplayable);
}

}  // namespace
}  // namespace marmot
