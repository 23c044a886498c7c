#include "db/capture.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <tuple>

#include "db/marmot_tables.h"
#include "db/sqlite.h"

namespace marmot {
namespace {

constexpr char kUnpublishedRenamesKey[] = "unpublished_table_renames";

using Renames = std::vector<std::pair<std::string, std::string>>;

// Brings the recorded renames (UnpublishedTableRenames) up to date after an installation
// followed `moved` (id, old name, new name). Recorded renames whose new table is gone, or lost its
// capture trigger (dropped, perhaps created again), and was not renamed again now, are dropped:
// that table is no longer the one renamed. The renames of this installation all happened before it, so each
// is chained onto a recorded one (a -> b recorded, b -> c now: a -> c), never onto another of the same pass
// (in a swap a -> b, b -> a both stand). A rename back to the old name cancels out.
Status UpdateUnpublishedRenames(Database& db,
                                const std::vector<std::tuple<int64_t, std::string, std::string>>& moved) {
  Result<Renames> recorded = UnpublishedTableRenames(db);
  if (!recorded.ok()) return recorded.status();
  Result<Statement> captured =
      db.Prepare("SELECT count(*) FROM " + QuoteIdent(kTablesTable) +
                 " AS t JOIN sqlite_schema AS s ON s.type = 'trigger' AND s.name = '__marmot__' || t.id || "
                 "'_insert' AND s.tbl_name = t.name WHERE t.name = ?1");
  if (!captured.ok()) return captured.status();
  std::set<std::string> moved_now;  // a recorded rename's table renamed again is chained below
  for (const auto& [id, from, to] : moved) moved_now.insert(from);
  Renames kept;
  for (const auto& [old_name, new_name] : *recorded) {
    if (moved_now.count(new_name) > 0) {
      kept.emplace_back(old_name, new_name);
      continue;
    }
    captured->Reset();
    captured->BindText(1, new_name);
    Result<bool> row = captured->Step();
    if (!row.ok()) return row.status();
    if (captured->ColumnInt(0) > 0) kept.emplace_back(old_name, new_name);
  }
  Renames updated = kept;
  for (const auto& [id, from, to] : moved) {
    bool chained = false;
    for (size_t i = 0; i < kept.size(); ++i) {
      if (kept[i].second != from) continue;
      updated[i].second = to;
      chained = true;
    }
    if (!chained) updated.emplace_back(from, to);
  }
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [old_name, new_name] : updated) {
    if (old_name != new_name) list.push_back({old_name, new_name});
  }
  Result<Statement> store =
      db.Prepare("INSERT OR REPLACE INTO " + QuoteIdent(kStateTable) + " (name, value) VALUES (?1, ?2)");
  if (!store.ok()) return store.status();
  store->BindText(1, kUnpublishedRenamesKey);
  store->BindText(2, list.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return store->Run();
}

// Looks up (or assigns) the id a table is logged under; `is_new` tells whether it was assigned now.
Result<int64_t> TableId(Database& db, const std::string& table, bool* is_new) {
  Result<Statement> insert =
      db.Prepare(std::string("INSERT OR IGNORE INTO ") + QuoteIdent(kTablesTable) + "(name) VALUES(?1)");
  if (!insert.ok()) return insert.status();
  insert->BindText(1, table);
  MARMOT_RETURN_IF_ERROR(insert->Run());
  *is_new = sqlite3_changes(db.get()) > 0;
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

// Logs the key of every row `table` holds, as its insert trigger would have.
Status LogExistingRows(Database& db, int64_t id, const TableSchema& table) {
  std::vector<std::string> keys = table.KeyColumns();
  std::string cols = "tbl";
  std::string vals = std::to_string(id);
  for (size_t i = 0; i < keys.size(); ++i) {
    cols += ",k" + std::to_string(i + 1);
    vals += "," + QuoteIdent(keys[i]);
  }
  Status s = db.Exec("INSERT INTO " + QuoteIdent(kChangeLogTable) + "(" + cols + ") SELECT " + vals +
                     " FROM " + QuoteIdent(table.name));
  if (s.ok() && sqlite3_changes(db.get()) > 0) {
    spdlog::info("table {} is new: its {} row(s) written before capture was installed on it are published",
                 QuoteIdent(table.name), sqlite3_changes(db.get()));
  }
  return s;
}

std::string TriggerName(int64_t id, const char* what) {
  return QuoteIdent(std::string(kMarmotPrefix) + std::to_string(id) + "_" + what);
}

// Whether the REPLACE triggers can follow `index` of `table`, whose columns they then name; logs
// why not.
bool CanFollow(const UniqueIndex& index, const TableSchema& table) {
  const std::string t = QuoteIdent(table.name);
  if (index.created_apart) {
    // Not its columns: DROP INDEX and then ALTER TABLE DROP COLUMN, in one migration, would fail
    // on a trigger naming them. The column of a UNIQUE constraint cannot be dropped at all.
    spdlog::info(
        "table {}: rows removed by REPLACE through UNIQUE index {} (made by CREATE UNIQUE INDEX) are "
        "captured "
        "only with the row that removed them (docs/CAPTURE.md, \"Rows removed by REPLACE\")",
        t, QuoteIdent(index.name));
    return false;
  }
  for (const UniqueIndex::Column& c : index.columns) {
    for (const ColumnSchema& column : table.columns) {
      if (!column.generated || column.name != c.name) continue;
      // A generated column has no value yet when BEFORE triggers run.
      spdlog::warn(
          "table {}: rows removed by REPLACE through the UNIQUE constraint on generated column {} are "
          "captured only with the row that removed them (docs/CAPTURE.md, \"Rows removed by REPLACE\")",
          t, QuoteIdent(c.name));
      return false;
    }
  }
  return !index.columns.empty();
}

// The triggers that log the rows an INSERT OR REPLACE / UPDATE OR REPLACE removes because another
// UNIQUE index meets the new values: SQLite fires no delete trigger for them. Before a row whose
// unique values another row holds is written, the keys of those rows are noted in
// __marmot__replaced; after it was written, the noted rows that are gone were removed by REPLACE,
// and are logged (they read as deletes). A plain INSERT that fails takes its notes back with the
// statement. Notes left by an OR IGNORE that skipped the row name rows that are still there: the
// table's next note replaces them, a later insert finds the rows and logs nothing, and the applier
// drops them before it removes any row. "" for tables without such an index. Partial and
// expression indexes are not followed (docs/CAPTURE.md).
Result<std::string> ReplaceTriggersSql(Database& db, int64_t id, const TableSchema& table) {
  Result<std::vector<UniqueIndex>> indexes = DescribeUniqueIndexesBesidesKey(db, table.name);
  if (!indexes.ok()) return indexes.status();
  const std::vector<std::string> keys = table.KeyColumns();
  const std::string ids = std::to_string(id);
  const std::string t = QuoteIdent(table.name);
  const std::string noted = QuoteIdent(kReplacedRowsTable);
  // A name no application table has: an alias "r" would bind to a table r's own column k1.
  const std::string note_alias = QuoteIdent(std::string(kMarmotPrefix) + "note");
  std::string key_list, not_this_row, same_key;
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string k = QuoteIdent(keys[i]);
    std::string kn = "k" + std::to_string(i + 1);
    key_list += "," + kn;
    not_this_row += (i ? " AND " : "") + k + " IS NEW." + k;
    same_key += (i ? " AND " : "") + k + " IS " + note_alias + "." + kn;
  }
  // Notes (the rows holding one of the new unique values) and the condition that there are any.
  std::string note_insert = "DELETE FROM " + noted + " WHERE tbl = " + ids + ";";
  std::string note_update = note_insert, held_insert, held_update;
  std::set<std::string> unique_columns;
  bool followed = false;
  for (const UniqueIndex& index : *indexes) {
    if (!CanFollow(index, table)) continue;
    std::string holds;
    for (const UniqueIndex::Column& c : index.columns) {
      std::string col = QuoteIdent(c.name);
      holds += (holds.empty() ? "" : " AND ") + col + " = NEW." + col + " COLLATE " + QuoteIdent(c.collation);
      unique_columns.insert(c.name);
    }
    // The INSERT triggers note the row with the new key too (in a BEFORE INSERT trigger NEW's
    // rowid is -1 when SQLite picks it, which a real row can have); the check after the write
    // finds that row again and logs nothing for it.
    std::string select = "SELECT " + ids;
    for (const std::string& k : keys) select += "," + QuoteIdent(k);
    select += " FROM " + t + " WHERE " + holds;
    note_insert += "INSERT INTO " + noted + "(tbl" + key_list + ") " + select + ";";
    note_update +=
        "INSERT INTO " + noted + "(tbl" + key_list + ") " + select + " AND NOT (" + not_this_row + ");";
    held_insert += (held_insert.empty() ? "" : " OR ") + std::string("EXISTS (SELECT 1 FROM ") + t +
                   " WHERE " + holds + ")";
    held_update += (held_update.empty() ? "" : " OR ") + std::string("EXISTS (SELECT 1 FROM ") + t +
                   " WHERE " + holds + " AND NOT (" + not_this_row + "))";
    followed = true;
  }
  if (!followed) return std::string();
  std::string changed;
  for (const std::string& c : unique_columns)
    changed += (changed.empty() ? "" : " OR ") + std::string("NEW.") + QuoteIdent(c) + " IS NOT OLD." +
               QuoteIdent(c) + " COLLATE BINARY";  // not the column's collation: 'a' -> 'A' is a change
  const std::string has_notes = "EXISTS (SELECT 1 FROM " + noted + " WHERE tbl = " + ids + ")";
  const std::string log_removed =
      "INSERT INTO " + QuoteIdent(kChangeLogTable) + "(tbl" + key_list + ") SELECT DISTINCT tbl" + key_list +
      " FROM " + noted + " AS " + note_alias + " WHERE tbl = " + ids + " AND NOT EXISTS (SELECT 1 FROM " + t +
      " WHERE " + same_key + "); DELETE FROM " + noted + " WHERE tbl = " + ids + ";";
  const std::string on = " ON " + t;
  return "CREATE TRIGGER " + TriggerName(id, "replace_insert") + " BEFORE INSERT" + on + " WHEN " +
         held_insert + " BEGIN " + note_insert + " END;" + "CREATE TRIGGER " +
         TriggerName(id, "replace_update") + " BEFORE UPDATE" + on + " WHEN (" + changed + ") AND (" +
         held_update + ") BEGIN " + note_update + " END;" + "CREATE TRIGGER " +
         TriggerName(id, "replaced_insert") + " AFTER INSERT" + on + " WHEN " + has_notes + " BEGIN " +
         log_removed + " END;" + "CREATE TRIGGER " + TriggerName(id, "replaced_update") + " AFTER UPDATE" +
         on + " WHEN (" + changed + ") AND " + has_notes + " BEGIN " + log_removed + " END;";
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
  Result<std::string> replace = ReplaceTriggersSql(db, id, table);
  if (!replace.ok()) return replace.status();
  return db.Exec(sql + *replace);
}

// A table renamed since capture was installed keeps its triggers (SQLite moves them with it), and
// they log the table's old id: point that id at the new name, so its entries are read from the
// renamed table. When a table of that name was logged under another id whose table is gone (it was
// dropped and this one renamed into its place, as in SQLite's 12-step ALTER), its entries move to
// this id. Tables that swapped names (a -> tmp, b -> a, tmp -> b) keep their own ids and entries.
// (id, old name, new name) of every table whose insert trigger now sits on another table.
Result<std::vector<std::tuple<int64_t, std::string, std::string>>> MovedTriggers(Database& db) {
  Result<bool> installed = db.HasTable(kTablesTable);
  if (!installed.ok()) return installed.status();
  std::vector<std::tuple<int64_t, std::string, std::string>> renames;
  if (!*installed) return renames;
  Result<Statement> moved =
      db.Prepare("SELECT t.id, t.name, s.tbl_name FROM sqlite_schema AS s JOIN " + QuoteIdent(kTablesTable) +
                 " AS t ON s.name = '__marmot__' || t.id || '_insert' WHERE s.type = "
                 "'trigger' AND s.tbl_name <> t.name");
  if (!moved.ok()) return moved.status();
  while (true) {
    Result<bool> row = moved->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    renames.emplace_back(moved->ColumnInt(0), moved->ColumnText(1), moved->ColumnText(2));
  }
  return renames;
}

// The ids of registered tables that exist but lost their insert trigger: dropped and created again,
// or rebuilt (SQLite's 12-step ALTER), since capture was installed. Writes to them since then were
// not captured. Call after FollowRenamedTables, before the triggers are re-created.
Result<std::set<int64_t>> ReplacedTables(Database& db) {
  Result<Statement> lost = db.Prepare(
      "SELECT t.id FROM " + QuoteIdent(kTablesTable) +
      " AS t WHERE EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = t.name) "
      "AND NOT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'trigger' AND name = '__marmot__' || "
      "t.id || '_insert')");
  if (!lost.ok()) return lost.status();
  std::set<int64_t> ids;
  while (true) {
    Result<bool> row = lost->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.insert(lost->ColumnInt(0));
  }
  return ids;
}

Status FollowRenamedTables(Database& db,
                           const std::vector<std::tuple<int64_t, std::string, std::string>>& moved) {
  std::string tables = QuoteIdent(kTablesTable);
  std::vector<std::pair<int64_t, std::string>> renames;
  renames.reserve(moved.size());
  for (const auto& [id, from, to] : moved) renames.emplace_back(id, to);
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

Result<std::vector<std::pair<std::string, std::string>>> UnpublishedTableRenames(Database& db) {
  Renames renames;
  Result<bool> installed = db.HasTable(kStateTable);
  if (!installed.ok()) return installed.status();
  if (!*installed) return renames;
  Result<Statement> read = db.Prepare("SELECT value FROM " + QuoteIdent(kStateTable) + " WHERE name = '" +
                                      kUnpublishedRenamesKey + "'");
  if (!read.ok()) return read.status();
  Result<bool> row = read->Step();
  if (!row.ok()) return row.status();
  if (!*row) return renames;
  nlohmann::json list = nlohmann::json::parse(read->ColumnText(0), nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) return renames;  // unreadable: the renames go out as drop and create
  for (const nlohmann::json& pair : list) {
    if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string())
      renames.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
  }
  return renames;
}

Status ForgetUnpublishedTableRenames(Database& db) {
  return db.Exec("DELETE FROM " + QuoteIdent(kStateTable) + " WHERE name = '" + kUnpublishedRenamesKey + "'");
}

Status InstallCaptureInTransaction(Database& db, const std::vector<TableSchema>& tables,
                                   bool log_rows_of_new_tables) {
  int widest_key = 1;
  for (const TableSchema& t : tables) widest_key = std::max<int>(widest_key, t.KeyColumns().size());
  MARMOT_RETURN_IF_ERROR(EnsureMarmotTables(db, widest_key).WithContext("creating marmot tables"));
  Result<int64_t> registered = db.QueryInt("SELECT count(*) FROM " + QuoteIdent(kTablesTable));
  if (!registered.ok()) return registered.status();
  // The first installation: the rows already there are the starting point, not changes.
  log_rows_of_new_tables = log_rows_of_new_tables && *registered > 0;
  Result<std::vector<std::tuple<int64_t, std::string, std::string>>> moved = MovedTriggers(db);
  if (!moved.ok()) return moved.status().WithContext("looking for renamed tables");
  MARMOT_RETURN_IF_ERROR(FollowRenamedTables(db, *moved).WithContext("following renamed tables"));
  MARMOT_RETURN_IF_ERROR(UpdateUnpublishedRenames(db, *moved).WithContext("recording renamed tables"));
  std::set<int64_t> replaced;
  if (log_rows_of_new_tables) {
    Result<std::set<int64_t>> found = ReplacedTables(db);
    if (!found.ok()) return found.status().WithContext("looking for tables replaced since capture");
    replaced = std::move(*found);
  }
  MARMOT_RETURN_IF_ERROR(
      DropMarmotObjects(db, MarmotObjects::kTriggers).WithContext("removing old capture triggers"));
  // Notes of the REPLACE triggers may name rows of tables changed since (see ReplaceTriggersSql).
  MARMOT_RETURN_IF_ERROR(db.Exec("DELETE FROM " + QuoteIdent(kReplacedRowsTable) + " WHERE tbl IS NOT NULL")
                             .WithContext("clearing capture's notes"));
  for (const TableSchema& table : tables) {
    std::string what = "installing capture on table " + QuoteIdent(table.name);
    bool is_new = false;
    Result<int64_t> id = TableId(db, table.name, &is_new);
    if (!id.ok()) return id.status().WithContext(what);
    MARMOT_RETURN_IF_ERROR(CreateTriggers(db, *id, table).WithContext(what));
    if (!log_rows_of_new_tables || (!is_new && replaced.count(*id) == 0)) continue;
    MARMOT_RETURN_IF_ERROR(LogExistingRows(db, *id, table).WithContext(what));
    if (!is_new) {
      spdlog::warn(
          "table {} was dropped and created again, or rebuilt, where marmot could not capture it: all its "
          "rows are published again, so that writes made meanwhile reach the other nodes. Rows it lost "
          "meanwhile are not deleted there: check with `marmot verify` (docs/SCHEMA.md, replaced tables)",
          QuoteIdent(table.name));
    }
  }
  return Status();
}

Status InstallCapture(Database& db, const std::vector<TableSchema>& tables, bool log_rows_of_new_tables) {
  Transaction txn(&db);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext("installing capture"));
  MARMOT_RETURN_IF_ERROR(InstallCaptureInTransaction(db, tables, log_rows_of_new_tables));
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
