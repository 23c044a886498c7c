#include "db/applier.h"

#include "db/schema.h"
#include "test_util.h"

namespace marmot {
namespace {

using test::Exec;
using test::OpenDb;
using test::QueryInt;
using test::Rows;
using test::TempDir;

RowChange Upsert(const std::string& table, std::vector<std::string> cols, std::vector<Value> values) {
  RowChange c;
  c.table = table;
  c.op = RowChange::Op::kUpsert;
  c.columns = std::make_shared<const std::vector<std::string>>(std::move(cols));
  c.values = std::move(values);
  return c;
}

RowChange Delete(const std::string& table, std::vector<std::string> cols, std::vector<Value> values) {
  RowChange c = Upsert(table, std::move(cols), std::move(values));
  c.op = RowChange::Op::kDelete;
  return c;
}

class ApplierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Exec(db_,
         "CREATE TABLE books(id INTEGER PRIMARY KEY, title TEXT NOT NULL, isbn TEXT UNIQUE,"
         "  pages INT CHECK (pages > 0), twice INT GENERATED ALWAYS AS (pages * 2) VIRTUAL);"
         "CREATE TABLE audit(book INT);"
         "CREATE TRIGGER audit_books AFTER INSERT ON books BEGIN INSERT INTO audit VALUES (NEW.id); END;");
    Result<std::unique_ptr<Applier>> applier = Applier::Open(path_);
    ASSERT_TRUE(applier.ok()) << applier.status().message();
    applier_ = std::move(*applier);
  }
  ApplyStats Apply(const std::vector<RowChange>& changes, std::optional<StreamPosition> pos = std::nullopt) {
    Result<ApplyStats> stats = applier_->Apply(changes, pos);
    EXPECT_TRUE(stats.ok()) << stats.status().message();
    return stats.ok() ? *stats : ApplyStats{};
  }

  TempDir dir_;
  std::string path_ = dir_.File("replica.db");
  Database db_ = OpenDb(path_);
  std::unique_ptr<Applier> applier_;
};

TEST_F(ApplierTest, UpsertsAndDeletesAreIdempotentAndSkipTriggers) {
  std::vector<RowChange> batch = {
      Upsert("books", {"id", "title", "isbn", "pages"},
             {Value::Integer(1), Value::Text("Dune"), Value::Text("a"), Value::Integer(412)}),
      Upsert("books", {"id", "title", "isbn", "pages"},
             {Value::Integer(2), Value::Text("Emma"), Value::Null(), Value::Integer(300)}),
      Delete("books", {"id"}, {Value::Integer(2)}),
  };
  EXPECT_EQ(Apply(batch).applied, 3u);
  std::vector<std::string> once = Rows(db_, "SELECT id, title, isbn, pages, twice FROM books ORDER BY id");
  EXPECT_EQ(Apply(batch).applied, 3u);
  EXPECT_EQ(Rows(db_, "SELECT id, title, isbn, pages, twice FROM books ORDER BY id"), once);
  ASSERT_EQ(once.size(), 1u);
  EXPECT_EQ(once[0], "1:1|3:'Dune'|3:'a'|1:412|1:824");
  // The application's trigger did not fire for replicated rows.
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM audit"), 0);
}

TEST_F(ApplierTest, UpsertReplacesRowsConflictingOnOtherUniqueColumns) {
  Apply({Upsert("books", {"id", "title", "isbn", "pages"},
                {Value::Integer(1), Value::Text("A"), Value::Text("x"), Value::Integer(1)})});
  Apply({Upsert("books", {"id", "title", "isbn", "pages"},
                {Value::Integer(2), Value::Text("B"), Value::Text("x"), Value::Integer(1)})});
  EXPECT_EQ(Rows(db_, "SELECT id FROM books"), (std::vector<std::string>{"1:2"}));
}

// A full row of books (every stored column).
RowChange Book(int64_t id, Value title, Value pages, Value isbn = Value::Null()) {
  return Upsert("books", {"id", "title", "isbn", "pages"},
                {Value::Integer(id), std::move(title), std::move(isbn), std::move(pages)});
}

TEST_F(ApplierTest, BadChangesAreDeadLetteredAndTheBatchGoesOn) {
  std::vector<RowChange> batch = {
      Book(1, Value::Text("ok"), Value::Integer(5)),
      Upsert("no_such_table", {"id"}, {Value::Integer(1)}),
      Upsert("books", {"id", "title", "isbn", "pages", "no_such_column"},
             {Value::Integer(2), Value::Text("x"), Value::Null(), Value::Integer(1), Value::Integer(1)}),
      Book(3, Value::Text("bad"), Value::Integer(-1)),
      Book(4, Value::Null(), Value::Integer(1)),
      Book(5, Value::Text("also ok"), Value::Integer(7)),
  };
  batch[3].stream_seq = 40;  // the message that carried it: recorded instead of the batch's position
  ApplyStats stats = Apply(batch, StreamPosition{"marmot-changes-1", 42});
  EXPECT_EQ(stats.applied, 2u);
  EXPECT_EQ(stats.dead_lettered, 4u);
  EXPECT_EQ(applier_->dead_lettered_total(), 4u);
  EXPECT_EQ(Rows(db_, "SELECT id FROM books ORDER BY id"), (std::vector<std::string>{"1:1", "1:5"}));
  std::vector<std::string> dead =
      Rows(db_, "SELECT stream, stream_seq, tbl, op, reason FROM __marmot__dead_letter ORDER BY id");
  ASSERT_EQ(dead.size(), 4u);
  EXPECT_NE(dead[0].find("no such table here: \"no_such_table\""), std::string::npos) << dead[0];
  EXPECT_NE(dead[0].find("'marmot-changes-1'|1:42"), std::string::npos) << dead[0];
  EXPECT_NE(dead[1].find("not here: \"no_such_column\""), std::string::npos) << dead[1];
  EXPECT_NE(dead[2].find("CHECK constraint failed"), std::string::npos) << dead[2];
  EXPECT_NE(dead[2].find("'marmot-changes-1'|1:40"), std::string::npos) << dead[2];
  EXPECT_NE(dead[3].find("NOT NULL constraint failed"), std::string::npos) << dead[3];
  // The stored statement replays the change once the cause is fixed.
  std::string replay =
      test::Rows(db_, "SELECT statement FROM __marmot__dead_letter WHERE reason LIKE '%CHECK%'")[0];
  EXPECT_NE(replay.find("INSERT OR REPLACE INTO \"books\""), std::string::npos) << replay;
  EXPECT_EQ(*applier_->LoadPosition("marmot-changes-1"), 42u);
}

TEST_F(ApplierTest, AChangeWrittenBeforeAColumnWasAddedKeepsTheColumnsItLacks) {
  Exec(db_, "INSERT INTO books(id, title, isbn, pages) VALUES (1, 'old', 'i-1', 10)");
  // Written where books had no isbn column yet: INSERT OR REPLACE would reset isbn here (to its
  // default); the change's columns are written and isbn keeps its value.
  ApplyStats stats = Apply(
      {Upsert("books", {"id", "title", "pages"}, {Value::Integer(1), Value::Text("new"), Value::Integer(11)}),
       Upsert("books", {"id", "title", "pages"},
              {Value::Integer(2), Value::Text("fresh"), Value::Integer(5)})},
      StreamPosition{"s", 3});
  EXPECT_EQ(stats.applied, 2u);
  EXPECT_EQ(stats.dead_lettered, 0u);
  EXPECT_EQ(Rows(db_, "SELECT id, title, isbn, pages FROM books ORDER BY id"),
            (std::vector<std::string>{"1:1|3:'new'|3:'i-1'|1:11", "1:2|3:'fresh'|0:NULL|1:5"}));
  // A delete by another key than the table's is never applied.
  stats = Apply({Delete("books", {"isbn"}, {Value::Text("i-1")})});
  EXPECT_EQ(stats.dead_lettered, 1u);
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM books"), 2);
}

TEST_F(ApplierTest, AChangeNamingAColumnNotHereWaitsForTheSchemaOnce) {
  int waits = 0;
  applier_->set_schema_wait([&](const std::string& why) -> Status {
    ++waits;
    EXPECT_NE(why.find("\"note\""), std::string::npos) << why;
    // The schema change arrives while the consumer waits.
    Exec(db_, "ALTER TABLE books ADD COLUMN note TEXT");
    return Status();
  });
  ApplyStats stats = Apply(
      {Book(1, Value::Text("a"), Value::Integer(1)),
       Upsert("books", {"id", "title", "isbn", "pages", "note"},
              {Value::Integer(2), Value::Text("b"), Value::Null(), Value::Integer(2), Value::Text("n")})});
  EXPECT_EQ(waits, 1);
  EXPECT_EQ(stats.applied, 2u);
  EXPECT_EQ(Rows(db_, "SELECT id, note FROM books ORDER BY id"),
            (std::vector<std::string>{"1:1|0:NULL", "1:2|3:'n'"}));
  // A column the schema stream dropped since the change was written: left out, no wait.
  applier_->set_schema_wait([&](const std::string&) -> Status {
    ++waits;
    return Status();
  });
  Exec(db_, "INSERT INTO __marmot__renamed (tbl, old_name, new_name) VALUES ('books', 'gone', '')");
  stats = Apply({Upsert("books", {"id", "title", "isbn", "pages", "note", "gone"},
                        {Value::Integer(3), Value::Text("c"), Value::Null(), Value::Integer(3),
                         Value::Text("m"), Value::Integer(9)})});
  EXPECT_EQ(waits, 1);
  EXPECT_EQ(stats.applied, 1u);
  EXPECT_EQ(stats.dead_lettered, 0u);
  EXPECT_EQ(Rows(db_, "SELECT title, note FROM books WHERE id = 3"),
            (std::vector<std::string>{"3:'c'|3:'m'"}));
  // A column no schema change explains (the schemas differ): dead-lettered after the wait, saying so.
  stats = Apply({Upsert("books", {"id", "title", "isbn", "pages", "note", "never"},
                        {Value::Integer(5), Value::Text("e"), Value::Null(), Value::Integer(5), Value::Null(),
                         Value::Integer(1)})});
  EXPECT_EQ(waits, 2);
  EXPECT_EQ(stats.dead_lettered, 1u);
  std::vector<std::string> reason = Rows(db_, "SELECT reason FROM __marmot__dead_letter");
  ASSERT_EQ(reason.size(), 1u);
  EXPECT_NE(reason[0].find("no schema change explains it"), std::string::npos) << reason[0];
  // Stopping while waiting fails the batch (it is applied later), nothing dead-lettered.
  applier_->set_schema_wait([&](const std::string&) -> Status { return Status::Unavailable("stopping"); });
  std::vector<RowChange> blocked = {Upsert(
      "books", {"id", "title", "isbn", "pages", "note", "other"},
      {Value::Integer(4), Value::Text("d"), Value::Null(), Value::Integer(4), Value::Null(), Value::Null()})};
  Result<ApplyStats> stopped = applier_->Apply(blocked, std::nullopt);
  EXPECT_FALSE(stopped.ok());
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM books WHERE id = 4"), 0);
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__dead_letter"), 1);
}

TEST_F(ApplierTest, AChangeWrittenBeforeARenameIsAppliedUnderTheNewNames) {
  Exec(db_,
       "ALTER TABLE books RENAME COLUMN title TO name; ALTER TABLE books RENAME TO volumes;"
       "INSERT INTO __marmot__renamed (tbl, old_name, new_name) VALUES ('volumes', 'title', 'name'),"
       " ('', 'books', 'volumes')");
  ApplyStats stats = Apply({Book(1, Value::Text("a"), Value::Integer(1))});
  EXPECT_EQ(stats.applied, 1u);
  EXPECT_EQ(Rows(db_, "SELECT id, name FROM volumes"), (std::vector<std::string>{"1:1|3:'a'"}));
  // A change to a table dropped since it was written is skipped: the drop wins.
  Exec(db_, "INSERT INTO __marmot__renamed (tbl, old_name, new_name) VALUES ('', 'scratch', '')");
  stats = Apply({Upsert("scratch", {"id"}, {Value::Integer(1)})});
  EXPECT_EQ(stats.dead_lettered, 0u);
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM sqlite_schema WHERE name = 'scratch'"), 0);
}

TEST_F(ApplierTest, ChangesToTablesLeftOutBySelectionAreSkipped) {
  TableSelection selection;
  selection.exclude = {"audit"};
  ASSERT_TRUE(StoreTableSelection(db_, selection).ok());
  Exec(db_, "INSERT INTO audit VALUES (7)");
  ApplyStats stats = Apply({Upsert("audit", {"rowid", "book"}, {Value::Integer(1), Value::Integer(99)})});
  EXPECT_EQ(stats.dead_lettered, 0u);
  EXPECT_EQ(Rows(db_, "SELECT book FROM audit"), (std::vector<std::string>{"1:7"}));
}

TEST_F(ApplierTest, ASchemaChangeIsSeenBeforeTheNextBatch) {
  Apply({Book(1, Value::Text("a"), Value::Integer(1))});
  // The same applier, with its statements prepared, meets the table after a column was added
  // and one renamed (by another connection): the change written under the new schema applies.
  Exec(db_, "ALTER TABLE books ADD COLUMN note TEXT; ALTER TABLE books RENAME COLUMN title TO name");
  ApplyStats stats = Apply(
      {Upsert("books", {"id", "name", "isbn", "pages", "note"},
              {Value::Integer(2), Value::Text("b"), Value::Null(), Value::Integer(2), Value::Text("n")})});
  EXPECT_EQ(stats.applied, 1u);
  // One written under the old schema is dead-lettered, not applied with a wrong column name.
  stats = Apply({Book(3, Value::Text("c"), Value::Integer(3))});
  EXPECT_EQ(stats.dead_lettered, 1u);
  EXPECT_EQ(Rows(db_, "SELECT id, name, note FROM books ORDER BY id"),
            (std::vector<std::string>{"1:1|3:'a'|0:NULL", "1:2|3:'b'|3:'n'"}));
}

TEST_F(ApplierTest, ABatchAppliedAgainDoesNotRecordItsDeadLettersTwice) {
  // After a restart a consumer may apply messages again (its position was held back by a row in
  // chunks): the same dead letters must not pile up.
  std::vector<RowChange> batch = {Book(1, Value::Null(), Value::Integer(1))};  // NOT NULL fails
  batch[0].stream_seq = 5;
  applier_->DeadLetterMessage(StreamPosition{"s", 4}, "undecodable");
  Apply(batch, StreamPosition{"s", 5});
  applier_->DeadLetterMessage(StreamPosition{"s", 4}, "undecodable");
  Apply(batch, StreamPosition{"s", 5});
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__dead_letter"), 2);
  // Gaps and message dead letters are written with the position, in the same transaction.
  applier_->RecordGap("s", 6, 9, "discarded");
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__gaps"), 0);
  ASSERT_TRUE(applier_->SavePosition(StreamPosition{"s", 9, 1}).ok());
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__gaps WHERE first_missing = 6 AND last_missing = 9"),
            1);
  EXPECT_EQ(*applier_->LoadPosition("s"), 9u);
}

TEST_F(ApplierTest, DeadLettersOfHugeRowsAreCapped) {
  std::string huge(10 << 20, 'x');
  ApplyStats stats = Apply({Upsert("no_such_table", {"id", "v"}, {Value::Integer(1), Value::Text(huge)})},
                           StreamPosition{"s", 9});
  EXPECT_EQ(stats.dead_lettered, 1u);
  int64_t stored = QueryInt(db_, "SELECT length(statement) + length(reason) FROM __marmot__dead_letter");
  EXPECT_LE(stored,
            static_cast<int64_t>(Applier::kMaxDeadLetterStatement + Applier::kMaxDeadLetterReason + 64));
  EXPECT_EQ(QueryInt(db_, "SELECT statement LIKE '%(truncated)' FROM __marmot__dead_letter"), 1);
  EXPECT_EQ(QueryInt(db_, "SELECT stream_seq FROM __marmot__dead_letter"), 9);
}

TEST_F(ApplierTest, PositionIsStoredWithTheRowsAndOnlyWithThem) {
  Apply({Book(1, Value::Text("a"), Value::Null())}, StreamPosition{"s", 7});
  EXPECT_EQ(*applier_->LoadPosition("s"), 7u);
  EXPECT_EQ(*applier_->LoadPosition("other"), 0u);

  // Hold a write lock elsewhere: the batch cannot commit, so neither rows nor position move.
  Database blocker = OpenDb(path_);
  Exec(blocker, "PRAGMA busy_timeout=0; BEGIN IMMEDIATE; INSERT INTO audit VALUES (0);");
  Exec(applier_->database(), "PRAGMA busy_timeout=50");
  Result<ApplyStats> blocked = applier_->Apply(
      std::vector<RowChange>{Book(2, Value::Text("b"), Value::Null())}, StreamPosition{"s", 8});
  EXPECT_FALSE(blocked.ok());
  EXPECT_NE(blocked.status().message().find("applying batch"), std::string::npos)
      << blocked.status().message();
  Exec(blocker, "ROLLBACK");
  EXPECT_EQ(*applier_->LoadPosition("s"), 7u);
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM books"), 1);
  Apply({Book(2, Value::Text("b"), Value::Null())}, StreamPosition{"s", 8, 1234});
  EXPECT_EQ(*applier_->LoadPosition("s"), 8u);
  EXPECT_EQ(applier_->LoadStreamPosition("s")->created_ns, 1234);
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM books"), 2);
}

TEST_F(ApplierTest, ForeignKeysAreNotEnforcedOnApply) {
  Exec(db_,
       "CREATE TABLE parent(id INTEGER PRIMARY KEY); CREATE TABLE child(id INTEGER PRIMARY KEY, p INT "
       "REFERENCES parent(id) ON DELETE CASCADE);");
  // The child can arrive before its parent (different shards) and a parent delete does not cascade
  // on replicas (the cascade's own deletes arrive as replicated changes).
  Apply({Upsert("child", {"id", "p"}, {Value::Integer(1), Value::Integer(9)}),
         Upsert("parent", {"id"}, {Value::Integer(9)})});
  Apply({Delete("parent", {"id"}, {Value::Integer(9)})});
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM child"), 1);
}

RowChange Echo(RowChange change) {
  change.echo = true;
  return change;
}

RowChange Book(int64_t id, const std::string& title, Value pages) {
  return Upsert("books", {"id", "title", "isbn", "pages"},
                {Value::Integer(id), Value::Text(title), Value::Null(), std::move(pages)});
}

TEST_F(ApplierTest, OwnChangesTheRowStillHoldsAreNotWrittenAgain) {
  Exec(db_, "INSERT INTO books(id, title, pages) VALUES (1, 'Dune', 412), (2, 'Emma', 300)");
  int64_t before = QueryInt(db_, "PRAGMA data_version");
  ApplyStats stats =
      Apply({Echo(Book(1, "Dune", Value::Integer(412))), Echo(Delete("books", {"id"}, {Value::Integer(7)}))},
            StreamPosition{"s", 3});
  EXPECT_EQ(stats.unchanged, 2u);
  EXPECT_EQ(stats.applied, 0u);
  EXPECT_EQ(*applier_->LoadPosition("s"), 3u);  // the position still moves
  EXPECT_NE(QueryInt(db_, "PRAGMA data_version"), before);

  // Anything that differs is written: another value, another type, a row that is still there.
  RowChange blob_title = Book(1, "", Value::Integer(412));
  blob_title.values[1] = Value::Blob("Dune");
  stats = Apply({Echo(blob_title), Echo(Book(3, "Ulysses", Value::Integer(730))),
                 Echo(Delete("books", {"id"}, {Value::Integer(2)}))});
  EXPECT_EQ(stats.unchanged, 0u);
  EXPECT_EQ(stats.applied, 3u);
  EXPECT_EQ(Rows(db_, "SELECT id, typeof(title) FROM books ORDER BY id"),
            (std::vector<std::string>{"1:1|3:'blob'", "1:3|3:'text'"}));

  // Not an echo: written even when equal (the hint decides whether to look, not what is right).
  EXPECT_EQ(Apply({Book(3, "Ulysses", Value::Integer(730))}).applied, 1u);
}

TEST_F(ApplierTest, AnEchoAfterAnotherChangeToItsRowInTheBatchIsApplied) {
  // The row holds v2. The batch brings v1 (from another node) and then this node's v2 back: v2
  // matches the row as it is now, but not as it is after v1, so it must be written.
  Exec(db_, "INSERT INTO books(id, title, pages) VALUES (1, 'v2', 2)");
  ApplyStats stats = Apply({Book(1, "v1", Value::Integer(1)), Echo(Book(1, "v2", Value::Integer(2)))});
  EXPECT_EQ(stats.applied, 2u);
  EXPECT_EQ(Rows(db_, "SELECT title FROM books"), (std::vector<std::string>{"3:'v2'"}));
  // Two echoes of one row, the first different from the row: the second is compared after it.
  stats = Apply({Echo(Book(1, "v3", Value::Integer(3))), Echo(Book(1, "v2", Value::Integer(2)))});
  EXPECT_EQ(stats.applied, 2u);
  EXPECT_EQ(Rows(db_, "SELECT title FROM books"), (std::vector<std::string>{"3:'v2'"}));
}

TEST_F(ApplierTest, AnEchoWhoseRowAnEarlierChangeOfTheBatchReplacesIsApplied) {
  // This node wrote book 2 with isbn x; another node wrote book 1 with isbn x just before, so the
  // stream holds 1 and then 2. Every node applies 1 (its REPLACE removes book 2, which holds the
  // UNIQUE isbn) and then 2 (which removes book 1): book 2 stays. Here 2 is an echo that the row
  // still holds before the batch, but not after book 1 went in: it must be written.
  Exec(db_, "INSERT INTO books(id, title, isbn, pages) VALUES (2, 'B', 'x', 1)");
  ApplyStats stats = Apply({Book(1, Value::Text("A"), Value::Integer(1), Value::Text("x")),
                            Echo(Book(2, Value::Text("B"), Value::Integer(1), Value::Text("x")))});
  EXPECT_EQ(stats.applied, 2u);
  EXPECT_EQ(Rows(db_, "SELECT id FROM books"), (std::vector<std::string>{"1:2"}));
  // Without another UNIQUE index in the table nothing can be replaced: the echo is skipped.
  Exec(db_, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (2, 'x')");
  stats = Apply({Upsert("notes", {"id", "body"}, {Value::Integer(1), Value::Text("x")}),
                 Echo(Upsert("notes", {"id", "body"}, {Value::Integer(2), Value::Text("x")}))});
  EXPECT_EQ(stats.applied, 1u);
  EXPECT_EQ(stats.unchanged, 1u);
}

TEST_F(ApplierTest, AnEchoOfFewerColumnsThanTheTableIsComparedOnItsColumns) {
  // The table gained a column here since this node wrote the change: the row holds what the change
  // wrote, so it is left alone (writing it would have to reset the new column).
  Exec(db_,
       "ALTER TABLE books ADD COLUMN note TEXT; INSERT INTO books(id, title, note) VALUES (1, 'a', 'x')");
  ApplyStats stats =
      Apply({Echo(Upsert("books", {"id", "title", "isbn", "pages"},
                         {Value::Integer(1), Value::Text("a"), Value::Null(), Value::Null()}))});
  EXPECT_EQ(stats.unchanged, 1u);
  EXPECT_EQ(Rows(db_, "SELECT ifnull(note, 'null') FROM books"), (std::vector<std::string>{"3:'x'"}));
  // One whose values differ writes its columns; the new column keeps its value.
  stats = Apply({Echo(Upsert("books", {"id", "title", "isbn", "pages"},
                             {Value::Integer(1), Value::Text("b"), Value::Null(), Value::Null()}))});
  EXPECT_EQ(stats.applied, 1u);
  EXPECT_EQ(Rows(db_, "SELECT title, note FROM books"), (std::vector<std::string>{"3:'b'|3:'x'"}));
}

TEST(ChangeToSqlTest, RendersLiteralsOfEveryType) {
  RowChange c = Upsert(
      "t \"q\"", {"a", "b", "c", "d", "e"},
      {Value::Null(), Value::Integer(-3), Value::Real(0.5), Value::Text("it's"), Value::Blob("\x01\xff")});
  EXPECT_EQ(ChangeToSql(c),
            "INSERT OR REPLACE INTO \"t \"\"q\"\"\" (\"a\", \"b\", \"c\", \"d\", \"e\") VALUES (NULL, -3, "
            "0.5, 'it''s', X'01FF')");
  RowChange d = Delete("t", {"k1", "k2"}, {Value::Integer(1), Value::Text("x")});
  EXPECT_EQ(ChangeToSql(d), "DELETE FROM \"t\" WHERE \"k1\" IS 1 AND \"k2\" IS 'x'");
}

// A batch that holds the write lock longer than max_hold() is committed in parts, each ending at a
// message boundary with the position just before the next message; every row still arrives and
// the final position is the batch's. (max_hold 0: every part is as short as allowed.)
TEST_F(ApplierTest, ABatchHoldingTheLockTooLongIsCommittedInPartsAtMessageBoundaries) {
  applier_->set_max_hold(std::chrono::milliseconds(0));
  std::vector<RowChange> batch;
  for (int i = 0; i < 300; ++i) {
    RowChange c = Upsert("books", {"id", "title", "isbn", "pages"},
                         {Value::Integer(i + 1), Value::Text("t"), Value::Null(), Value::Integer(1)});
    c.stream_seq = 1 + static_cast<uint64_t>(i / 10);  // 30 messages of 10 changes
    batch.push_back(std::move(c));
  }
  ApplyStats stats = Apply(batch, StreamPosition{"s-1", 30, 1});
  EXPECT_EQ(stats.applied, 300u);
  // The clock is read after 64 changes; the next boundary is at 70: 70 + 70 + 70 + 70 + 20.
  EXPECT_EQ(stats.transactions, 5u);
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM books"), 300);
  EXPECT_EQ(QueryInt(db_, "SELECT seq FROM __marmot__positions WHERE stream = 's-1'"), 30);

  // With the default bound a batch like this is one transaction.
  applier_->set_max_hold(Applier::kDefaultMaxHold);
  for (RowChange& c : batch) c.stream_seq += 30;
  stats = Apply(batch, StreamPosition{"s-1", 60, 1});
  EXPECT_EQ(stats.transactions, 1u);
  EXPECT_LT(stats.max_hold_seconds, 5.0);
}

}  // namespace
}  // namespace marmot
