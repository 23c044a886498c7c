// Schema objects: the application's tables, indexes, views and triggers as sqlite_schema holds
// them, and the diff between two sets of them that becomes a schema message.
//
// Marmot keeps two records of them in __marmot__schema (db/marmot_tables.h): 'local', the schema
// this node last published or applied, and 'canon', the schema the schema stream defines. The
// reader compares the live schema with 'local' to find the application's changes
// (docs/SCHEMA.md).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "codec/schema_message.h"
#include "util/status.h"

namespace marmot {

class Database;

struct SchemaObject {
  std::string type;  // table, index, view, trigger
  std::string name;
  std::string tbl_name;
  std::string sql;

  bool operator==(const SchemaObject&) const = default;
};

// Keyed by the lower-cased name (SQLite's names ignore ASCII case).
using SchemaObjects = std::map<std::string, SchemaObject>;
std::string ObjectKey(std::string_view name);

inline constexpr char kLocalRecord[] = "local";
inline constexpr char kCanonRecord[] = "canon";

// The live schema: every object with SQL text of `main`, except SQLite's (sqlite_%), marmot's
// (__marmot__%, and everything on marmot's tables), shadow tables of virtual tables, and objects
// of tables the table selection leaves out (db/schema.h).
Result<SchemaObjects> ReadLiveSchema(Database& db);

// A stored record (empty when none was stored yet), and whether one was.
Result<SchemaObjects> LoadSchemaRecord(Database& db, std::string_view record);
Result<bool> HasSchemaRecord(Database& db, std::string_view record);
// Replaces a stored record. Call inside a write transaction.
Status StoreSchemaRecord(Database& db, std::string_view record, const SchemaObjects& objects);

// The transitions that turn `before` into `after`, with `table_renames` (from, to) as found by
// RenamedTables (db/capture.h) and the column renames inferred from the two CREATE TABLE
// statements: no column gone, the same declared types in place, names that differ in place
// (docs/SCHEMA.md says when that guess is wrong).
SchemaChange DiffSchemas(const SchemaObjects& before, const SchemaObjects& after,
                         const std::vector<std::pair<std::string, std::string>>& table_renames);

// One digest per table (keyed by its lower-cased name): FNV-1a 64, in hex, of the CREATE
// statements of the table and of its indexes and triggers. Nodes compare them to find tables whose
// definitions differ (docs/SCHEMA.md, "Schemas that differ").
std::map<std::string, std::string> TableDigests(const SchemaObjects& objects);

// Records the renames of `change` in __marmot__renamed, and its dropped tables and columns as
// renames to '' (inside a write transaction).
Status RecordRenames(Database& db, const SchemaChange& change);

// The (name, declared type) of each column a CREATE TABLE statement declares, found by running it
// on an empty in-memory database; empty when it cannot be run there (a virtual table).
std::vector<std::pair<std::string, std::string>> DeclaredColumns(const std::string& table,
                                                                 const std::string& create_sql);

}  // namespace marmot
