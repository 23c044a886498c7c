// Schema replication pieces on real SQLite databases: the diff a node publishes, the reconcile
// that brings another node's schema to it with the data kept, and the canon every node computes
// from the same stream (identical migrations run everywhere end as one schema).
#include <sstream>

#include "codec/schema_message.h"
#include "db/capture.h"
#include "db/schema.h"
#include "db/schema_applier.h"
#include "db/schema_objects.h"
#include "db/schema_reconcile.h"
#include "test_util.h"

namespace marmot {
namespace {

using test::Exec;
using test::OpenDb;
using test::QueryInt;
using test::Rows;
using test::TempDir;

SchemaObjects Live(Database& db) {
  Result<SchemaObjects> live = ReadLiveSchema(db);
  EXPECT_TRUE(live.ok()) << live.status().message();
  return live.ok() ? *live : SchemaObjects();
}

TEST(SchemaObjectsTest, DeclaredColumnsOfACreateStatement) {
  auto columns =
      DeclaredColumns("t", "CREATE TABLE t(id INTEGER PRIMARY KEY, v, w TEXT NOT NULL DEFAULT 'x')");
  ASSERT_EQ(columns.size(), 3u);
  EXPECT_EQ(columns[1].first, "v");
  EXPECT_EQ(columns[2].second, "TEXT");
  EXPECT_TRUE(DeclaredColumns("t", "CREATE VIRTUAL TABLE t USING nosuchmodule(a)").empty());
}

TEST(SchemaObjectsTest, DiffFindsNewChangedDroppedAndRenamedColumns) {
  TempDir dir;
  Database db = OpenDb(dir.File("a.db"));
  Exec(db,
       "CREATE TABLE base(id TEXT PRIMARY KEY, node, v, old); CREATE TABLE gone(id); CREATE INDEX gi ON "
       "gone(id)");
  SchemaObjects before = Live(db);
  Exec(db, "ALTER TABLE base RENAME COLUMN v TO val; DROP TABLE gone; CREATE TABLE fresh(a)");
  SchemaObjects after = Live(db);
  SchemaChange change = DiffSchemas(before, after, {});
  std::vector<std::string> names;
  for (const ObjectTransition& t : change.objects) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"base", "fresh", "gi", "gone"}));
  ASSERT_EQ(change.renames.size(), 1u);
  EXPECT_EQ(change.renames[0], (SchemaRename{"base", "v", "val", true}));
  // The message survives encoding.
  Result<SchemaChange> decoded = DecodeSchemaChange(EncodeSchemaChange(change));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(*decoded, change);
}

TEST(SchemaObjectsTest, RenamesAndDropsAreRecordedForLateRows) {
  TempDir dir;
  Database db = OpenDb(dir.File("a.db"));
  Exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b, c); CREATE TABLE gone(id); CREATE TABLE old(id)");
  SchemaObjects before = Live(db);
  Exec(db, "ALTER TABLE t DROP COLUMN c; DROP TABLE gone");
  Exec(db, "ALTER TABLE old RENAME TO new");
  SchemaChange change = DiffSchemas(before, Live(db), {{"old", "new"}});
  Result<std::unique_ptr<SchemaApplier>> applier =
      SchemaApplier::Open(dir.File("a.db"));  // creates the tables
  ASSERT_TRUE(applier.ok()) << applier.status().message();
  ASSERT_TRUE(RecordRenames(db, change).ok());
  EXPECT_EQ(Rows(db, "SELECT tbl, old_name, new_name FROM __marmot__renamed ORDER BY 1, 2"),
            (std::vector<std::string>{"3:''|3:'gone'|3:''", "3:''|3:'old'|3:'new'", "3:'t'|3:'c'|3:''"}));
}

TEST(SchemaReconcileTest, AddColumnRenameColumnAndNewIndexKeepRows) {
  TempDir dir;
  Database origin = OpenDb(dir.File("origin.db"));
  Database other = OpenDb(dir.File("other.db"));
  for (Database* db : {&origin, &other})
    Exec(*db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'one'), (2, 'two')");
  SchemaObjects before = Live(origin);
  Exec(origin,
       "ALTER TABLE t ADD COLUMN extra INTEGER NOT NULL DEFAULT 7; ALTER TABLE t RENAME COLUMN v TO val;"
       "CREATE INDEX t_val ON t(val)");
  SchemaChange change = DiffSchemas(before, Live(origin), {});
  Exec(other, "BEGIN IMMEDIATE");
  Result<std::vector<std::string>> notes = ReconcileSchema(other, Live(origin), change.renames);
  ASSERT_TRUE(notes.ok()) << notes.status().message();
  Exec(other, "COMMIT");
  EXPECT_TRUE(notes->empty()) << (*notes)[0];
  EXPECT_EQ(Live(other), Live(origin));
  EXPECT_EQ(Rows(other, "SELECT id, val, extra FROM t ORDER BY id"),
            Rows(origin, "SELECT id, val, extra FROM t ORDER BY id"));
  EXPECT_EQ(Rows(other, "SELECT val FROM t WHERE id = 2"), (std::vector<std::string>{"3:'two'"}));
}

TEST(SchemaReconcileTest, RebuildsWhatAlterCannotDoAndKeepsRowids) {
  TempDir dir;
  Database origin = OpenDb(dir.File("origin.db"));
  Database other = OpenDb(dir.File("other.db"));
  for (Database* db : {&origin, &other}) {
    Exec(*db, "CREATE TABLE r(a TEXT, b INT); INSERT INTO r(rowid, a, b) VALUES (10, 'x', 1), (20, 'y', 2)");
  }
  // A changed type and a new CHECK: no ALTER TABLE does that; the origin rebuilt it by hand.
  Exec(origin,
       "CREATE TABLE r_new(a TEXT NOT NULL, b REAL CHECK (b > 0)); INSERT INTO r_new(rowid, a, b) SELECT "
       "rowid, a, b "
       "FROM r; DROP TABLE r; ALTER TABLE r_new RENAME TO r");
  Exec(other, "BEGIN IMMEDIATE");
  Result<std::vector<std::string>> notes = ReconcileSchema(other, Live(origin), {});
  ASSERT_TRUE(notes.ok()) << notes.status().message();
  Exec(other, "COMMIT");
  EXPECT_TRUE(notes->empty());
  EXPECT_EQ(Live(other), Live(origin));
  EXPECT_EQ(Rows(other, "SELECT rowid, a, b, typeof(b) FROM r ORDER BY rowid"),
            Rows(origin, "SELECT rowid, a, b, typeof(b) FROM r ORDER BY rowid"));
  EXPECT_EQ(QueryInt(other, "SELECT rowid FROM r WHERE a = 'y'"), 20);
}

// The same migration made on two nodes reaches a third node as two messages, in any order, with
// the first node's second step in between: every order ends with the migrated schema, and no
// message undoes another.
TEST(SchemaApplierTest, IdenticalMigrationsFromTwoNodesEndAsOneSchema) {
  TempDir dir;
  Database a = OpenDb(dir.File("a.db"));
  Exec(a, "CREATE TABLE t(id INTEGER PRIMARY KEY)");
  SchemaObjects s0 = Live(a);
  Exec(a, "ALTER TABLE t ADD COLUMN c TEXT");
  SchemaObjects s1 = Live(a);
  Exec(a, "ALTER TABLE t ADD COLUMN d TEXT");
  SchemaObjects s2 = Live(a);
  SchemaChange step1 = DiffSchemas(s0, s1, {});
  SchemaChange step2 = DiffSchemas(s1, s2, {});
  SchemaChange a1 = step1, a2 = step2, b1 = step1, b2 = step2;
  a1.origin_node = a2.origin_node = 1;
  b1.origin_node = b2.origin_node = 2;
  std::vector<std::vector<const SchemaChange*>> orders = {
      {&a1, &a2, &b1, &b2}, {&a1, &b1, &a2, &b2}, {&a1, &b1, &b2, &a2}, {&b1, &a1, &b2, &a2}};
  int n = 0;
  for (const auto& order : orders) {
    std::string path = dir.File("c" + std::to_string(n++) + ".db");
    {
      Database c = OpenDb(path);
      Exec(c, "CREATE TABLE t(id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)");
    }
    Result<std::unique_ptr<SchemaApplier>> applier = SchemaApplier::Open(path);
    ASSERT_TRUE(applier.ok()) << applier.status().message();
    uint64_t seq = 0;
    for (const SchemaChange* change : order) {
      Status s = (*applier)->Apply(*change, StreamPosition{"schema", ++seq, 0});
      ASSERT_TRUE(s.ok()) << s.message();
    }
    Database c = OpenDb(path);
    EXPECT_EQ(Live(c), s2) << "order " << n;
    EXPECT_EQ(QueryInt(c, "SELECT count(*) FROM t"), 1);
    EXPECT_TRUE((*applier)->settled());
  }
}

// A node's own schema change in flight is not undone by an older change from another node: the
// live schema waits until the stream has placed it.
TEST(SchemaApplierTest, OwnChangeInFlightIsNotUndone) {
  TempDir dir;
  std::string path = dir.File("n.db");
  {
    Database db = OpenDb(path);
    Exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY); CREATE TABLE u(id INTEGER PRIMARY KEY)");
  }
  Result<std::unique_ptr<SchemaApplier>> applier = SchemaApplier::Open(path);
  ASSERT_TRUE(applier.ok()) << applier.status().message();
  Database db = OpenDb(path);
  SchemaObjects s0 = Live(db);
  // Another node added u.x; this node's application meanwhile added t.own (not published yet).
  Exec(db, "ALTER TABLE u ADD COLUMN x");
  SchemaChange theirs = DiffSchemas(s0, Live(db), {});
  theirs.origin_node = 2;
  Exec(db, "ALTER TABLE u DROP COLUMN x; ALTER TABLE t ADD COLUMN own");
  ASSERT_TRUE((*applier)->Apply(theirs, StreamPosition{"schema", 1, 0}).ok());
  EXPECT_FALSE((*applier)->settled());
  EXPECT_EQ(QueryInt(db, "SELECT count(*) FROM pragma_table_info('t') WHERE name = 'own'"), 1);
  EXPECT_EQ(QueryInt(db, "SELECT count(*) FROM pragma_table_info('u') WHERE name = 'x'"), 0);
  // Published now (what the change reader does), and back from the stream as message 2.
  SchemaChange mine = DiffSchemas(s0, Live(db), {});
  mine.origin_node = 1;
  Exec(db, "BEGIN IMMEDIATE");
  ASSERT_TRUE(StoreSchemaRecord(db, kLocalRecord, Live(db)).ok());
  Exec(db, "INSERT OR REPLACE INTO __marmot__state (name, value) VALUES ('schema_published_seq', 2); COMMIT");
  mine.objects.erase(std::remove_if(mine.objects.begin(), mine.objects.end(),
                                    [](const ObjectTransition& t) { return t.name != "t"; }),
                     mine.objects.end());
  ASSERT_TRUE((*applier)->Apply(mine, StreamPosition{"schema", 2, 0}).ok());
  EXPECT_TRUE((*applier)->settled());
  EXPECT_EQ(QueryInt(db, "SELECT count(*) FROM pragma_table_info('t') WHERE name = 'own'"), 1);
  EXPECT_EQ(QueryInt(db, "SELECT count(*) FROM pragma_table_info('u') WHERE name = 'x'"), 1);
}

// A schema message that cannot be decoded is passed, and recorded where operators look.
TEST(SchemaApplierTest, AnUndecodableMessageIsDeadLetteredAndPassed) {
  TempDir dir;
  std::string path = dir.File("n.db");
  OpenDb(path);  // the node's database exists before marmot opens it
  Result<std::unique_ptr<SchemaApplier>> applier = SchemaApplier::Open(path);
  ASSERT_TRUE(applier.ok()) << applier.status().message();
  ASSERT_TRUE((*applier)->Skip(StreamPosition{"marmot-changes-schema", 7, 0}, "not JSON").ok());
  Database db = OpenDb(path);
  EXPECT_EQ(Rows(db, "SELECT stream, stream_seq, op, reason FROM __marmot__dead_letter"),
            (std::vector<std::string>{
                "3:'marmot-changes-schema'|1:7|3:'undecodable schema message'|3:'not JSON'"}));
  Result<StreamPosition> at = (*applier)->LoadPosition("marmot-changes-schema");
  ASSERT_TRUE(at.ok());
  EXPECT_EQ(at->seq, 7u);
}

// A migration that cannot be applied here (a UNIQUE index meets duplicates) is reported as an error
// once, not at every retry (the schema consumer retries every half second), and the retry
// succeeds once the data allows it.
TEST(SchemaApplierTest, AMigrationThatFailsHereIsReportedOnceAndAppliedOnceItCan) {
  TempDir dir;
  SchemaChange change;
  {
    Database a = OpenDb(dir.File("a.db"));
    Exec(a, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    SchemaObjects s0 = Live(a);
    Exec(a, "CREATE UNIQUE INDEX t_v ON t(v)");
    change = DiffSchemas(s0, Live(a), {});
    change.origin_node = 2;
  }
  std::string path = dir.File("n.db");
  {
    Database n = OpenDb(path);
    Exec(n, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'x')");
  }
  Result<std::unique_ptr<SchemaApplier>> applier = SchemaApplier::Open(path);
  ASSERT_TRUE(applier.ok()) << applier.status().message();
  std::ostringstream log;
  {
    test::CapturedLog capture(&log, /*levels=*/true);
    ASSERT_TRUE((*applier)->Apply(change, StreamPosition{"schema", 1, 0}).ok());
    EXPECT_FALSE((*applier)->settled());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE((*applier)->Retry().ok());
    EXPECT_FALSE((*applier)->settled());
  }
  auto count = [](const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(log.str(), "error schema: this node's schema differs from the cluster's"), 1u) << log.str();
  EXPECT_EQ(count(log.str(), "debug schema: this node's schema still differs"), 5u) << log.str();
  {
    Database n = OpenDb(path);
    Exec(n, "DELETE FROM t WHERE id = 2");
  }
  log.str("");
  {
    test::CapturedLog capture(&log, /*levels=*/true);
    ASSERT_TRUE((*applier)->Retry().ok());
  }
  EXPECT_TRUE((*applier)->settled());
  EXPECT_NE(log.str().find("info schema: this node's schema now equals the cluster's"), std::string::npos)
      << log.str();
  Database n = OpenDb(path);
  EXPECT_EQ(QueryInt(n, "SELECT count(*) FROM sqlite_schema WHERE name = 't_v'"), 1);
}

TEST(TableSelectionTest, GlobsIgnoreCaseAndExcludeWins) {
  TableSelection selection;
  selection.exclude = {"cache_*", "sessions"};
  EXPECT_TRUE(selection.Selects("posts"));
  EXPECT_FALSE(selection.Selects("cache_pages"));
  EXPECT_FALSE(selection.Selects("CACHE_x"));
  EXPECT_FALSE(selection.Selects("Sessions"));
  selection.include = {"p*"};
  EXPECT_FALSE(selection.Selects("users"));
  Result<TableSelection> back = TableSelection::FromJson(selection.ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, selection);
}

}  // namespace
}  // namespace marmot
