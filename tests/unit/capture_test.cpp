#include "db/capture.h"

#include <algorithm>

#include "db/applier.h"
#include "db/change_reader.h"
#include "db/marmot_tables.h"
#include "test_util.h"

namespace marmot {
namespace {

using test::Exec;
using test::OpenDb;
using test::QueryInt;
using test::TempDir;

class CaptureTest : public ::testing::Test {
 protected:
  void Install() {
    Result<std::vector<TableSchema>> tables = ReadSchema(db_);
    ASSERT_TRUE(tables.ok()) << tables.status().message();
    Status s = InstallCapture(db_, *tables);
    ASSERT_TRUE(s.ok()) << s.message();
    Result<std::unique_ptr<ChangeReader>> reader = ChangeReader::Open(path_);
    ASSERT_TRUE(reader.ok()) << reader.status().message();
    reader_ = std::move(*reader);
  }
  ChangeBatch Read(size_t max = 1000) {
    Result<ChangeBatch> batch = reader_->ReadBatch(max);
    EXPECT_TRUE(batch.ok()) << batch.status().message();
    return batch.ok() ? std::move(*batch) : ChangeBatch();
  }

  TempDir dir_;
  std::string path_ = dir_.File("app.db");
  Database db_ = OpenDb(path_);
  std::unique_ptr<ChangeReader> reader_;
};

TEST_F(CaptureTest, InsertUpdateDeleteBecomeUpsertsAndDeletes) {
  Exec(db_, "CREATE TABLE books(id INTEGER PRIMARY KEY, title TEXT, year INT)");
  Install();
  Exec(db_, "INSERT INTO books VALUES (1, 'Dune', 1965), (2, 'Emma', 1815)");
  ChangeBatch batch = Read();
  ASSERT_EQ(batch.changes.size(), 2u);
  EXPECT_EQ(batch.entries, 2u);
  const RowChange& first = batch.changes[0];
  EXPECT_EQ(first.table, "books");
  EXPECT_EQ(first.op, RowChange::Op::kUpsert);
  EXPECT_EQ(*first.columns, (std::vector<std::string>{"id", "title", "year"}));
  EXPECT_EQ(first.values, (std::vector<Value>{Value::Integer(1), Value::Text("Dune"), Value::Integer(1965)}));
  Value key = Value::Integer(1);
  EXPECT_EQ(first.row_hash, RowHash("books", {&key}));

  Exec(db_, "UPDATE books SET year = 1966 WHERE id = 1; DELETE FROM books WHERE id = 2");
  batch = Read();
  ASSERT_EQ(batch.changes.size(), 2u);
  EXPECT_EQ(batch.changes[0].values[2], Value::Integer(1966));
  EXPECT_EQ(batch.changes[1].op, RowChange::Op::kDelete);
  EXPECT_EQ(*batch.changes[1].columns, (std::vector<std::string>{"id"}));
  EXPECT_EQ(batch.changes[1].values, (std::vector<Value>{Value::Integer(2)}));
  Value deleted_key = Value::Integer(2);
  EXPECT_EQ(batch.changes[1].row_hash, RowHash("books", {&deleted_key}));
  EXPECT_TRUE(Read().empty());
}

TEST_F(CaptureTest, PrimaryKeyChangeIsDeleteOldPlusWriteNew) {
  Exec(db_, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  Exec(db_, "INSERT INTO t VALUES (1, 'a'), (2, 'b')");
  Install();
  Exec(db_, "UPDATE t SET id = id + 1000000");
  ChangeBatch batch = Read();
  int deletes = 0, upserts = 0;
  for (const RowChange& c : batch.changes) {
    if (c.op == RowChange::Op::kDelete) {
      ++deletes;
      EXPECT_LT(c.values[0].integer(), 1000000);
    } else {
      ++upserts;
      EXPECT_GT(c.values[0].integer(), 1000000);
    }
  }
  EXPECT_EQ(deletes, 2);
  EXPECT_EQ(upserts, 2);
}

TEST_F(CaptureTest, RepeatedChangesToOneRowCollapseToItsNewestState) {
  Exec(db_, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INT)");
  Install();
  Exec(db_,
       "INSERT INTO t VALUES (1, 0); UPDATE t SET v = 1; UPDATE t SET v = 2; INSERT INTO t VALUES (2, 9)");
  Exec(db_, "INSERT INTO t VALUES (3, 3); DELETE FROM t WHERE id = 3");
  ChangeBatch batch = Read();
  EXPECT_EQ(batch.entries, 6u);
  ASSERT_EQ(batch.changes.size(), 3u);
  EXPECT_EQ(batch.changes[0].values[0], Value::Integer(1));
  EXPECT_EQ(batch.changes[0].values[1], Value::Integer(2));
  EXPECT_EQ(batch.changes[2].op, RowChange::Op::kDelete);
  EXPECT_EQ(batch.changes[2].values[0], Value::Integer(3));
}

TEST_F(CaptureTest, EveryValueTypeIsReadExactly) {
  Exec(db_, "CREATE TABLE v(id INTEGER PRIMARY KEY, x)");
  Install();
  Result<Statement> ins = db_.Prepare("INSERT INTO v VALUES (?1, ?2)");
  ASSERT_TRUE(ins.ok());
  std::vector<Value> values = {
      Value::Null(),
      Value::Integer(INT64_MIN),
      Value::Integer(INT64_MAX),
      Value::Real(-0.0),
      Value::Real(std::numeric_limits<double>::infinity()),
      Value::Real(0.1 + 0.2),
      Value::Real(std::numeric_limits<double>::denorm_min()),
      Value::Text(std::string("nul\0inside", 10)),
      Value::Text("unicode \xF0\x9F\xA6\xAB \xC3\xA9"),
      Value::Text(""),
      Value::Blob(""),
      Value::Blob(std::string(3 * 1024 * 1024, '\xAB')),
  };
  for (size_t i = 0; i < values.size(); ++i) {
    ins->BindInt(1, static_cast<int64_t>(i));
    ins->Bind(2, values[i]);
    ASSERT_TRUE(ins->Run().ok());
    ins->Reset();
  }
  ChangeBatch batch = Read();
  ASSERT_EQ(batch.changes.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(batch.changes[i].values[1], values[i]) << "value #" << i << " " << values[i].ToDebugString();
  }
}

TEST_F(CaptureTest, WeirdIdentifiersNoKeyWithoutRowidCompositeAndGenerated) {
  Exec(db_,
       "CREATE TABLE \"odd \"\"table\"\" name\"(\"select\" INTEGER PRIMARY KEY, \"a.b c\" TEXT, \"ü\" INT);"
       "CREATE TABLE nokey(a TEXT, b INT);"
       "CREATE TABLE wr(k TEXT, j INT, v, PRIMARY KEY(j, k)) WITHOUT ROWID;"
       "CREATE TABLE gen(id INTEGER PRIMARY KEY, a INT, g INT GENERATED ALWAYS AS (a * 2) STORED);");
  Install();
  Exec(db_,
       "INSERT INTO \"odd \"\"table\"\" name\" VALUES (7, 'x', 1);"
       "INSERT INTO nokey VALUES ('n', 5);"
       "INSERT INTO wr VALUES ('key', 3, 'val');"
       "INSERT INTO gen(id, a) VALUES (1, 21);");
  ChangeBatch batch = Read();
  ASSERT_EQ(batch.changes.size(), 4u);
  EXPECT_EQ(batch.changes[0].table, "odd \"table\" name");
  EXPECT_EQ(*batch.changes[0].columns, (std::vector<std::string>{"select", "a.b c", "ü"}));
  EXPECT_EQ(*batch.changes[1].columns, (std::vector<std::string>{"rowid", "a", "b"}));
  EXPECT_EQ(batch.changes[1].values[0], Value::Integer(1));
  EXPECT_EQ(*batch.changes[2].columns, (std::vector<std::string>{"k", "j", "v"}));
  EXPECT_EQ(*batch.changes[3].columns, (std::vector<std::string>{"id", "a"}));

  Exec(db_, "UPDATE wr SET k = 'key2'; DELETE FROM nokey;");
  batch = Read();
  ASSERT_EQ(batch.changes.size(), 3u);
  // Order: wr new key (upsert), wr old key (delete), nokey delete — all keyed correctly.
  int wr_deletes = 0;
  for (const RowChange& c : batch.changes) {
    if (c.table == "wr" && c.op == RowChange::Op::kDelete) {
      ++wr_deletes;
      EXPECT_EQ(*c.columns, (std::vector<std::string>{"j", "k"}));
      EXPECT_EQ(c.values, (std::vector<Value>{Value::Integer(3), Value::Text("key")}));
    }
    if (c.table == "nokey") {
      EXPECT_EQ(c.op, RowChange::Op::kDelete);
      EXPECT_EQ(c.values, (std::vector<Value>{Value::Integer(1)}));
    }
  }
  EXPECT_EQ(wr_deletes, 1);
}

TEST_F(CaptureTest, EntriesStayUntilConfirmedAndSequencesAreNeverReused) {
  Exec(db_, "CREATE TABLE t(id INTEGER PRIMARY KEY)");
  Install();
  Exec(db_, "INSERT INTO t VALUES (1), (2), (3)");
  ChangeBatch batch = Read(2);
  EXPECT_EQ(batch.changes.size(), 2u);
  // Not confirmed: a restarted reader starts over.
  Result<std::unique_ptr<ChangeReader>> again = ChangeReader::Open(path_);
  ASSERT_TRUE(again.ok());
  Result<ChangeBatch> reread = (*again)->ReadBatch(10);
  ASSERT_TRUE(reread.ok());
  EXPECT_EQ(reread->changes.size(), 3u);

  reader_->Confirm(batch.last_seq, {});
  Result<size_t> deleted = reader_->DeleteConfirmed();
  ASSERT_TRUE(deleted.ok()) << deleted.status().message();
  EXPECT_EQ(*deleted, 2u);
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__change_log"), 1);

  batch = Read();
  ASSERT_EQ(batch.changes.size(), 1u);
  reader_->Confirm(batch.last_seq, {});
  ASSERT_TRUE(reader_->DeleteConfirmed().ok());
  // The newest entry is kept so the next change gets a higher sequence.
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__change_log"), 1);
  Exec(db_, "INSERT INTO t VALUES (4)");
  EXPECT_GT(QueryInt(db_, "SELECT max(seq) FROM __marmot__change_log"), static_cast<int64_t>(batch.last_seq));

  // A new reader resumes after the confirmed position.
  Result<std::unique_ptr<ChangeReader>> resumed = ChangeReader::Open(path_);
  ASSERT_TRUE(resumed.ok());
  Result<ChangeBatch> next = (*resumed)->ReadBatch(10);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->changes.size(), 1u);
  EXPECT_EQ(next->changes[0].values[0], Value::Integer(4));
}

TEST_F(CaptureTest, DataVersionSeesOtherConnectionsCommits) {
  Exec(db_, "CREATE TABLE t(id INTEGER PRIMARY KEY)");
  Install();
  ASSERT_TRUE(reader_->DatabaseChanged().ok());
  Result<bool> changed = reader_->DatabaseChanged();
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  Exec(db_, "INSERT INTO t VALUES (1)");
  changed = reader_->DatabaseChanged();
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
}

TEST_F(CaptureTest, IncomingChangesDoNotOverwriteLocalWritesTheReaderHasNotRead) {
  Exec(db_, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  Install();
  Result<std::unique_ptr<Applier>> applier = Applier::Open(path_);
  ASSERT_TRUE(applier.ok());
  Exec(db_, "INSERT INTO t VALUES (1, 'published'), (2, 'published')");
  ChangeBatch first = Read();
  ASSERT_EQ(first.changes.size(), 2u);
  // A newer local write to row 1 that the reader has not read yet.
  Exec(db_, "UPDATE t SET v = 'newer local' WHERE id = 1");
  // The stream now delivers the older version of row 1 (our own echo) and a remote write to row 2.
  RowChange echo = first.changes[0];
  RowChange remote = first.changes[1];
  remote.values[1] = Value::Text("remote");
  Result<ApplyStats> stats =
      (*applier)->Apply(std::vector<RowChange>{echo, remote}, StreamPosition{"s", 1}, reader_->cursor());
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->superseded, 1u);
  EXPECT_EQ(stats->applied, 1u);
  EXPECT_EQ(test::Rows(db_, "SELECT v FROM t ORDER BY id"),
            (std::vector<std::string>{"3:'newer local'", "3:'remote'"}));
  // Once read, the local write is in the reader's hands and incoming changes apply again.
  ChangeBatch second = Read();
  ASSERT_EQ(second.changes.size(), 1u);
  EXPECT_EQ(second.changes[0].values[1], Value::Text("newer local"));
  stats = (*applier)->Apply(std::vector<RowChange>{echo}, StreamPosition{"s", 2}, reader_->cursor());
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->superseded, 0u);
  EXPECT_EQ(stats->applied, 1u);
}

// An incoming row that a newer local write supersedes is not written, but its REPLACE removed the
// rows it conflicts with on another UNIQUE index on every node that applied it: here too.
TEST_F(CaptureTest, ASupersededIncomingRowStillRemovesTheRowsItReplacesEverywhere) {
  Exec(db_, "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT)");
  Install();
  Result<std::unique_ptr<Applier>> applier = Applier::Open(path_);
  ASSERT_TRUE(applier.ok());
  Exec(db_, "INSERT INTO users VALUES (1, 'b', 'one'), (5, 'a', 'five'), (7, 'c', 'seven')");
  ChangeBatch first = Read();
  ASSERT_EQ(first.changes.size(), 3u);
  // A newer local write to rows 1 and 7 that the reader has not read yet (7 is deleted).
  Exec(db_, "UPDATE users SET name = 'newer local' WHERE id = 1; DELETE FROM users WHERE id = 7");
  // Another node wrote row 1 with email a: its REPLACE removed row 5 there and on every node that
  // applied it; and row 7 with email b (row 1's email here).
  RowChange remote = first.changes[0];
  remote.values = {Value::Integer(1), Value::Text("a"), Value::Text("remote")};
  RowChange remote7 = first.changes[2];
  remote7.values = {Value::Integer(7), Value::Text("b"), Value::Text("remote")};
  Result<ApplyStats> stats =
      (*applier)->Apply(std::vector<RowChange>{remote, remote7}, StreamPosition{"s", 1}, reader_->cursor());
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->superseded, 2u);
  // Row 1 keeps the local write (it goes out next and wins), row 5 is gone as everywhere, and row
  // 7 stays deleted; row 1 is not removed by row 7's email, since row 1 itself goes out next.
  EXPECT_EQ(test::Rows(db_, "SELECT id, email, name FROM users ORDER BY id"),
            (std::vector<std::string>{"1:1|3:'b'|3:'newer local'"}));
}

// The local row goes back after the batch, but not over a row that an incoming change of the
// batch gave one of its unique values: without the superseded change written first, that change's
// REPLACE would have removed the local row, as the old applier did. Putting it back with REPLACE
// would remove the incoming row here only (a later local write to row 1 would publish no email f).
TEST_F(CaptureTest, ALocalRowPutBackAfterASupersededChangeGivesWayToANewerUniqueValue) {
  Exec(db_, "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT)");
  Install();
  Result<std::unique_ptr<Applier>> applier = Applier::Open(path_);
  ASSERT_TRUE(applier.ok());
  Exec(db_, "INSERT INTO users VALUES (1, 'x', 'one')");
  ChangeBatch first = Read();
  ASSERT_EQ(first.changes.size(), 1u);
  Exec(db_, "UPDATE users SET email = 'f' WHERE id = 1");  // not read yet
  RowChange remote1 = first.changes[0];
  remote1.values = {Value::Integer(1), Value::Text("e"), Value::Text("remote")};
  RowChange remote2 = first.changes[0];
  remote2.values = {Value::Integer(2), Value::Text("f"), Value::Text("two")};
  Result<ApplyStats> stats =
      (*applier)->Apply(std::vector<RowChange>{remote1, remote2}, StreamPosition{"s", 1}, reader_->cursor());
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->superseded, 1u);
  EXPECT_EQ(test::Rows(db_, "SELECT id, email FROM users ORDER BY id"),
            (std::vector<std::string>{"1:2|3:'f'"}));
  // Row 1's own entry publishes its removal.
  ChangeBatch second = Read();
  ASSERT_EQ(second.changes.size(), 1u);
  EXPECT_EQ(second.changes[0].op, RowChange::Op::kDelete);
}

// A superseded upsert that has to be written for the rows its REPLACE removes, but cannot be
// (here a CHECK that holds on this node only): the local write still wins, and the node records
// the change, already superseded, instead of going on without a word.
TEST_F(CaptureTest, ASupersededIncomingRowThatCannotBeWrittenIsRecorded) {
  Exec(db_, "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT CHECK (name <> 'bad'))");
  Install();
  Result<std::unique_ptr<Applier>> applier = Applier::Open(path_);
  ASSERT_TRUE(applier.ok());
  Exec(db_, "INSERT INTO users VALUES (1, 'b', 'one'), (5, 'a', 'five')");
  ChangeBatch first = Read();
  ASSERT_EQ(first.changes.size(), 2u);
  Exec(db_, "UPDATE users SET name = 'newer local' WHERE id = 1");  // not read yet
  RowChange remote = first.changes[0];
  remote.values = {Value::Integer(1), Value::Text("a"), Value::Text("bad")};
  Result<ApplyStats> stats =
      (*applier)->Apply(std::vector<RowChange>{remote}, StreamPosition{"s", 7}, reader_->cursor());
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->superseded, 1u);
  EXPECT_EQ(stats->dead_lettered, 1u);
  EXPECT_EQ(test::Rows(db_, "SELECT id, name FROM users ORDER BY id"),
            (std::vector<std::string>{"1:1|3:'newer local'", "1:5|3:'five'"}));
  EXPECT_EQ(test::Rows(db_, "SELECT stream_seq, superseded_seq, reason LIKE '%REPLACE%' FROM " +
                                std::string(kDeadLetterTable)),
            (std::vector<std::string>{"1:7|1:0|1:1"}));
  // Replay drops it (applying it would undo the newer local write) and says why.
  Result<Applier::ReplayOutcome> replay =
      (*applier)->ReplayDeadLetter(QueryInt(db_, "SELECT id FROM " + std::string(kDeadLetterTable)));
  ASSERT_TRUE(replay.ok()) << replay.status().message();
  EXPECT_EQ(replay->result, Applier::ReplayResult::kSuperseded);
  EXPECT_NE(replay->detail.find("local write"), std::string::npos) << replay->detail;
  EXPECT_EQ(QueryInt(db_, "SELECT name = 'newer local' FROM users WHERE id = 1"), 1);
}

// A row that the application's REPLACE removes for another UNIQUE index fires no delete trigger;
// capture logs it anyway, so its removal travels even when the writing row changes again before
// it is read. A row that OR IGNORE or DO NOTHING kept is not logged.
TEST_F(CaptureTest, RowsRemovedByReplaceForAnotherUniqueIndexAreLoggedAsDeletes) {
  Exec(db_, "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT)");
  Install();
  Exec(db_, "INSERT INTO users VALUES (5, 'a', 'five'), (6, 'b', 'six'), (7, 'c', 'seven')");
  Read();
  Exec(db_,
       "INSERT OR REPLACE INTO users VALUES (1, 'a', 'one');"  // removes 5
       "UPDATE users SET email = 'z' WHERE id = 1;"            // ... and 'a' never travels
       "INSERT OR IGNORE INTO users VALUES (2, 'b', 'two');"
       "INSERT INTO users VALUES (3, 'b', 'three') ON CONFLICT DO NOTHING;"
       "UPDATE OR REPLACE users SET email = 'c' WHERE id = 6;"  // removes 7
       "UPDATE users SET name = 'six again' WHERE id = 6;");
  EXPECT_FALSE(db_.Exec("INSERT INTO users VALUES (4, 'z', 'four')").ok());  // fails, removes nothing
  std::vector<std::string> seen;
  for (const RowChange& c : Read().changes) {
    seen.push_back((c.op == RowChange::Op::kDelete ? "delete " : "upsert ") + c.values[0].ToDebugString());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"delete 5", "delete 7", "upsert 1", "upsert 6"}));
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM " + std::string(kReplacedRowsTable)), 0);
}

// A note that an OR IGNORE left names a row that was still there; when the applier removes that row
// later (a delete from another node), a later local insert must not publish the removal as its own.
TEST_F(CaptureTest, NotesAnIgnoredInsertLeftDoNotClaimARowTheApplierRemoved) {
  Exec(db_, "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT)");
  Install();
  Result<std::unique_ptr<Applier>> applier = Applier::Open(path_);
  ASSERT_TRUE(applier.ok());
  Exec(db_, "INSERT INTO users VALUES (6, 'b', 'six'), (9, 'x', 'nine'); DELETE FROM users WHERE id = 9");
  ChangeBatch first = Read();
  ASSERT_EQ(first.changes.size(), 2u);
  ASSERT_EQ(first.changes[1].op, RowChange::Op::kDelete);
  Exec(db_, "INSERT OR IGNORE INTO users VALUES (2, 'b', 'two')");  // leaves a note naming row 6
  RowChange remote_delete = first.changes[1];
  remote_delete.values = {Value::Integer(6)};
  Result<ApplyStats> stats =
      (*applier)->Apply(std::vector<RowChange>{remote_delete}, StreamPosition{"s", 1}, reader_->cursor());
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  ASSERT_EQ(stats->applied, 1u);
  Exec(db_, "INSERT INTO users VALUES (3, 'c', 'three')");
  ChangeBatch second = Read();
  ASSERT_EQ(second.changes.size(), 1u);
  EXPECT_EQ(second.changes[0].op, RowChange::Op::kUpsert);
  EXPECT_EQ(second.changes[0].values[0], Value::Integer(3));
}

// The same for a composite key and an index with its own collation.
TEST_F(CaptureTest, ReplaceRemovalsFollowCompositeKeysAndTheIndexCollation) {
  Exec(db_, "CREATE TABLE c(a INT, b INT, label TEXT, PRIMARY KEY (a, b), UNIQUE (label COLLATE NOCASE))");
  Install();
  Exec(db_, "INSERT INTO c VALUES (1, 1, 'X'), (1, 2, 'Y')");
  Read();
  Exec(db_, "INSERT OR REPLACE INTO c VALUES (2, 2, 'x'); UPDATE c SET label = 'w' WHERE a = 2");
  std::vector<std::string> seen;
  for (const RowChange& c : Read().changes) {
    seen.push_back((c.op == RowChange::Op::kDelete ? "delete " : "upsert ") + c.values[0].ToDebugString() +
                   "," + c.values[1].ToDebugString());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"delete 1,1", "upsert 2,2"}));
}

// Cases the review of the REPLACE triggers found: a removed row whose key is -1 (NEW's rowid in a
// BEFORE INSERT trigger when SQLite picks it), and a unique value changed only in case in a
// column whose own collation ignores case.
TEST_F(CaptureTest, ReplaceRemovalsOfKeyMinusOneAndOfCaseOnlyChangesAreLogged) {
  Exec(db_,
       "CREATE TABLE t(id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);"
       "CREATE TABLE n(id INTEGER PRIMARY KEY, email TEXT COLLATE NOCASE, UNIQUE (email COLLATE BINARY))");
  Install();
  Exec(db_, "INSERT INTO t VALUES (-1, 'unknown', 'placeholder'); INSERT INTO n VALUES (1, 'a'), (2, 'A')");
  Read();
  Exec(db_,
       "INSERT OR REPLACE INTO t(email, name) VALUES ('unknown', 'z'); UPDATE OR REPLACE n SET email = 'A' "
       "WHERE id = 1");
  std::vector<std::string> seen;
  for (const RowChange& c : Read().changes) {
    seen.push_back(c.table + (c.op == RowChange::Op::kDelete ? " delete " : " upsert ") +
                   c.values[0].ToDebugString());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"n delete 2", "n upsert 1", "t delete -1", "t upsert 0"}));
}

// The trigger's name for its notes cannot be taken by an application table: a table "r" with a
// column "k1" once caught an alias "r".
TEST_F(CaptureTest, ReplaceRemovalsInATableNamedLikeTheTriggersAliasAreLogged) {
  Exec(db_, "CREATE TABLE r(id INTEGER PRIMARY KEY, u TEXT UNIQUE, k1)");
  Install();
  Exec(db_, "INSERT INTO r VALUES (1, 'a', 100), (2, 'b', 200)");
  Read();
  Exec(db_, "INSERT OR REPLACE INTO r VALUES (3, 'a', 3)");
  std::vector<std::string> seen;
  for (const RowChange& c : Read().changes) {
    seen.push_back((c.op == RowChange::Op::kDelete ? "delete " : "upsert ") + c.values[0].ToDebugString());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"delete 1", "upsert 3"}));
}

// The application's migrations keep working: the REPLACE triggers name no column of an index made
// by CREATE UNIQUE INDEX, so that index and then its column can be dropped in one transaction
// (a trigger naming the column would make DROP COLUMN fail until capture is installed again).
TEST_F(CaptureTest, AUniqueIndexAndItsColumnCanBeDroppedInOneMigration) {
  Exec(db_,
       "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT, name TEXT);"
       "CREATE UNIQUE INDEX users_email ON users(email)");
  Install();
  Status migrated = db_.Exec("BEGIN; DROP INDEX users_email; ALTER TABLE users DROP COLUMN email; COMMIT");
  EXPECT_TRUE(migrated.ok()) << migrated.message();
  if (!migrated.ok()) (void)db_.Exec("ROLLBACK");
}

TEST_F(CaptureTest, InstallIsIdempotentAndFollowsDroppedTables) {
  Exec(db_, "CREATE TABLE a(id INTEGER PRIMARY KEY); CREATE TABLE b(id INTEGER PRIMARY KEY);");
  Install();
  Install();
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM sqlite_schema WHERE type='trigger'"), 8);
  Exec(db_, "DROP TABLE b");
  Install();
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM sqlite_schema WHERE type='trigger'"), 4);
}

// A table renamed before the change reader published the schema (marmot stopped, NATS away) is
// recorded at the next installation, chained across installations, until it is published.
TEST_F(CaptureTest, RenamesFoundAtInstallationAreKeptChainedUntilPublished) {
  using Renames = std::vector<std::pair<std::string, std::string>>;
  Exec(db_, "CREATE TABLE a(id INTEGER PRIMARY KEY); CREATE TABLE x(id INTEGER PRIMARY KEY);");
  Install();
  auto unpublished = [this] {
    Result<Renames> renames = UnpublishedTableRenames(db_);
    EXPECT_TRUE(renames.ok()) << renames.status().message();
    return renames.ok() ? *renames : Renames();
  };
  EXPECT_EQ(unpublished(), Renames());
  Exec(db_, "ALTER TABLE a RENAME TO b; ALTER TABLE x RENAME TO y");
  Install();
  EXPECT_EQ(unpublished(), (Renames{{"a", "b"}, {"x", "y"}}));
  Exec(db_, "ALTER TABLE b RENAME TO c; ALTER TABLE y RENAME TO x");  // x is back to its name
  Install();
  EXPECT_EQ(unpublished(), (Renames{{"a", "c"}}));
  ASSERT_TRUE(ForgetUnpublishedTableRenames(db_).ok());
  EXPECT_EQ(unpublished(), Renames());
  // Renames of one installation stand side by side, also when they reuse names (a swap).
  Exec(db_, "CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE q(id INTEGER PRIMARY KEY);");
  Install();
  ASSERT_TRUE(ForgetUnpublishedTableRenames(db_).ok());
  Exec(db_, "ALTER TABLE p RENAME TO tmp; ALTER TABLE q RENAME TO p; ALTER TABLE tmp RENAME TO q");
  Install();
  Renames swap = unpublished();
  std::sort(swap.begin(), swap.end());
  EXPECT_EQ(swap, (Renames{{"p", "q"}, {"q", "p"}}));
  ASSERT_TRUE(ForgetUnpublishedTableRenames(db_).ok());
  // A recorded rename whose table was dropped and created again no longer stands.
  Exec(db_, "ALTER TABLE c RENAME TO d");
  Install();
  EXPECT_EQ(unpublished(), (Renames{{"c", "d"}}));
  Exec(db_, "DROP TABLE d; CREATE TABLE d(id INTEGER PRIMARY KEY, other TEXT)");
  Install();
  EXPECT_EQ(unpublished(), Renames());
}

TEST_F(CaptureTest, WiderKeysAddChangeLogColumns) {
  Exec(db_, "CREATE TABLE a(id INTEGER PRIMARY KEY)");
  Install();
  Result<int> width = ChangeLogKeyColumns(db_);
  ASSERT_TRUE(width.ok());
  EXPECT_EQ(*width, 1);
  Exec(db_, "CREATE TABLE c(p, q, r, s, t, PRIMARY KEY(p, q, r, s, t))");
  Install();
  width = ChangeLogKeyColumns(db_);
  EXPECT_EQ(*width, 5);
  Exec(db_, "INSERT INTO c VALUES (1, 2, 3, 4, 5); DELETE FROM c");
  ChangeBatch batch = Read();
  ASSERT_EQ(batch.changes.size(), 1u);
  EXPECT_EQ(batch.changes[0].op, RowChange::Op::kDelete);
  EXPECT_EQ(batch.changes[0].values.size(), 5u);
}

TEST_F(CaptureTest, RemoveCaptureRestoresTheSchemaAndKeepsTheData) {
  Exec(db_,
       "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t(v);"
       "CREATE TABLE audit(n); CREATE TRIGGER app_trigger AFTER INSERT ON t BEGIN INSERT INTO audit VALUES "
       "(NEW.id); END;"
       "INSERT INTO t VALUES (1, 'one');");
  std::vector<std::string> schema_before =
      test::Rows(db_, "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name");
  Install();
  Exec(db_, "INSERT INTO t VALUES (2, 'two'); UPDATE t SET v = 'uno' WHERE id = 1;");
  std::vector<std::string> rows_before = test::Rows(db_, "SELECT * FROM t ORDER BY id");
  std::vector<std::string> audit_before = test::Rows(db_, "SELECT * FROM audit ORDER BY rowid");
  reader_.reset();
  Status s = RemoveCapture(db_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(test::Rows(db_, "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name"),
            schema_before);
  EXPECT_EQ(test::Rows(db_, "SELECT * FROM t ORDER BY id"), rows_before);
  EXPECT_EQ(test::Rows(db_, "SELECT * FROM audit ORDER BY rowid"), audit_before);
  EXPECT_EQ(
      QueryInt(db_, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_\\_marmot\\_\\_%' ESCAPE '\\'"),
      0);
}

// "table:key=value" of every change of a batch, sorted.
std::vector<std::string> Summary(const ChangeBatch& batch) {
  std::vector<std::string> out;
  for (const RowChange& c : batch.changes) {
    out.push_back(c.table + ":" + c.values[0].ToDebugString() + "=" +
                  (c.op == RowChange::Op::kUpsert ? c.values.back().ToDebugString() : "deleted"));
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(CaptureTest, SchemaChangesWhileRunningAreFollowed) {
  Exec(db_, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  Install();
  Exec(db_, "INSERT INTO t VALUES (1, 'a')");
  EXPECT_EQ(Summary(Read()), (std::vector<std::string>{"t:1='a'"}));
  // A column added: the next read carries it (the reader's column list is not stale).
  Exec(db_, "ALTER TABLE t ADD COLUMN w TEXT; INSERT INTO t VALUES (2, 'b', 'new')");
  ChangeBatch batch = Read();
  ASSERT_EQ(batch.changes.size(), 1u);
  EXPECT_EQ(*batch.changes[0].columns, (std::vector<std::string>{"id", "v", "w"}));
  // A column renamed: its values, never its old name as a string.
  Exec(db_, "ALTER TABLE t RENAME COLUMN v TO name; UPDATE t SET name = 'c' WHERE id = 1");
  batch = Read();
  ASSERT_EQ(batch.changes.size(), 1u);
  EXPECT_EQ(*batch.changes[0].columns, (std::vector<std::string>{"id", "name", "w"}));
  EXPECT_EQ(batch.changes[0].values[1], Value::Text("c"));
  // A new table gets triggers without a restart.
  Exec(db_, "CREATE TABLE fresh(id INTEGER PRIMARY KEY, x)");
  EXPECT_EQ(Summary(Read()), std::vector<std::string>{});
  Exec(db_, "INSERT INTO fresh VALUES (7, 'x')");
  EXPECT_EQ(Summary(Read()), (std::vector<std::string>{"fresh:7='x'"}));
  // A dropped table with a change not read yet: skipped, the rest flows on.
  Exec(db_,
       "BEGIN; INSERT INTO fresh VALUES (8, 'y'); DROP TABLE fresh; INSERT INTO t VALUES (3, 'd', NULL); "
       "COMMIT;");
  EXPECT_EQ(Summary(Read()), (std::vector<std::string>{"t:3=NULL"}));
}

TEST_F(CaptureTest, RenamedTablesKeepTheirLoggedChanges) {
  Exec(db_, "CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE b(id INTEGER PRIMARY KEY, v TEXT)");
  Install();
  // Renamed with a change not read yet: the change is read from the new name.
  Exec(db_, "INSERT INTO a VALUES (1, 'in a'); ALTER TABLE a RENAME TO c");
  EXPECT_EQ(Summary(Read()), (std::vector<std::string>{"c:1='in a'"}));
  Exec(db_, "INSERT INTO c VALUES (2, 'later')");
  EXPECT_EQ(Summary(Read()), (std::vector<std::string>{"c:2='later'"}));
  // Two tables swap names: each change follows its rows.
  Exec(db_,
       "INSERT INTO b VALUES (1, 'in b'); INSERT INTO c VALUES (3, 'in c');"
       "ALTER TABLE b RENAME TO tmp; ALTER TABLE c RENAME TO b; ALTER TABLE tmp RENAME TO c;");
  EXPECT_EQ(Summary(Read()), (std::vector<std::string>{"b:3='in c'", "c:1='in b'"}));
  Exec(db_, "INSERT INTO b VALUES (4, 'x'); INSERT INTO c VALUES (5, 'y')");
  EXPECT_EQ(Summary(Read()), (std::vector<std::string>{"b:4='x'", "c:5='y'"}));
}

TEST_F(CaptureTest, TheTwelveStepAlterKeepsLoggedChanges) {
  Exec(db_, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'one')");
  Install();
  Exec(db_, "UPDATE t SET v = 'uno' WHERE id = 1");
  // SQLite's recommended way to change a table, step by step in autocommit, with marmot noticing
  // the new table in between (it gets its own id and triggers).
  Exec(db_, "CREATE TABLE new_t(id INTEGER PRIMARY KEY, v TEXT, n INT DEFAULT 0)");
  ASSERT_TRUE(reader_->RefreshIfSchemaChanged().ok());
  Exec(db_, "INSERT INTO new_t(id, v) SELECT id, v FROM t");
  Exec(db_, "DROP TABLE t");
  Exec(db_, "ALTER TABLE new_t RENAME TO t");
  Exec(db_, "INSERT INTO t VALUES (2, 'two', 2)");
  std::vector<std::string> read = Summary(Read());
  // Every change is read from the table now called t (none lost to "no such table").
  for (const std::string& r : read) EXPECT_EQ(r.rfind("t:", 0), 0u) << r;
  EXPECT_NE(std::find(read.begin(), read.end(), "t:1=0"), read.end());
  EXPECT_NE(std::find(read.begin(), read.end(), "t:2=2"), read.end());
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM __marmot__tables WHERE name = 't'"), 1);
}

}  // namespace
}  // namespace marmot
