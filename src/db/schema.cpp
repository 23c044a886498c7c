#include "db/schema.h"

#include <fnmatch.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "db/marmot_tables.h"
#include "db/sqlite.h"

namespace marmot {

bool IsMarmotObject(std::string_view name) { return name.substr(0, kMarmotPrefix.size()) == kMarmotPrefix; }

std::vector<std::string> TableSchema::KeyColumns() const {
  if (rowid_alias) return {*rowid_alias};
  std::vector<const ColumnSchema*> keys;
  for (const ColumnSchema& c : columns) {
    if (c.key_position > 0) keys.push_back(&c);
  }
  std::sort(keys.begin(), keys.end(),
            [](const ColumnSchema* a, const ColumnSchema* b) { return a->key_position < b->key_position; });
  std::vector<std::string> names;
  names.reserve(keys.size());
  for (const ColumnSchema* c : keys) names.push_back(c->name);
  return names;
}

std::vector<std::string> TableSchema::StoredColumns() const {
  std::vector<std::string> names;
  if (rowid_alias) names.push_back(*rowid_alias);
  for (const ColumnSchema& c : columns) {
    if (!c.generated) names.push_back(c.name);
  }
  return names;
}

namespace {

constexpr char kSelectionKey[] = "table_selection";

bool MatchesAny(const std::vector<std::string>& patterns, std::string_view name) {
  std::string n(name);
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
    return ::fnmatch(p.c_str(), n.c_str(), FNM_CASEFOLD) == 0;
  });
}

}  // namespace

bool TableSelection::Selects(std::string_view table) const {
  return MatchesAny(include, table) && !MatchesAny(exclude, table);
}

std::string TableSelection::ToJson() const {
  return nlohmann::json{{"include", include}, {"exclude", exclude}}.dump();
}

Result<TableSelection> TableSelection::FromJson(std::string_view json) {
  try {
    nlohmann::json j = nlohmann::json::parse(json);
    TableSelection selection;
    selection.include = j.at("include").get<std::vector<std::string>>();
    selection.exclude = j.at("exclude").get<std::vector<std::string>>();
    return selection;
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(std::string("the table selection stored in ") + kStateTable +
                              " cannot be read: " + e.what());
  }
}

Result<TableSelection> LoadTableSelection(Database& db) {
  Result<bool> has_state = db.HasTable(kStateTable);
  if (!has_state.ok()) return has_state.status();
  if (!*has_state) return TableSelection();
  Result<Statement> stmt =
      db.Prepare("SELECT value FROM " + QuoteIdent(kStateTable) + " WHERE name = '" + kSelectionKey + "'");
  if (!stmt.ok()) return stmt.status();
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return TableSelection();
  return TableSelection::FromJson(stmt->ColumnText(0));
}

Status StoreTableSelection(Database& db, const TableSelection& selection) {
  Result<Statement> stmt = db.Prepare("INSERT OR REPLACE INTO " + QuoteIdent(kStateTable) +
                                      " (name, value) VALUES ('" + kSelectionKey + "', ?1)");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, selection.ToJson());
  return stmt->Run().WithContext("storing the table selection");
}

Result<std::vector<std::string>> TablesLeftOut(Database& db, const TableSelection& selection) {
  Result<Statement> tables = db.Prepare(
      "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND "
      "substr(name, 1, 10) <> '__marmot__' AND name NOT IN (SELECT name FROM pragma_table_list WHERE type = "
      "'shadow')");
  if (!tables.ok()) return tables.status().WithContext("listing the tables of " + db.path());
  std::vector<std::string> left_out;
  while (true) {
    Result<bool> row = tables->Step();
    if (!row.ok()) return row.status().WithContext("listing the tables of " + db.path());
    if (!*row) break;
    if (!selection.Selects(tables->ColumnText(0))) left_out.push_back(tables->ColumnText(0));
  }
  return left_out;
}

namespace {

// pragma_table_xinfo's `hidden`: 0 ordinary, 1 hidden column of a virtual table,
// 2 generated VIRTUAL, 3 generated STORED.
constexpr int kHiddenGeneratedVirtual = 2;
constexpr int kHiddenGeneratedStored = 3;

Status ReadColumns(Database& db, TableSchema* table) {
  Result<Statement> stmt =
      db.Prepare("SELECT name, type, pk, hidden FROM pragma_table_xinfo(?1, 'main') ORDER BY cid");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, table->name);
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ColumnSchema column;
    column.name = stmt->ColumnText(0);
    column.declared_type = stmt->ColumnText(1);
    column.key_position = static_cast<int>(stmt->ColumnInt(2));
    int hidden = static_cast<int>(stmt->ColumnInt(3));
    column.generated = hidden == kHiddenGeneratedVirtual || hidden == kHiddenGeneratedStored;
    table->columns.push_back(std::move(column));
  }
  bool has_key = std::any_of(table->columns.begin(), table->columns.end(),
                             [](const ColumnSchema& c) { return c.key_position > 0; });
  if (!has_key) {
    for (const char* alias : {"rowid", "_rowid_", "oid"}) {
      bool taken = std::any_of(table->columns.begin(), table->columns.end(), [&](const ColumnSchema& c) {
        return sqlite3_stricmp(c.name.c_str(), alias) == 0;
      });
      if (!taken) {
        table->rowid_alias = alias;
        break;
      }
    }
  }
  return Status();
}

Result<std::vector<TableSchema>> ReadTables(Database& db, const std::string* only) {
  // pragma_table_list (SQLite >= 3.37) tells ordinary tables from views, virtual and shadow tables
  // and reports WITHOUT ROWID.
  std::string sql =
      "SELECT name, wr FROM pragma_table_list WHERE schema = 'main' AND type = 'table'"
      " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'";
  if (only) sql += " AND name = ?1";
  sql += " ORDER BY name";
  Result<Statement> stmt = db.Prepare(sql);
  if (!stmt.ok()) return stmt.status().WithContext("listing tables of " + db.path());
  if (only) stmt->BindText(1, *only);
  Result<TableSelection> selection = LoadTableSelection(db);
  if (!selection.ok()) return selection.status();
  std::vector<TableSchema> tables;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status().WithContext("listing tables of " + db.path());
    if (!*row) break;
    TableSchema table;
    table.name = stmt->ColumnText(0);
    if (IsMarmotObject(table.name) || !selection->Selects(table.name)) continue;
    table.without_rowid = stmt->ColumnInt(1) != 0;
    tables.push_back(std::move(table));
  }
  std::vector<TableSchema> keyed;
  for (TableSchema& table : tables) {
    Status s = ReadColumns(db, &table);
    if (!s.ok()) return s.WithContext("reading columns of table " + QuoteIdent(table.name));
    if (table.KeyColumns().empty()) {
      spdlog::warn(
          "table {} is not replicated: it has no primary key and real columns named "
          "rowid, _rowid_ and oid hide its rowid; declare a PRIMARY KEY to replicate it",
          QuoteIdent(table.name));
      continue;
    }
    keyed.push_back(std::move(table));
  }
  return keyed;
}

}  // namespace

Result<std::vector<TableSchema>> ReadSchema(Database& db) { return ReadTables(db, nullptr); }

Result<std::optional<TableSchema>> ReadTableSchema(Database& db, const std::string& table) {
  Result<std::vector<TableSchema>> tables = ReadTables(db, &table);
  if (!tables.ok()) return tables.status();
  if (tables->empty()) return std::optional<TableSchema>();
  return std::optional<TableSchema>(std::move(tables->front()));
}

std::string SelectRowByKeySql(const TableSchema& table) {
  std::vector<std::string> stored = table.StoredColumns(), keys = table.KeyColumns();
  std::string sql = "SELECT ";
  for (size_t i = 0; i < stored.size(); ++i) sql += (i ? ", " : "") + QuoteIdent(stored[i]);
  sql += " FROM " + QuoteIdent(table.name) + " WHERE ";
  for (size_t i = 0; i < keys.size(); ++i)
    sql += (i ? " AND " : "") + QuoteIdent(keys[i]) + " IS ?" + std::to_string(i + 1);
  return sql;
}

Result<std::vector<std::string>> UniqueIndexesBesidesKey(Database& db, const std::string& table) {
  Result<Statement> list =
      db.Prepare("SELECT name FROM pragma_index_list(?1) WHERE \"unique\" AND origin <> 'pk' ORDER BY name");
  if (!list.ok()) return list.status();
  list->BindText(1, table);
  std::vector<std::string> names;
  while (true) {
    Result<bool> row = list->Step();
    if (!row.ok()) return row.status().WithContext("listing the indexes of table " + QuoteIdent(table));
    if (!*row) return names;
    names.push_back(list->ColumnText(0));
  }
}

Result<std::vector<UniqueIndex>> DescribeUniqueIndexesBesidesKey(Database& db, const std::string& table) {
  const std::string what = "describing the UNIQUE indexes of table " + QuoteIdent(table);
  Result<Statement> list = db.Prepare(
      "SELECT name, origin = 'c' FROM pragma_index_list(?1) WHERE \"unique\" AND origin <> 'pk' ORDER BY "
      "name");
  if (!list.ok()) return list.status().WithContext(what);
  list->BindText(1, table);
  std::vector<UniqueIndex> indexes;
  while (true) {
    Result<bool> row = list->Step();
    if (!row.ok()) return row.status().WithContext(what);
    if (!*row) break;
    UniqueIndex index;
    index.name = list->ColumnText(0);
    index.created_apart = list->ColumnInt(1) != 0;
    indexes.push_back(std::move(index));
  }
  Result<Statement> columns = db.Prepare(
      "SELECT cid, coalesce(name, ''), coalesce(coll, 'BINARY') FROM pragma_index_xinfo(?1) "
      "WHERE key ORDER BY seqno");
  if (!columns.ok()) return columns.status().WithContext(what);
  for (UniqueIndex& index : indexes) {
    columns->Reset();
    columns->BindText(1, index.name);
    while (true) {
      Result<bool> row = columns->Step();
      if (!row.ok()) return row.status().WithContext(what);
      if (!*row) break;
      if (columns->ColumnInt(0) < 0) continue;  // -2: an expression (-1, the rowid, is never a key column)
      index.columns.push_back(UniqueIndex::Column{columns->ColumnText(1), columns->ColumnText(2)});
    }
  }
  return indexes;
}

}  // namespace marmot
