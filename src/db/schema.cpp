#include "db/schema.h"

#include <spdlog/spdlog.h>

#include <algorithm>

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
  std::vector<TableSchema> tables;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status().WithContext("listing tables of " + db.path());
    if (!*row) break;
    TableSchema table;
    table.name = stmt->ColumnText(0);
    if (IsMarmotObject(table.name)) continue;
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

}  // namespace marmot
