#include "snapshot/live_restore.h"

#include <fmt/format.h>

#include <memory>
#include <thread>

#include "db/capture.h"
#include "db/marmot_tables.h"
#include "db/schema.h"
#include "db/sqlite.h"
#include "db/value.h"

namespace marmot {
namespace {

struct BackupDeleter {
  void operator()(sqlite3_backup* b) const { sqlite3_backup_finish(b); }
};

constexpr int kPagesPerStep = 1024;
constexpr auto kLockWait = std::chrono::minutes(5);

// Copies the rows of `table` from the attached live database (stored columns only).
Status CopyRows(Database& snapshot, const std::string& table) {
  Result<Statement> columns =
      snapshot.Prepare("SELECT name FROM pragma_table_xinfo(?1, 'marmot_live') WHERE hidden NOT IN (2, 3)");
  if (!columns.ok()) return columns.status();
  columns->BindText(1, table);
  std::string list;
  while (true) {
    Result<bool> row = columns->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    list += (list.empty() ? "" : ", ") + QuoteIdent(columns->ColumnText(0));
  }
  columns = Statement();
  return snapshot.Exec("INSERT INTO main." + QuoteIdent(table) + " (" + list + ") SELECT " + list +
                       " FROM marmot_live." + QuoteIdent(table));
}

// The live database's table selection goes into the snapshot, and so do its tables the selection
// leaves out (with their indexes and triggers), in place of whatever the snapshot has under those
// names: a restore never touches them (docs/SCHEMA.md).
Status KeepLocalTables(Database& snapshot, const std::string& live_db) {
  Database::Options ro;
  ro.read_only = true;
  Result<Database> live = Database::Open(live_db, ro);
  if (!live.ok()) return live.status();
  Result<TableSelection> selection = LoadTableSelection(*live);
  if (!selection.ok()) return selection.status();
  Result<std::vector<std::string>> local = TablesLeftOut(*live, *selection);
  if (!local.ok()) return local.status();
  Result<std::vector<std::string>> in_snapshot = TablesLeftOut(snapshot, *selection);
  if (!in_snapshot.ok()) return in_snapshot.status();
  for (const std::string& table : *in_snapshot)
    MARMOT_RETURN_IF_ERROR(snapshot.Exec("DROP TABLE " + QuoteIdent(table)));
  MARMOT_RETURN_IF_ERROR(EnsureMarmotTables(snapshot, 1));
  MARMOT_RETURN_IF_ERROR(StoreTableSelection(snapshot, *selection));
  if (local->empty()) return Status();
  Result<Statement> attach = snapshot.Prepare("ATTACH ?1 AS marmot_live");
  if (!attach.ok()) return attach.status();
  attach->BindText(1, "file:" + live_db + "?mode=ro");
  MARMOT_RETURN_IF_ERROR(attach->Run());
  attach = Statement();
  Status copied;
  for (const std::string& table : *local) {
    Result<Statement> objects = snapshot.Prepare(
        "SELECT type, sql FROM marmot_live.sqlite_schema WHERE tbl_name = ?1 AND sql IS NOT NULL ORDER BY "
        "type <> 'table'");
    if (!objects.ok()) {
      copied = objects.status();
      break;
    }
    objects->BindText(1, table);
    std::vector<std::string> statements;
    while (true) {
      Result<bool> row = objects->Step();
      if (!row.ok() || !*row) break;
      statements.push_back(objects->ColumnText(1));
    }
    objects = Statement();
    copied = snapshot.Exec("DROP TABLE IF EXISTS main." + QuoteIdent(table));
    for (size_t i = 0; copied.ok() && i < statements.size(); ++i) {
      copied = snapshot.Exec(statements[i]);
      if (copied.ok() && i == 0) copied = CopyRows(snapshot, table);
    }
    if (!copied.ok()) {
      copied = copied.WithContext("copying table " + QuoteIdent(table));
      break;
    }
  }
  Status detached = snapshot.Exec("DETACH marmot_live");
  if (!copied.ok()) return copied;
  return detached;
}

}  // namespace

Status PrepareSnapshotForRestore(const std::string& snapshot_db, const std::string& live_db) {
  Result<Database> db = Database::Open(snapshot_db);
  if (!db.ok()) return db.status();
  // The downloaded copy is scratch until restored: no journal, no fsync.
  MARMOT_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF"));
  MARMOT_RETURN_IF_ERROR(
      KeepLocalTables(*db, live_db).WithContext("keeping the tables this node does not replicate"));
  // Capture must be in place the moment the restore commits: the application may write right
  // after, before marmot re-installs it on the live database.
  Result<std::vector<TableSchema>> tables = ReadSchema(*db);
  if (!tables.ok()) return tables.status().WithContext("reading the snapshot's schema");
  MARMOT_RETURN_IF_ERROR(InstallCapture(*db, *tables).WithContext("installing capture in the snapshot"));
  Transaction txn(&*db);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true));
  Result<Database> live = Database::Open(live_db);
  if (!live.ok()) return live.status();
  Result<bool> has_dead = live->HasTable(kDeadLetterTable);
  if (!has_dead.ok()) return has_dead.status();
  if (*has_dead) {
    Result<Statement> read = live->Prepare("SELECT at, stream, stream_seq, tbl, op, reason, statement FROM " +
                                           QuoteIdent(kDeadLetterTable) + " ORDER BY id");
    if (!read.ok()) return read.status();
    Result<Statement> write = db->Prepare("INSERT INTO " + QuoteIdent(kDeadLetterTable) +
                                          " (at, stream, stream_seq, tbl, op, reason, statement) VALUES "
                                          "(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (!write.ok()) return write.status();
    while (true) {
      Result<bool> row = read->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      for (int c = 0; c < 7; ++c) write->Bind(c + 1, read->ColumnValue(c));
      MARMOT_RETURN_IF_ERROR(write->Run());
      write->Reset();
    }
  }
  return txn.Commit();
}

Status RestoreDatabase(const std::string& live_db, const std::string& snapshot_db,
                       const std::function<Status()>& under_write_lock, ProgressSink* progress,
                       const std::atomic<bool>& stop) {
  Database::Options ro;
  ro.read_only = true;
  Result<Database> src = Database::Open(snapshot_db, ro);
  if (!src.ok()) return src.status();
  // A short busy timeout: the loop below waits for the lock itself, watching `stop`.
  Database::Options wait_briefly;
  wait_briefly.busy_timeout_ms = 100;
  Result<Database> dst = Database::Open(live_db, wait_briefly);
  if (!dst.ok()) return dst.status();
  Result<int64_t> src_page = src->QueryInt("PRAGMA page_size");
  Result<int64_t> dst_page = dst->QueryInt("PRAGMA page_size");
  if (!src_page.ok()) return src_page.status().WithContext("reading the snapshot");
  if (!dst_page.ok()) return dst_page.status();
  if (*src_page != *dst_page) {
    return Status::InvalidArgument(fmt::format(
        "the snapshot has {}-byte pages and {} has {}-byte pages; SQLite cannot restore across page sizes in "
        "WAL "
        "mode: stop the application and marmot, delete {} (and its -wal, -shm), and start marmot again",
        *src_page, live_db, *dst_page, live_db));
  }
  std::unique_ptr<sqlite3_backup, BackupDeleter> backup(
      sqlite3_backup_init(dst->get(), "main", src->get(), "main"));
  if (!backup)
    return SqliteError(sqlite3_errcode(dst->get()),
                       "starting the restore of " + live_db + ": " + dst->LastError());
  // Step 0 copies nothing and takes the write lock, which stays held until the backup ends.
  auto deadline = std::chrono::steady_clock::now() + kLockWait;
  int rc = SQLITE_OK;
  while (true) {
    rc = sqlite3_backup_step(backup.get(), 0);
    if (rc == SQLITE_OK || rc == SQLITE_DONE) break;
    if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || std::chrono::steady_clock::now() > deadline ||
        stop.load()) {
      return SqliteError(rc, "restoring " + live_db + ": taking the write lock: " + sqlite3_errstr(rc));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  MARMOT_RETURN_IF_ERROR(under_write_lock());  // backup's destructor ends it: nothing changed
  const uint64_t page_bytes = static_cast<uint64_t>(*src_page);
  uint64_t copied = 0;
  while (true) {
    rc = sqlite3_backup_step(backup.get(), kPagesPerStep);
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
      return SqliteError(rc, "restoring " + live_db + " (nothing was changed): " + sqlite3_errstr(rc));
    }
    uint64_t now_copied = static_cast<uint64_t>(sqlite3_backup_pagecount(backup.get()) -
                                                sqlite3_backup_remaining(backup.get()));
    if (progress != nullptr) progress->Advance((now_copied - copied) * page_bytes);
    copied = now_copied;
    if (rc == SQLITE_DONE) break;
  }
  rc = sqlite3_backup_finish(backup.release());
  if (rc != SQLITE_OK) {
    return SqliteError(rc, "restoring " + live_db + " (nothing was changed): " + sqlite3_errstr(rc));
  }
  // The whole database went through the WAL: give that disk space back now where no reader holds
  // it (otherwise SQLite reuses the file from its start later).
  (void)dst->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  return Status();
}

}  // namespace marmot
