// Schema messages: one schema change made on one node, as it travels in the schema stream.
//
// A schema change is a list of object transitions (an object is a row of sqlite_schema: a table,
// index, view or trigger of the application) from the definition the node had before (`before`,
// absent for a new object) to the one it has now (`after`, absent for a dropped one), plus the
// renames that explain them (a RENAME TABLE shows as one object gone and one new; a RENAME COLUMN
// as a changed CREATE TABLE): receivers carry those out with ALTER TABLE, so the data stays.
// Encoded as JSON (docs/PROTOCOL.md, "Schema stream"): schema changes are rare and small, and a
// person reading the stream with `nats` should understand them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace marmot {

struct ObjectTransition {
  std::string type;                   // table, index, view, trigger
  std::string name;                   // the object's name
  std::string tbl_name;               // the table it belongs to (its own name for a table or view)
  std::optional<std::string> before;  // CREATE statement as sqlite_schema.sql holds it
  std::optional<std::string> after;

  bool operator==(const ObjectTransition&) const = default;
  // Identifies the transition (name, before, after): a copy of it made on another node is equal.
  std::string Key() const;
};

struct SchemaRename {
  std::string table;  // the table (its name before a table rename)
  std::string from;   // old name (of the table, or of the column)
  std::string to;
  bool column = false;  // a column of `table` was renamed (else the table itself)

  bool operator==(const SchemaRename&) const = default;
};

struct SchemaChange {
  uint64_t origin_node = 0;
  std::vector<ObjectTransition> objects;
  std::vector<SchemaRename> renames;

  bool empty() const { return objects.empty(); }
  bool operator==(const SchemaChange&) const = default;
};

std::string EncodeSchemaChange(const SchemaChange& change);
Result<SchemaChange> DecodeSchemaChange(std::string_view payload);

}  // namespace marmot
