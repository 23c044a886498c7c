// Schema introspection: which tables marmot replicates and what their rows look like.
//
// Every ordinary table of the `main` schema is replicated, except SQLite's internal tables
// (sqlite_%), marmot's own (__marmot__%), virtual tables and their shadow tables (a virtual table
// cannot carry triggers; see docs/CAPTURE.md), and tables the configured selection ([replication]
// include/exclude, stored in the database so that every connection sees the same) leaves out. A
// row is identified by its declared primary key, in key order, or by its rowid when the table
// declares none.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace marmot {

class Database;

// Prefix of every object (table, trigger) that marmot creates in the application's database.
inline constexpr std::string_view kMarmotPrefix = "__marmot__";
bool IsMarmotObject(std::string_view name);

// Which tables are replicated ([replication] include / exclude, docs/SCHEMA.md): a table is when
// its name matches a pattern of `include` and none of `exclude`. Globs, case-insensitive.
struct TableSelection {
  std::vector<std::string> include{"*"};
  std::vector<std::string> exclude;

  bool Selects(std::string_view table) const;
  bool operator==(const TableSelection&) const = default;
  std::string ToJson() const;
  static Result<TableSelection> FromJson(std::string_view json);
};

// The selection stored in `db` (everything when none was stored). Marmot stores the configured
// one at start; every reader of the schema (capture, apply, verify, snapshots) then uses it.
Result<TableSelection> LoadTableSelection(Database& db);
// Stores `selection` (marmot's tables must exist). Call inside a write transaction, or alone.
Status StoreTableSelection(Database& db, const TableSelection& selection);

// The application's tables (not SQLite's, marmot's, or shadow tables of virtual tables) that
// `selection` leaves out, by name.
Result<std::vector<std::string>> TablesLeftOut(Database& db, const TableSelection& selection);

struct ColumnSchema {
  std::string name;
  std::string declared_type;  // as written in CREATE TABLE, may be empty
  bool generated = false;     // VIRTUAL or STORED generated column: never written on apply
  int key_position = 0;       // 1-based position in the primary key, 0 when not a key column
};

struct TableSchema {
  std::string name;
  std::vector<ColumnSchema> columns;  // in declaration order, generated ones included
  bool without_rowid = false;
  // When the table declares no primary key, rows are keyed by the rowid, read and written through
  // this name ("rowid", or "_rowid_"/"oid" when a real column is called "rowid").
  std::optional<std::string> rowid_alias;

  // The columns that identify a row, in key order (the rowid alias for tables without a key).
  std::vector<std::string> KeyColumns() const;
  // The columns an upsert writes: the rowid alias first (if keyed by rowid), then every
  // non-generated column in declaration order.
  std::vector<std::string> StoredColumns() const;
};

// Reads every replicated table of `db`, sorted by name. Tables that cannot be keyed (no declared
// key and every rowid alias taken by a real column) are skipped with a warning in the log.
Result<std::vector<TableSchema>> ReadSchema(Database& db);

// Reads one table; nullopt when it does not exist or is not replicated.
Result<std::optional<TableSchema>> ReadTableSchema(Database& db, const std::string& table);

// "SELECT <stored columns> FROM <table> WHERE <key 1> IS ?1 AND ...": one row by its key, its
// values in StoredColumns() order.
std::string SelectRowByKeySql(const TableSchema& table);

// The names of `table`'s UNIQUE indexes and constraints other than its primary key (SQLite's
// autoindex names for constraints). An upsert's INSERT OR REPLACE removes the rows that hold one
// of its values in such an index.
Result<std::vector<std::string>> UniqueIndexesBesidesKey(Database& db, const std::string& table);

// One of those indexes, as capture needs it to find the rows a REPLACE is about to remove.
struct UniqueIndex {
  struct Column {
    std::string name;
    std::string collation;  // the index's, e.g. "BINARY", "NOCASE"
  };
  std::string name;
  std::vector<Column> columns;  // the indexed columns, in index order (not expressions)
  bool created_apart = false;   // CREATE UNIQUE INDEX (maybe partial or on expressions), not a
                                // UNIQUE constraint of the table
};
Result<std::vector<UniqueIndex>> DescribeUniqueIndexesBesidesKey(Database& db, const std::string& table);

}  // namespace marmot
