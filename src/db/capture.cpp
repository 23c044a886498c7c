#include "db/capture.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "db/marmot_tables.h"
#include "db/sqlite.h"

namespace marmot {
namespace {

// Looks up (or assigns) the id a table is logged under.
Result<int64_t> TableId(Database& db, const std::string& table) {
  Result<Statement> insert =
      db.Prepare(std::string("INSERT OR IGNORE INTO ") + QuoteIdent(kTablesTable) + "(name) VALUES(?1)");
  if (!insert.ok()) return insert.status();
  insert->BindText(1, table);
  MARMOT_RETURN_IF_ERROR(insert->Run());
  Result<Statement> select =
      db.Prepare(std::string("SELECT id FROM ") + QuoteIdent(kTablesTable) + " WHERE name = ?1");
  if (!select.ok()) return select.status();
  select->BindText(1, table);
  Result<bool> row = select->Step();
  if (!row.ok()) return row.status();
  return select->ColumnInt(0);
}

// "INSERT INTO log(tbl,k1,k2) VALUES(<id>,<ref>.a,<ref>.b);" for ref NEW or OLD.
std::string LogInsert(int64_t id, const std::vector<std::string>& keys, const char* ref) {
  std::string cols = "tbl";
  std::string vals = std::to_string(id);
  for (size_t i = 0; i < keys.size(); ++i) {
    cols += ",k" + std::to_string(i + 1);
    vals += std::string(",") + ref + "." + QuoteIdent(keys[i]);
  }
  return "INSERT INTO " + QuoteIdent(kChangeLogTable) + "(" + cols + ") VALUES(" + vals + ");";
}

std::string TriggerName(int64_t id, const char* what) {
  return QuoteIdent(std::string(kMarmotPrefix) + std::to_string(id) + "_" + what);
}

Status CreateTriggers(Database& db, int64_t id, const TableSchema& table) {
  std::vector<std::string> keys = table.KeyColumns();
  std::string on = " ON " + QuoteIdent(table.name);
  std::string key_changed;
  for (const std::string& k : keys) {
    if (!key_changed.empty()) key_changed += " OR ";
    key_changed += "OLD." + QuoteIdent(k) + " IS NOT NEW." + QuoteIdent(k);
  }
  std::string sql = "CREATE TRIGGER " + TriggerName(id, "insert") + " AFTER INSERT" + on + " BEGIN " +
                    LogInsert(id, keys, "NEW") + " END;" + "CREATE TRIGGER " + TriggerName(id, "update") +
                    " AFTER UPDATE" + on + " BEGIN " + LogInsert(id, keys, "NEW") + " END;" +
                    "CREATE TRIGGER " + TriggerName(id, "update_key") + " AFTER UPDATE" + on + " WHEN " +
                    key_changed + " BEGIN " + LogInsert(id, keys, "OLD") + " END;" + "CREATE TRIGGER " +
                    TriggerName(id, "delete") + " AFTER DELETE" + on + " BEGIN " +
                    LogInsert(id, keys, "OLD") + " END;";
  return db.Exec(sql);
}

// A table renamed since capture was installed keeps its triggers (SQLite moves them with it), and
// they log the table's old id: point that id at the new name, so its entries are read from the
// renamed table. When a table of that name was logged under another id whose table is gone (it was
// dropped and this one renamed into its place, as in SQLite's 12-step ALTER), its entries move to
// this id. Tables that swapped names (a -> tmp, b -> a, tmp -> b) keep their own ids and entries.
Status FollowRenamedTables(Database& db) {
  std::string tables = QuoteIdent(kTablesTable);
  Result<Statement> moved =
      db.Prepare("SELECT t.id, s.tbl_name FROM sqlite_schema AS s JOIN " + tables +
                 " AS t ON s.name = '__marmot__' || t.id || '_insert' WHERE s.type = 'trigger' AND "
                 "s.tbl_name <> t.name");
  if (!moved.ok()) return moved.status();
  std::vector<std::pair<int64_t, std::string>> renames;
  while (true) {
    Result<bool> row = moved->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    renames.emplace_back(moved->ColumnInt(0), moved->ColumnText(1));
  }
  if (renames.empty()) return Status();
  auto run = [&db](const std::string& sql, const std::string& text) -> Status {
    Result<Statement> stmt = db.Prepare(sql);
    if (!stmt.ok()) return stmt.status();
    stmt->BindText(1, text);
    return stmt->Run();
  };
  // An id is taken over only when its own table is gone (no insert trigger of it is left).
  std::string gone = "(SELECT id FROM " + tables +
                     " WHERE name = ?1 AND NOT EXISTS (SELECT 1 FROM sqlite_schema " +
                     "WHERE type = 'trigger' AND name = '__marmot__' || id || '_insert'))";
  for (const auto& [id, name] : renames) {
    std::string ids = std::to_string(id);
    MARMOT_RETURN_IF_ERROR(
        run("UPDATE " + QuoteIdent(kChangeLogTable) + " SET tbl = " + ids + " WHERE tbl IN " + gone, name));
    MARMOT_RETURN_IF_ERROR(run("DELETE FROM " + tables + " WHERE id IN " + gone, name));
    // A name still held by another renamed table: free it first (names are unique).
    MARMOT_RETURN_IF_ERROR(run(
        "UPDATE " + tables + " SET name = '__marmot__renaming_' || id WHERE id <> " + ids + " AND name = ?1",
        name));
  }
  for (const auto& [id, name] : renames) {
    MARMOT_RETURN_IF_ERROR(run("UPDATE " + tables + " SET name = ?1 WHERE id = " + std::to_string(id), name));
    spdlog::info("table {} was renamed: its captured changes follow it", QuoteIdent(name));
  }
  return Status();
}

}  // namespace

Status InstallCapture(Database& db, const std::vector<TableSchema>& tables) {
  int widest_key = 1;
  for (const TableSchema& t : tables) widest_key = std::max<int>(widest_key, t.KeyColumns().size());

  Transaction txn(&db);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext("installing capture"));
  MARMOT_RETURN_IF_ERROR(EnsureMarmotTables(db, widest_key).WithContext("creating marmot tables"));
  MARMOT_RETURN_IF_ERROR(FollowRenamedTables(db).WithContext("following renamed tables"));
  MARMOT_RETURN_IF_ERROR(
      DropMarmotObjects(db, MarmotObjects::kTriggers).WithContext("removing old capture triggers"));
  for (const TableSchema& table : tables) {
    std::string what = "installing capture on table " + QuoteIdent(table.name);
    Result<int64_t> id = TableId(db, table.name);
    if (!id.ok()) return id.status().WithContext(what);
    MARMOT_RETURN_IF_ERROR(CreateTriggers(db, *id, table).WithContext(what));
  }
  MARMOT_RETURN_IF_ERROR(txn.Commit().WithContext("installing capture"));
  spdlog::info("capture installed on {} table(s) of {}", tables.size(), db.path());
  return Status();
}

Status RemoveCapture(Database& db) {
  Transaction txn(&db);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext("removing capture"));
  MARMOT_RETURN_IF_ERROR(DropMarmotObjects(db, MarmotObjects::kAll).WithContext("removing capture"));
  return txn.Commit().WithContext("removing capture");
}

}  // namespace marmot
