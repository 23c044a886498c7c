// Snapshot files, the restore into a live database, and SnapshotKeeper's save / find / fetch /
// retention, on real SQLite files. The store is a directory (DirStore below, a fake behind the
// SnapshotStore seam); the four real stores have their own tests against real servers.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "db/capture.h"
#include "db/marmot_tables.h"
#include "db/schema.h"
#include "snapshot/live_restore.h"
#include "snapshot/manifest.h"
#include "snapshot/snapshot_file.h"
#include "snapshot/snapshot_keeper.h"
#include "test_util.h"

namespace marmot {
namespace {

namespace fs = std::filesystem;
using test::Exec;
using test::OpenDb;
using test::QueryInt;
using test::TempDir;

const std::atomic<bool> kNoStop{false};

// A store in a local directory.
class DirStore : public SnapshotStore {
 public:
  explicit DirStore(std::string dir) : dir_(std::move(dir)) { fs::create_directories(dir_); }
  std::string Describe() const override { return "dir store " + dir_; }
  Status Put(const std::string& name, const std::string& local, ProgressSink*) override {
    ++puts;
    if (fail_puts) return Status::Unavailable(Describe() + ": put " + name + ": server unreachable");
    fs::copy_file(local, dir_ + "/" + name, fs::copy_options::overwrite_existing);
    return Status();
  }
  Status Get(const std::string& name, const std::string& local, ProgressSink*) override {
    if (!fs::exists(dir_ + "/" + name))
      return Status::NotFound(Describe() + ": " + name + ": no such object");
    fs::copy_file(dir_ + "/" + name, local, fs::copy_options::overwrite_existing);
    return Status();
  }
  Result<std::vector<StoredObject>> List() override {
    std::vector<StoredObject> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      out.push_back({e.path().filename().string(), static_cast<uint64_t>(e.file_size())});
    }
    return out;
  }
  Status Remove(const std::string& name) override {
    fs::remove(dir_ + "/" + name);
    return Status();
  }
  std::vector<std::string> Names() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  int puts = 0;
  bool fail_puts = false;

 private:
  std::string dir_;
};

// A replicated database: capture installed, two tables, a position, a dead letter and some log.
void MakeNodeDb(const std::string& path, int rows) {
  Database db = OpenDb(path);
  Exec(db,
       "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT); CREATE TABLE \"odd \"\"name\" (k TEXT "
       "PRIMARY KEY)");
  Result<std::vector<TableSchema>> tables = ReadSchema(db);
  ASSERT_TRUE(tables.ok());
  ASSERT_TRUE(InstallCapture(db, *tables).ok());
  Exec(db, "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < " +
               std::to_string(rows) +
               ") INSERT INTO books SELECT x, 'title ' || x || printf(' %040d', x) FROM i");
  Exec(db, "INSERT INTO \"odd \"\"name\" VALUES ('a')");
  Exec(db,
       "INSERT INTO __marmot__positions (stream, seq, stream_created) VALUES ('marmot-changes-c-1', 41, "
       "123456789)");
  Exec(db,
       "INSERT INTO __marmot__dead_letter (stream, stream_seq, tbl, op, reason, statement) "
       "VALUES ('s', 7, 'books', 'insert', 'no such column', 'INSERT ...')");
}

std::string Dump(const std::string& path) {
  Database db = OpenDb(path);
  std::string out;
  for (const std::string& row : test::Rows(db, "SELECT * FROM books ORDER BY id")) out += row + "\n";
  for (const std::string& row : test::Rows(db, "SELECT * FROM \"odd \"\"name\"")) out += row + "\n";
  return out;
}

TEST(SnapshotManifestTest, JsonRoundTripAndRejections) {
  SnapshotManifest m;
  m.id = NewSnapshotId(std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123)), 0xa1);
  EXPECT_EQ(m.id, "snapshot-20231114T221320123Z-00000000000000a1");
  m.node_id = 0xa1;
  m.sha256 = std::string(64, 'f');
  m.positions = {{"s-1", 5, 99}, {"s-2", 0, 0}};
  m.tables = {{"books", 10}};
  Result<SnapshotManifest> back = ManifestFromJson(ManifestToJson(m), "x");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->id, m.id);
  EXPECT_EQ(back->PositionOf("s-1"), 5u);
  EXPECT_EQ(back->positions[0].created_ns, 99);
  EXPECT_EQ(back->tables[0].rows, 10);
  EXPECT_TRUE(ManifestFromJson("{", "obj").status().Is(StatusCode::kCorruption));
  std::string newer = ManifestToJson(m);
  newer.replace(newer.find("\"format\": 1"), 11, "\"format\": 2");
  Result<SnapshotManifest> future = ManifestFromJson(newer, "obj");
  ASSERT_FALSE(future.ok());
  EXPECT_NE(future.status().message().find("upgrade marmot"), std::string::npos);
}

TEST(SnapshotFileTest, HoldsTheRowsAndPositionsWithoutNodeLocalObjects) {
  TempDir dir;
  MakeNodeDb(dir.File("node.db"), 1000);
  Result<LocalSnapshot> snap = WriteSnapshotFile(dir.File("node.db"), dir.path(), 7, nullptr);
  ASSERT_TRUE(snap.ok()) << snap.status().message();
  const SnapshotManifest& m = snap->manifest;
  EXPECT_EQ(m.node_id, 7u);
  ASSERT_EQ(m.positions.size(), 1u);
  EXPECT_EQ(m.positions[0].seq, 41u);
  EXPECT_EQ(m.positions[0].created_ns, 123456789);
  ASSERT_EQ(m.tables.size(), 2u);
  EXPECT_EQ(m.tables[0].name, "books");
  EXPECT_EQ(m.tables[0].rows, 1000);
  EXPECT_EQ(m.object_bytes, fs::file_size(snap->data_path));
  EXPECT_LT(m.object_bytes, m.db_bytes);
  // Only the data object is left in the work directory.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()),
            4);  // db, -wal, -shm, zst

  ASSERT_TRUE(UnpackSnapshotFile(snap->data_path, m, dir.File("out.db"), nullptr).ok());
  EXPECT_EQ(Dump(dir.File("out.db")), Dump(dir.File("node.db")));
  Database out = OpenDb(dir.File("out.db"));
  EXPECT_EQ(
      test::Texts(out, "SELECT name FROM sqlite_schema WHERE name LIKE '\\_\\_marmot\\_\\_%' ESCAPE '\\'"),
      std::vector<std::string>{"__marmot__positions"});
  EXPECT_EQ(QueryInt(out, "SELECT seq FROM __marmot__positions"), 41);
}

TEST(SnapshotFileTest, ADamagedObjectIsRejectedAndNothingIsLeft) {
  TempDir dir;
  MakeNodeDb(dir.File("node.db"), 200);
  Result<LocalSnapshot> snap = WriteSnapshotFile(dir.File("node.db"), dir.path(), 1, nullptr);
  ASSERT_TRUE(snap.ok());
  {
    std::fstream f(snap->data_path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(snap->manifest.object_bytes / 2));
    f.put('\x5a');
  }
  Status s = UnpackSnapshotFile(snap->data_path, snap->manifest, dir.File("out.db"), nullptr);
  EXPECT_TRUE(s.Is(StatusCode::kCorruption)) << s.message();
  EXPECT_NE(s.message().find(snap->manifest.id), std::string::npos);
  EXPECT_FALSE(fs::exists(dir.File("out.db")));
}

TEST(SnapshotFileTest, ANodeWithRecordedGapsSavesNoSnapshot) {
  TempDir dir;
  MakeNodeDb(dir.File("node.db"), 10);
  {
    Database db = OpenDb(dir.File("node.db"));
    Exec(db, "INSERT INTO __marmot__gaps (stream, first_missing, reason) VALUES ('s', 3, 'discarded')");
  }
  Result<LocalSnapshot> snap = WriteSnapshotFile(dir.File("node.db"), dir.path(), 1, nullptr);
  ASSERT_FALSE(snap.ok());
  EXPECT_NE(snap.status().message().find("gap"), std::string::npos);
}

class LiveRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeNodeDb(dir.File("source.db"), 100000);
    Result<LocalSnapshot> snap = WriteSnapshotFile(dir.File("source.db"), dir.path(), 1, nullptr);
    ASSERT_TRUE(snap.ok());
    ASSERT_TRUE(UnpackSnapshotFile(snap->data_path, snap->manifest, dir.File("snap.db"), nullptr).ok());
    MakeNodeDb(dir.File("live.db"), 3);  // an older copy, with its own dead letter
    Database live = OpenDb(dir.File("live.db"));
    Exec(live, "INSERT INTO __marmot__gaps (stream, first_missing, reason) VALUES ('s', 3, 'discarded')");
  }
  TempDir dir;
};

TEST_F(LiveRestoreTest, ReplacesTheContentKeepsDeadLettersAndCapturesAtOnce) {
  Database reader = OpenDb(dir.File("live.db"));
  Exec(reader, "BEGIN");
  EXPECT_EQ(QueryInt(reader, "SELECT count(*) FROM books"), 3);  // a read transaction stays open

  ASSERT_TRUE(PrepareSnapshotForRestore(dir.File("snap.db"), dir.File("live.db")).ok());
  bool called = false;
  Status s = RestoreDatabase(
      dir.File("live.db"), dir.File("snap.db"),
      [&] {
        called = true;
        return Status();
      },
      nullptr, kNoStop);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(called);
  EXPECT_EQ(QueryInt(reader, "SELECT count(*) FROM books"), 3);  // its snapshot is unchanged
  Exec(reader, "COMMIT");

  EXPECT_EQ(Dump(dir.File("live.db")), Dump(dir.File("source.db")));
  Database live = OpenDb(dir.File("live.db"));
  EXPECT_EQ(QueryInt(live, "SELECT seq FROM __marmot__positions"), 41);
  EXPECT_EQ(QueryInt(live, "SELECT count(*) FROM __marmot__gaps"), 0);
  EXPECT_EQ(QueryInt(live, "SELECT count(*) FROM __marmot__dead_letter"), 1);
  // The application's first write after the restore is captured.
  Exec(live, "INSERT INTO books VALUES (999999, 'after')");
  EXPECT_EQ(QueryInt(live, "SELECT count(*) FROM __marmot__change_log"), 1);
}

// Tables the selection leaves out are each node's own: not in a snapshot, and a restore keeps the
// live database's copy of them (with its index), whatever the snapshot holds under that name.
TEST(LiveRestoreSelectionTest, TablesLeftOutStayTheNodesOwn) {
  TempDir dir;
  TableSelection selection;
  selection.exclude = {"cache_*"};
  for (const char* name : {"source.db", "live.db"}) {
    MakeNodeDb(dir.File(name), 10);
    Database db = OpenDb(dir.File(name));
    ASSERT_TRUE(StoreTableSelection(db, selection).ok());
    Exec(db, std::string(
                 "CREATE TABLE cache_pages (k TEXT PRIMARY KEY, v); CREATE INDEX cache_v ON cache_pages(v);"
                 "INSERT INTO cache_pages VALUES ('from', '") +
                 name + "')");
  }
  Result<LocalSnapshot> snap = WriteSnapshotFile(dir.File("source.db"), dir.path(), 1, nullptr);
  ASSERT_TRUE(snap.ok()) << snap.status().message();
  for (const SnapshotTable& t : snap->manifest.tables) EXPECT_NE(t.name, "cache_pages");
  ASSERT_TRUE(UnpackSnapshotFile(snap->data_path, snap->manifest, dir.File("snap.db"), nullptr).ok());
  {
    Database unpacked = OpenDb(dir.File("snap.db"));
    EXPECT_EQ(QueryInt(unpacked, "SELECT count(*) FROM sqlite_schema WHERE name = 'cache_pages'"), 0);
  }
  ASSERT_TRUE(PrepareSnapshotForRestore(dir.File("snap.db"), dir.File("live.db")).ok());
  Status s = RestoreDatabase(
      dir.File("live.db"), dir.File("snap.db"), [] { return Status(); }, nullptr, kNoStop);
  ASSERT_TRUE(s.ok()) << s.message();
  Database live = OpenDb(dir.File("live.db"));
  EXPECT_EQ(test::Texts(live, "SELECT v FROM cache_pages"), std::vector<std::string>{"live.db"});
  EXPECT_EQ(QueryInt(live, "SELECT count(*) FROM sqlite_schema WHERE name = 'cache_v'"), 1);
  EXPECT_EQ(QueryInt(live, "SELECT count(*) FROM books"), 10);
  Result<TableSelection> kept = LoadTableSelection(live);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(*kept, selection);
  // Still not captured.
  EXPECT_EQ(
      QueryInt(live,
               "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'cache_pages'"),
      0);
}

TEST_F(LiveRestoreTest, ARefusalUnderTheWriteLockChangesNothing) {
  std::string before = Dump(dir.File("live.db"));
  ASSERT_TRUE(PrepareSnapshotForRestore(dir.File("snap.db"), dir.File("live.db")).ok());
  Status s = RestoreDatabase(
      dir.File("live.db"), dir.File("snap.db"),
      [&] {
        // Nobody can commit while the restore holds the lock.
        Database other = OpenDb(dir.File("live.db"));
        Exec(other, "PRAGMA busy_timeout = 0");
        EXPECT_FALSE(other.Exec("INSERT INTO books VALUES (500000, 'x')").ok());
        return Status::Busy("2 captured change(s) are not published yet");
      },
      nullptr, kNoStop);
  EXPECT_TRUE(s.Is(StatusCode::kBusy));
  EXPECT_EQ(Dump(dir.File("live.db")), before);
  Database live = OpenDb(dir.File("live.db"));
  EXPECT_EQ(QueryInt(live, "SELECT count(*) FROM __marmot__gaps"), 1);
}

TEST_F(LiveRestoreTest, WaitsForTheApplicationsWriteTransaction) {
  Database app = OpenDb(dir.File("live.db"));
  Exec(app, "BEGIN IMMEDIATE; INSERT INTO books VALUES (777777, 'in flight')");
  std::thread commit([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    Exec(app, "COMMIT");
  });
  ASSERT_TRUE(PrepareSnapshotForRestore(dir.File("snap.db"), dir.File("live.db")).ok());
  int64_t seen_row = -1;
  Status s = RestoreDatabase(
      dir.File("live.db"), dir.File("snap.db"),
      [&] {
        Database check = OpenDb(dir.File("live.db"));
        seen_row = QueryInt(check, "SELECT count(*) FROM books WHERE id = 777777");
        return Status();
      },
      nullptr, kNoStop);
  commit.join();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(seen_row, 1);  // the check ran after the application's commit
}

TEST_F(LiveRestoreTest, AStopRequestEndsTheWaitForTheLock) {
  std::string before = Dump(dir.File("live.db"));
  Database app = OpenDb(dir.File("live.db"));
  Exec(app, "BEGIN IMMEDIATE");  // held for the whole test
  ASSERT_TRUE(PrepareSnapshotForRestore(dir.File("snap.db"), dir.File("live.db")).ok());
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop.store(true);
  });
  auto start = std::chrono::steady_clock::now();
  Status s = RestoreDatabase(
      dir.File("live.db"), dir.File("snap.db"), [] { return Status(); }, nullptr, stop);
  stopper.join();
  EXPECT_TRUE(s.Is(StatusCode::kBusy)) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  Exec(app, "ROLLBACK");
  EXPECT_EQ(Dump(dir.File("live.db")), before);
}

// A restore that fails half way (here: the file size limit stands in for a full disk) leaves
// the database as it was.
TEST_F(LiveRestoreTest, AFailureHalfWayChangesNothing) {
  std::string before = Dump(dir.File("live.db"));
  ASSERT_TRUE(PrepareSnapshotForRestore(dir.File("snap.db"), dir.File("live.db")).ok());
  ASSERT_GT(fs::file_size(dir.File("snap.db")), 4u << 20);  // larger than the limit below
  struct rlimit old_limit {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  signal(SIGXFSZ, SIG_IGN);  // writes past the limit fail with EFBIG instead of killing us
  struct rlimit small = old_limit;
  small.rlim_cur = 2u << 20;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  Status s = RestoreDatabase(
      dir.File("live.db"), dir.File("snap.db"), [] { return Status(); }, nullptr, kNoStop);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  signal(SIGXFSZ, SIG_DFL);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("nothing was changed"), std::string::npos) << s.message();
  EXPECT_EQ(Dump(dir.File("live.db")), before);
  Database live = OpenDb(dir.File("live.db"));
  EXPECT_EQ(QueryInt(live, "SELECT count(*) FROM books"), 3);
  EXPECT_EQ(test::Texts(live, "PRAGMA integrity_check"), std::vector<std::string>{"ok"});
}

TEST(SnapshotKeeperTest, SavesFindsFetchesAndKeepsTheNewest) {
  TempDir dir;
  MakeNodeDb(dir.File("node.db"), 100);
  auto store = std::make_unique<DirStore>(dir.File("store"));
  DirStore* raw = store.get();
  SnapshotKeeperOptions o;
  o.db_path = dir.File("node.db");
  o.work_dir = dir.File("work");
  o.node_id = 3;
  o.keep = 2;
  SnapshotKeeper keeper(std::move(store), nullptr, o);
  Result<std::optional<SnapshotManifest>> none = keeper.Newest();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    SnapshotManifest saved;
    Result<SnapshotKeeper::SaveOutcome> r = keeper.Save(&saved);
    ASSERT_TRUE(r.ok()) << r.status().message();
    ids.push_back(saved.id);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // ids are per millisecond
  }
  EXPECT_EQ(raw->Names(), (std::vector<std::string>{ids[2] + ".db.zst", ids[2] + ".manifest.json",
                                                    ids[3] + ".db.zst", ids[3] + ".manifest.json"}));
  EXPECT_FALSE(fs::exists(o.work_dir));

  Result<std::optional<SnapshotManifest>> newest = keeper.Newest();
  ASSERT_TRUE(newest.ok() && newest->has_value());
  EXPECT_EQ((*newest)->id, ids[3]);
  Result<std::string> fetched = keeper.Fetch(**newest);
  ASSERT_TRUE(fetched.ok()) << fetched.status().message();
  EXPECT_EQ(Dump(*fetched), Dump(dir.File("node.db")));
  keeper.Discard();

  // A data object without its manifest (an upload cut short) is not a snapshot.
  fs::copy_file(dir.File("store/" + ids[3] + ".db.zst"),
                dir.File("store/snapshot-99999999T000000000Z-0000000000000009.db.zst"));
  newest = keeper.Newest();
  ASSERT_TRUE(newest.ok() && newest->has_value());
  EXPECT_EQ((*newest)->id, ids[3]);

  // A damaged object is refused.
  {
    std::fstream f(dir.File("store/" + ids[3] + ".db.zst"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x01');
    f.put('\x02');
  }
  Result<std::string> damaged = keeper.Fetch(**newest);
  EXPECT_TRUE(damaged.status().Is(StatusCode::kCorruption)) << damaged.status().message();
}

TEST(SnapshotKeeperTest, AFailedUploadDeletesNothing) {
  TempDir dir;
  MakeNodeDb(dir.File("node.db"), 10);
  auto store = std::make_unique<DirStore>(dir.File("store"));
  DirStore* raw = store.get();
  SnapshotKeeperOptions o;
  o.db_path = dir.File("node.db");
  o.work_dir = dir.File("work");
  o.keep = 1;
  SnapshotKeeper keeper(std::move(store), nullptr, o);
  ASSERT_TRUE(keeper.Save().ok());
  std::vector<std::string> before = raw->Names();
  raw->fail_puts = true;
  Result<SnapshotKeeper::SaveOutcome> r = keeper.Save();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("dir store"), std::string::npos);
  EXPECT_EQ(raw->Names(), before);
}

}  // namespace
}  // namespace marmot
