#include "db/marmot_tables.h"

#include <vector>

#include "db/schema.h"
#include "db/sqlite.h"

namespace marmot {

namespace {

// Number of key columns (k1..kN) of a marmot table; 0 when it does not exist.
Result<int> KeyColumnsOf(Database& db, const char* table) {
  Result<int64_t> n = db.QueryInt(std::string("SELECT count(*) FROM pragma_table_info('") + table +
                                  "') WHERE name GLOB 'k[0-9]*'");
  if (!n.ok()) return n.status();
  return static_cast<int>(*n);
}

}  // namespace

Result<int> ChangeLogKeyColumns(Database& db) { return KeyColumnsOf(db, kChangeLogTable); }

Status EnsureMarmotTables(Database& db, int key_columns) {
  std::string q_log = QuoteIdent(kChangeLogTable);
  MARMOT_RETURN_IF_ERROR(db.Exec(
      "CREATE TABLE IF NOT EXISTS " + QuoteIdent(kTablesTable) +
      " (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
      "CREATE TABLE IF NOT EXISTS " +
      q_log +
      " (seq INTEGER PRIMARY KEY, tbl INTEGER);"
      "CREATE TABLE IF NOT EXISTS " +
      QuoteIdent(kReplacedRowsTable) +
      " (tbl INTEGER);"
      "CREATE TABLE IF NOT EXISTS " +
      QuoteIdent(kStateTable) +
      " (name TEXT PRIMARY KEY, value) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS " +
      QuoteIdent(kPositionsTable) +
      " (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL, stream_created INTEGER, msg_hash INTEGER) WITHOUT "
      "ROWID;"
      "CREATE TABLE IF NOT EXISTS " +
      QuoteIdent(kDeadLetterTable) +
      " (id INTEGER PRIMARY KEY, at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
      " stream TEXT, stream_seq INTEGER, tbl TEXT NOT NULL, op TEXT NOT NULL,"
      " reason TEXT NOT NULL, statement TEXT NOT NULL, row_hash INTEGER, change BLOB,"
      " superseded_seq INTEGER);"
      "CREATE TABLE IF NOT EXISTS " +
      QuoteIdent(kGapsTable) +
      " (id INTEGER PRIMARY KEY, at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
      " stream TEXT NOT NULL, first_missing INTEGER NOT NULL, last_missing INTEGER,"
      " reason TEXT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS " +
      QuoteIdent(kSchemaTable) +
      " (record TEXT NOT NULL, name TEXT NOT NULL COLLATE NOCASE, type TEXT NOT NULL,"
      " tbl_name TEXT NOT NULL, sql TEXT NOT NULL, PRIMARY KEY (record, name)) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS " +
      QuoteIdent(kSchemaSeenTable) +
      " (transition TEXT PRIMARY KEY) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS " +
      QuoteIdent(kSchemaRenamesTable) +
      " (id INTEGER PRIMARY KEY, tbl TEXT NOT NULL, old_name TEXT NOT NULL, new_name TEXT NOT NULL,"
      " column_rename INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS " +
      QuoteIdent(kRenamedColumnsTable) +
      " (tbl TEXT NOT NULL COLLATE NOCASE, old_name TEXT NOT NULL COLLATE NOCASE, new_name TEXT NOT NULL,"
      " PRIMARY KEY (tbl, old_name)) WITHOUT ROWID;"));
  // Dead letters recorded by versions before replay existed (docs/OPERATIONS.md, dead letters).
  for (const char* column : {"row_hash INTEGER", "change BLOB", "superseded_seq INTEGER"}) {
    std::string name(column, std::string_view(column).find(' '));
    Result<int64_t> has = db.QueryInt(std::string("SELECT count(*) FROM pragma_table_info('") +
                                      kDeadLetterTable + "') WHERE name = '" + name + "'");
    if (!has.ok()) return has.status();
    if (*has == 0) {
      MARMOT_RETURN_IF_ERROR(
          db.Exec("ALTER TABLE " + QuoteIdent(kDeadLetterTable) + " ADD COLUMN " + column));
    }
  }
  MARMOT_RETURN_IF_ERROR(db.Exec("CREATE INDEX IF NOT EXISTS " +
                                 QuoteIdent(std::string(kDeadLetterTable) + "_row") + " ON " +
                                 QuoteIdent(kDeadLetterTable) + "(row_hash)"));
  // Positions written by versions before the creation time (and the message's time) were kept.
  for (const char* column : {"stream_created", "msg_hash"}) {
    Result<int64_t> has = db.QueryInt(std::string("SELECT count(*) FROM pragma_table_info('") +
                                      kPositionsTable + "') WHERE name = '" + column + "'");
    if (!has.ok()) return has.status();
    if (*has == 0) {
      MARMOT_RETURN_IF_ERROR(db.Exec("ALTER TABLE " + QuoteIdent(kPositionsTable) + " ADD COLUMN " +
                                     std::string(column) + " INTEGER"));
    }
  }
  for (const char* table : {kChangeLogTable, kReplacedRowsTable}) {
    Result<int> have = KeyColumnsOf(db, table);
    if (!have.ok()) return have.status();
    for (int k = *have + 1; k <= key_columns; ++k) {
      MARMOT_RETURN_IF_ERROR(
          db.Exec("ALTER TABLE " + QuoteIdent(table) + " ADD COLUMN k" + std::to_string(k)));
    }
  }
  return Status();
}

Status DropMarmotObjects(Database& db, MarmotObjects which) {
  std::string types = which == MarmotObjects::kAll ? "('trigger', 'table')" : "('trigger')";
  Result<Statement> list = db.Prepare("SELECT type, name FROM sqlite_schema WHERE type IN " + types +
                                      " AND substr(name, 1, 10) = '__marmot__' ORDER BY type = 'table'");
  if (!list.ok()) return list.status();
  std::vector<std::string> drops;
  while (true) {
    Result<bool> row = list->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    std::string type = list->ColumnText(0);
    drops.push_back((type == "trigger" ? "DROP TRIGGER IF EXISTS " : "DROP TABLE IF EXISTS ") +
                    QuoteIdent(list->ColumnText(1)));
  }
  for (const std::string& sql : drops) MARMOT_RETURN_IF_ERROR(db.Exec(sql));
  return Status();
}

}  // namespace marmot
