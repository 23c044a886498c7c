#include "db/schema_reconcile.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "db/sqlite.h"

namespace marmot {
namespace {

struct LiveColumn {
  std::string name;
  bool generated = false;
  bool key = false;
};

Result<std::vector<LiveColumn>> LiveColumns(Database& db, const std::string& table) {
  Result<Statement> stmt =
      db.Prepare("SELECT name, hidden, pk FROM pragma_table_xinfo(?1, 'main') ORDER BY cid");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, table);
  std::vector<LiveColumn> columns;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    int hidden = static_cast<int>(stmt->ColumnInt(1));
    columns.push_back({stmt->ColumnText(0), hidden == 2 || hidden == 3, stmt->ColumnInt(2) > 0});
  }
  return columns;
}

bool HasColumn(const std::vector<LiveColumn>& columns, const std::string& name) {
  return std::any_of(columns.begin(), columns.end(),
                     [&](const LiveColumn& c) { return ObjectKey(c.name) == ObjectKey(name); });
}

Result<std::string> LiveSql(Database& db, const std::string& name) {
  Result<Statement> stmt = db.Prepare("SELECT sql FROM main.sqlite_schema WHERE name = ?1 COLLATE NOCASE");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, name);
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  return *row ? stmt->ColumnText(0) : std::string();
}

// Runs `sql` inside a savepoint; keeps its effect only when `table`'s CREATE statement then equals
// `wanted`. True when kept.
Result<bool> TryAlter(Database& db, const std::vector<std::string>& statements, const std::string& table,
                      const std::string& wanted) {
  MARMOT_RETURN_IF_ERROR(db.Exec("SAVEPOINT marmot_alter"));
  bool ok = true;
  for (const std::string& sql : statements) {
    if (!db.Exec(sql).ok()) {
      ok = false;
      break;
    }
  }
  if (ok) {
    Result<std::string> now = LiveSql(db, table);
    ok = now.ok() && *now == wanted;
  }
  if (!ok) MARMOT_RETURN_IF_ERROR(db.Exec("ROLLBACK TO marmot_alter"));
  MARMOT_RETURN_IF_ERROR(db.Exec("RELEASE marmot_alter"));
  return ok;
}

// ALTER TABLE ADD COLUMN inserts ", <definition>" into the CREATE statement: find the definition
// when `wanted` is `live` with one such insertion.
std::vector<std::string> AddedColumnDefinitions(const std::string& live, const std::string& wanted) {
  std::vector<std::string> candidates;
  if (wanted.size() <= live.size() + 2) return candidates;
  size_t added = wanted.size() - live.size();
  size_t prefix = 0;
  while (prefix < live.size() && live[prefix] == wanted[prefix]) ++prefix;
  for (size_t at = std::min(prefix, live.size());; --at) {
    if (wanted.compare(at, 2, ", ") == 0 && wanted.compare(at + added, std::string::npos, live, at) == 0 &&
        wanted.compare(0, at, live, 0, at) == 0) {
      candidates.push_back(wanted.substr(at + 2, added - 2));
    }
    if (at == 0) break;
  }
  return candidates;
}

Status RebuildTable(Database& db, const std::string& table, const std::string& wanted) {
  Result<std::vector<LiveColumn>> old_columns = LiveColumns(db, table);
  if (!old_columns.ok()) return old_columns.status();
  bool keyed_by_rowid =
      std::none_of(old_columns->begin(), old_columns->end(), [](const LiveColumn& c) { return c.key; });
  {
    // Scoped: a statement still open on the connection makes the DROP TABLE below fail.
    Result<Statement> list =
        db.Prepare("SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1");
    if (!list.ok()) return list.status();
    list->BindText(1, table);
    Result<bool> listed = list->Step();
    if (!listed.ok()) return listed.status();
    keyed_by_rowid = keyed_by_rowid && *listed && list->ColumnInt(0) == 0;
  }
  std::string select = keyed_by_rowid ? "rowid AS __marmot_rowid" : "";
  for (const LiveColumn& c : *old_columns) {
    if (c.generated) continue;
    select += (select.empty() ? "" : ", ") + QuoteIdent(c.name);
  }
  MARMOT_RETURN_IF_ERROR(db.Exec("DROP TABLE IF EXISTS temp.__marmot__rebuild"));
  MARMOT_RETURN_IF_ERROR(
      db.Exec("CREATE TEMP TABLE __marmot__rebuild AS SELECT " + select + " FROM main." + QuoteIdent(table)));
  MARMOT_RETURN_IF_ERROR(db.Exec("DROP TABLE main." + QuoteIdent(table)));
  MARMOT_RETURN_IF_ERROR(db.Exec(wanted));
  Result<std::vector<LiveColumn>> new_columns = LiveColumns(db, table);
  if (!new_columns.ok()) return new_columns.status();
  bool new_keyed_by_rowid =
      std::none_of(new_columns->begin(), new_columns->end(), [](const LiveColumn& c) { return c.key; });
  std::string into;
  std::string from;
  if (keyed_by_rowid && new_keyed_by_rowid) {
    into = "rowid";
    from = "__marmot_rowid";
  }
  for (const LiveColumn& c : *new_columns) {
    if (c.generated || !HasColumn(*old_columns, c.name)) continue;
    into += (into.empty() ? "" : ", ") + QuoteIdent(c.name);
    from += (from.empty() ? "" : ", ") + QuoteIdent(c.name);
  }
  if (!into.empty()) {
    MARMOT_RETURN_IF_ERROR(db.Exec("INSERT INTO main." + QuoteIdent(table) + " (" + into + ") SELECT " +
                                   from + " FROM temp.__marmot__rebuild"));
  }
  return db.Exec("DROP TABLE temp.__marmot__rebuild");
}

Status AlterTable(Database& db, const SchemaObject& live, const SchemaObject& wanted) {
  const std::string table = QuoteIdent(live.name);
  for (const std::string& definition : AddedColumnDefinitions(live.sql, wanted.sql)) {
    Result<bool> done =
        TryAlter(db, {"ALTER TABLE main." + table + " ADD COLUMN " + definition}, live.name, wanted.sql);
    if (!done.ok()) return done.status();
    if (*done) return Status();
  }
  auto old_columns = DeclaredColumns(live.name, live.sql);
  auto new_columns = DeclaredColumns(wanted.name, wanted.sql);
  if (!new_columns.empty() && new_columns.size() < old_columns.size()) {
    std::vector<std::string> drops;
    size_t kept = 0;
    for (const auto& [name, type] : old_columns) {
      if (kept < new_columns.size() && ObjectKey(new_columns[kept].first) == ObjectKey(name)) {
        ++kept;
      } else {
        drops.push_back("ALTER TABLE main." + table + " DROP COLUMN " + QuoteIdent(name));
      }
    }
    if (kept == new_columns.size()) {
      Result<bool> done = TryAlter(db, drops, live.name, wanted.sql);
      if (!done.ok()) return done.status();
      if (*done) return Status();
    }
  }
  return RebuildTable(db, live.name, wanted.sql).WithContext("rebuilding table " + table);
}

// SQLite writes a renamed identifier into the schema quoted or bare as the ALTER statement gave
// it; applications mostly write plain names bare, so they are given bare where that is valid.
std::string RenameTarget(const std::string& name) {
  bool bare = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
              sqlite3_keyword_check(name.data(), static_cast<int>(name.size())) == 0;
  for (char c : name) bare = bare && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  return bare ? name : QuoteIdent(name);
}

Status ApplyRenames(Database& db, const SchemaObjects& wanted, const std::vector<SchemaRename>& renames) {
  for (const SchemaRename& r : renames) {
    Result<SchemaObjects> live = ReadLiveSchema(db);
    if (!live.ok()) return live.status();
    std::string sql;
    if (!r.column) {
      if (live->count(ObjectKey(r.from)) == 0 || live->count(ObjectKey(r.to)) > 0 ||
          wanted.count(ObjectKey(r.from)) > 0 || wanted.count(ObjectKey(r.to)) == 0)
        continue;
      sql = "ALTER TABLE main." + QuoteIdent(r.from) + " RENAME TO " + RenameTarget(r.to);
    } else {
      auto want = wanted.find(ObjectKey(r.table));
      if (want == wanted.end() || live->count(ObjectKey(r.table)) == 0) continue;
      Result<std::vector<LiveColumn>> have = LiveColumns(db, r.table);
      if (!have.ok()) return have.status();
      std::vector<LiveColumn> wanted_columns;
      for (const auto& [name, type] : DeclaredColumns(want->second.name, want->second.sql))
        wanted_columns.push_back({name});
      if (!HasColumn(*have, r.from) || HasColumn(*have, r.to) || HasColumn(wanted_columns, r.from) ||
          !HasColumn(wanted_columns, r.to))
        continue;
      sql = "ALTER TABLE main." + QuoteIdent(r.table) + " RENAME COLUMN " + QuoteIdent(r.from) + " TO " +
            RenameTarget(r.to);
    }
    Status s = db.Exec(sql);
    if (!s.ok()) spdlog::warn("schema: {} failed ({}); the object is rebuilt instead", sql, s.message());
  }
  return Status();
}

bool IsTable(const SchemaObject& o) { return o.type == "table"; }

}  // namespace

Result<std::vector<std::string>> ReconcileSchema(Database& db, const SchemaObjects& wanted,
                                                 const std::vector<SchemaRename>& renames) {
  MARMOT_RETURN_IF_ERROR(ApplyRenames(db, wanted, renames));
  Result<SchemaObjects> live = ReadLiveSchema(db);
  if (!live.ok()) return live.status();
  // 2. Indexes, views and triggers that differ or go.
  for (const auto& [key, o] : *live) {
    if (IsTable(o)) continue;
    auto want = wanted.find(key);
    if (want != wanted.end() && want->second == o) continue;
    std::string type = o.type == "index" ? "INDEX" : o.type == "view" ? "VIEW" : "TRIGGER";
    MARMOT_RETURN_IF_ERROR(db.Exec("DROP " + type + " IF EXISTS main." + QuoteIdent(o.name)));
  }
  // 3. Tables.
  for (const auto& [key, o] : *live) {
    if (IsTable(o) && wanted.count(key) == 0)
      MARMOT_RETURN_IF_ERROR(db.Exec("DROP TABLE IF EXISTS main." + QuoteIdent(o.name)));
  }
  for (const auto& [key, o] : wanted) {
    if (!IsTable(o)) continue;
    auto have = live->find(key);
    std::string what = "bringing table " + QuoteIdent(o.name) + " to the cluster's schema";
    if (have == live->end()) {
      MARMOT_RETURN_IF_ERROR(db.Exec(o.sql).WithContext(what));
    } else if (have->second.sql != o.sql) {
      MARMOT_RETURN_IF_ERROR(AlterTable(db, have->second, o).WithContext(what));
    }
  }
  // 4. Missing indexes, views and triggers; a view may need another view first, so go round
  // until nothing more can be created.
  std::vector<std::string> notes;
  bool progress = true;
  while (progress) {
    progress = false;
    notes.clear();
    live = ReadLiveSchema(db);
    if (!live.ok()) return live.status();
    for (const auto& [key, o] : wanted) {
      if (IsTable(o) || live->count(key) > 0) continue;
      Status s = db.Exec(o.sql);
      if (s.ok()) {
        progress = true;
      } else {
        notes.push_back(o.type + " " + QuoteIdent(o.name) + ": " + s.message());
      }
    }
  }
  live = ReadLiveSchema(db);
  if (!live.ok()) return live.status();
  for (const auto& [key, o] : wanted) {
    auto have = live->find(key);
    if (have == live->end() || have->second.sql != o.sql) {
      if (have != live->end())
        notes.push_back(o.type + " " + QuoteIdent(o.name) + " has another definition here");
    }
  }
  for (const auto& [key, o] : *live) {
    if (wanted.count(key) == 0)
      notes.push_back(o.type + " " + QuoteIdent(o.name) + " is here but not in the cluster's schema");
  }
  return notes;
}

}  // namespace marmot
