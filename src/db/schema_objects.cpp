#include "db/schema_objects.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>

#include "db/marmot_tables.h"
#include "db/schema.h"
#include "db/sqlite.h"
#include "util/fnv.h"

namespace marmot {

std::string ObjectKey(std::string_view name) {
  std::string key(name);
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return key;
}

Result<SchemaObjects> ReadLiveSchema(Database& db) {
  Result<TableSelection> selection = LoadTableSelection(db);
  if (!selection.ok()) return selection.status();
  Result<Statement> stmt = db.Prepare(
      "SELECT type, name, tbl_name, sql FROM main.sqlite_schema WHERE sql IS NOT NULL"
      " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND substr(name, 1, 10) <> '__marmot__'"
      " AND substr(tbl_name, 1, 10) <> '__marmot__'"
      " AND name NOT IN (SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'shadow')");
  if (!stmt.ok()) return stmt.status().WithContext("reading the schema of " + db.path());
  SchemaObjects objects;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status().WithContext("reading the schema of " + db.path());
    if (!*row) break;
    SchemaObject o{stmt->ColumnText(0), stmt->ColumnText(1), stmt->ColumnText(2), stmt->ColumnText(3)};
    if (!selection->Selects(o.tbl_name)) continue;
    objects.emplace(ObjectKey(o.name), std::move(o));
  }
  return objects;
}

Result<bool> HasSchemaRecord(Database& db, std::string_view record) {
  Result<Statement> stmt = db.Prepare("SELECT count(*) FROM " + QuoteIdent(kStateTable) + " WHERE name = ?1");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, "schema_record_" + std::string(record));
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  return stmt->ColumnInt(0) > 0;
}

Result<SchemaObjects> LoadSchemaRecord(Database& db, std::string_view record) {
  Result<Statement> stmt =
      db.Prepare("SELECT type, name, tbl_name, sql FROM " + QuoteIdent(kSchemaTable) + " WHERE record = ?1");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, std::string(record));
  SchemaObjects objects;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status().WithContext("reading " + std::string(kSchemaTable));
    if (!*row) break;
    SchemaObject o{stmt->ColumnText(0), stmt->ColumnText(1), stmt->ColumnText(2), stmt->ColumnText(3)};
    objects.emplace(ObjectKey(o.name), std::move(o));
  }
  return objects;
}

Status StoreSchemaRecord(Database& db, std::string_view record, const SchemaObjects& objects) {
  std::string what = "storing the " + std::string(record) + " schema in " + kSchemaTable;
  Result<Statement> clear = db.Prepare("DELETE FROM " + QuoteIdent(kSchemaTable) + " WHERE record = ?1");
  if (!clear.ok()) return clear.status().WithContext(what);
  clear->BindText(1, std::string(record));
  MARMOT_RETURN_IF_ERROR(clear->Run().WithContext(what));
  Result<Statement> insert = db.Prepare("INSERT INTO " + QuoteIdent(kSchemaTable) +
                                        " (record, name, type, tbl_name, sql) VALUES (?1, ?2, ?3, ?4, ?5)");
  if (!insert.ok()) return insert.status().WithContext(what);
  for (const auto& [key, o] : objects) {
    insert->BindText(1, std::string(record));
    insert->BindText(2, o.name);
    insert->BindText(3, o.type);
    insert->BindText(4, o.tbl_name);
    insert->BindText(5, o.sql);
    MARMOT_RETURN_IF_ERROR(insert->Run().WithContext(what));
    insert->Reset();
  }
  Result<Statement> mark =
      db.Prepare("INSERT OR REPLACE INTO " + QuoteIdent(kStateTable) + " (name, value) VALUES (?1, 1)");
  if (!mark.ok()) return mark.status().WithContext(what);
  mark->BindText(1, "schema_record_" + std::string(record));
  return mark->Run().WithContext(what);
}

std::map<std::string, std::string> TableDigests(const SchemaObjects& objects) {
  // SchemaObjects is ordered by name, so each table's objects are folded in a fixed order.
  std::map<std::string, uint64_t> hashes;
  for (const auto& [key, o] : objects) {
    uint64_t& h = hashes.try_emplace(ObjectKey(o.tbl_name), kFnv1a64OffsetBasis).first->second;
    for (const std::string* part : {&o.type, &o.name, &o.sql}) {
      h = Fnv1a64Add(h, *part);
      h = Fnv1a64Add(h, "\0", 1);
    }
  }
  std::map<std::string, std::string> digests;
  for (const auto& [table, h] : hashes) {
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
    digests[table] = hex;
  }
  return digests;
}

Status RecordRenames(Database& db, const SchemaChange& change) {
  Result<Statement> insert = db.Prepare("INSERT OR REPLACE INTO " + QuoteIdent(kRenamedColumnsTable) +
                                        " (tbl, old_name, new_name) VALUES (?1, ?2, ?3)");
  if (!insert.ok()) return insert.status();
  auto record = [&](const std::string& table, const std::string& from, const std::string& to) -> Status {
    insert->BindText(1, table);
    insert->BindText(2, from);
    insert->BindText(3, to);
    Status s = insert->Run();
    insert->Reset();
    return s.WithContext("recording a rename in " + std::string(kRenamedColumnsTable));
  };
  auto renamed = [&](const std::string& table, const std::string& from, bool column) {
    return std::any_of(change.renames.begin(), change.renames.end(), [&](const SchemaRename& r) {
      return r.column == column && ObjectKey(r.from) == ObjectKey(from) &&
             (!column || ObjectKey(r.table) == ObjectKey(table));
    });
  };
  for (const SchemaRename& r : change.renames) {
    MARMOT_RETURN_IF_ERROR(record(r.column ? r.table : std::string(), r.from, r.to));  // '' for a table
  }
  // Drops, recorded as a rename to '': a change written before them is applied without the column,
  // or skipped for a table (the drop wins, as it would have had the change come first).
  for (const ObjectTransition& t : change.objects) {
    if (t.type != "table" || !t.before) continue;
    if (!t.after) {
      if (!renamed("", t.name, /*column=*/false)) MARMOT_RETURN_IF_ERROR(record("", t.name, ""));
      continue;
    }
    auto after = DeclaredColumns(t.name, *t.after);
    if (after.empty()) continue;
    for (const auto& declared : DeclaredColumns(t.name, *t.before)) {
      const std::string& column = declared.first;
      bool kept = std::any_of(after.begin(), after.end(),
                              [&](const auto& c) { return ObjectKey(c.first) == ObjectKey(column); });
      if (!kept && !renamed(t.name, column, /*column=*/true))
        MARMOT_RETURN_IF_ERROR(record(t.name, column, ""));
    }
  }
  return Status();
}

std::vector<std::pair<std::string, std::string>> DeclaredColumns(const std::string& table,
                                                                 const std::string& create_sql) {
  Database::Options options;
  options.create = true;
  Result<Database> scratch = Database::Open(":memory:", options);
  if (!scratch.ok() || !scratch->Exec(create_sql).ok()) return {};
  Result<Statement> stmt = scratch->Prepare("SELECT name, type FROM pragma_table_xinfo(?1) ORDER BY cid");
  if (!stmt.ok()) return {};
  stmt->BindText(1, table);
  std::vector<std::pair<std::string, std::string>> columns;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok() || !*row) break;
    columns.emplace_back(stmt->ColumnText(0), stmt->ColumnText(1));
  }
  return columns;
}

namespace {

// Column renames that explain `before` -> `after` of one table (see DiffSchemas).
void InferColumnRenames(const std::string& table, const SchemaObject& before, const SchemaObject& after,
                        std::vector<SchemaRename>* renames) {
  auto old_columns = DeclaredColumns(before.name, before.sql);
  auto new_columns = DeclaredColumns(after.name, after.sql);
  // ADD COLUMN appends; with columns dropped, positions no longer line up: no guess.
  if (old_columns.empty() || old_columns.size() > new_columns.size()) return;
  std::vector<SchemaRename> found;
  for (size_t i = 0; i < old_columns.size(); ++i) {
    if (ObjectKey(old_columns[i].second) != ObjectKey(new_columns[i].second)) return;  // not a rename
    if (ObjectKey(old_columns[i].first) != ObjectKey(new_columns[i].first))
      found.push_back({table, old_columns[i].first, new_columns[i].first, /*column=*/true});
  }
  renames->insert(renames->end(), found.begin(), found.end());
}

}  // namespace

SchemaChange DiffSchemas(const SchemaObjects& before, const SchemaObjects& after,
                         const std::vector<std::pair<std::string, std::string>>& table_renames) {
  SchemaChange change;
  std::set<std::string> keys;
  for (const auto& [key, o] : before) keys.insert(key);
  for (const auto& [key, o] : after) keys.insert(key);
  for (const std::string& key : keys) {
    auto b = before.find(key);
    auto a = after.find(key);
    if (b != before.end() && a != after.end() && b->second == a->second) continue;
    const SchemaObject& any = a != after.end() ? a->second : b->second;
    ObjectTransition t{any.type, any.name, any.tbl_name, std::nullopt, std::nullopt};
    if (b != before.end()) t.before = b->second.sql;
    if (a != after.end()) t.after = a->second.sql;
    change.objects.push_back(std::move(t));
  }
  // Tables renamed first (their columns are compared under the new name), then column renames.
  std::map<std::string, std::string> renamed_to;  // new key -> old name
  for (const auto& [from, to] : table_renames) {
    if (before.count(ObjectKey(from)) == 0 || after.count(ObjectKey(to)) == 0) continue;
    change.renames.push_back({from, from, to, /*column=*/false});
    renamed_to[ObjectKey(to)] = from;
  }
  for (const auto& [key, a] : after) {
    if (a.type != "table") continue;
    auto from = renamed_to.find(key);
    std::string old_name = from != renamed_to.end() ? from->second : a.name;
    auto b = before.find(ObjectKey(old_name));
    if (b == before.end() || b->second.type != "table" || b->second.sql == a.sql) continue;
    SchemaObject old_table = b->second;
    InferColumnRenames(a.name, old_table, a, &change.renames);
  }
  return change;
}

}  // namespace marmot
