// The tables marmot keeps inside the application's database, all named __marmot__*.
//
//   __marmot__tables       id -> table name; the change log refers to tables by this id.
//   __marmot__change_log   one row per captured row change: (seq, tbl, k1..kN) = the key of the
//                          row that changed. seq is an INTEGER PRIMARY KEY, so it follows commit
//                          order. The row's values are read when the change is read (docs/CAPTURE.md).
//   __marmot__replaced     scratch of the capture triggers of tables with a UNIQUE index besides
//                          their key: (tbl, k1..kN) of rows an INSERT or UPDATE is about to remove
//                          by REPLACE; empty between statements (docs/CAPTURE.md).
//   __marmot__state        name -> value; the reader's confirmed change-log position lives here.
//   __marmot__positions    stream -> last applied sequence (with the stream's creation time, to
//                          notice a re-created stream, and a hash of that message, to notice a
//                          replaced history), written in the apply transaction.
//   __marmot__dead_letter  changes that could not be applied, with the reason.
//   __marmot__gaps         stream messages this node will never apply (discarded before it read
//                          them, a re-created stream, ...): while a row is here, this node's copy
//                          may be incomplete. Snapshot restore clears them.
//   __marmot__schema       the application's schema objects (tables, indexes, views, triggers)
//                          as two records: 'local' = as this node last published or applied them,
//                          'canon' = as the schema stream defines them (docs/SCHEMA.md).
//   __marmot__schema_seen  schema transitions already taken from the stream (stale copies skip).
//   __marmot__schema_renames  table and column renames taken from the stream and not yet carried
//                          out here (this node had its own schema change in flight).
//   __marmot__renamed      every rename ever made (tbl, old_name -> new_name; tbl '' for a
//                          table): a row written under the old name is applied to the new one.
//
// -cleanup drops all of them, and every __marmot__ trigger.
#pragma once

#include <string>

#include "util/status.h"

namespace marmot {

class Database;

inline constexpr char kTablesTable[] = "__marmot__tables";
inline constexpr char kChangeLogTable[] = "__marmot__change_log";
inline constexpr char kReplacedRowsTable[] = "__marmot__replaced";
inline constexpr char kStateTable[] = "__marmot__state";
inline constexpr char kPositionsTable[] = "__marmot__positions";
// Columns: id, at, stream, stream_seq, tbl, op, reason, statement (the change as SQL, for people),
// row_hash (RowHash of table and key; NULL when the key is unknown here), change (the change in
// the wire format, for replay; NULL for an undecodable message), superseded_seq (set when a later
// change to the same row arrived from the stream: replaying this one would undo it).
inline constexpr char kDeadLetterTable[] = "__marmot__dead_letter";
inline constexpr char kGapsTable[] = "__marmot__gaps";
inline constexpr char kSchemaTable[] = "__marmot__schema";
inline constexpr char kSchemaSeenTable[] = "__marmot__schema_seen";
inline constexpr char kSchemaRenamesTable[] = "__marmot__schema_renames";
inline constexpr char kRenamedColumnsTable[] = "__marmot__renamed";

// Creates marmot's tables when missing. The change log (and __marmot__replaced) gets at least
// `key_columns` key columns (k1..kN), added with ALTER TABLE when a wider key appears. Call inside a write
// transaction.
Status EnsureMarmotTables(Database& db, int key_columns);

// Number of key columns (k1..kN) the change log has now; 0 when it does not exist.
Result<int> ChangeLogKeyColumns(Database& db);

// Drops every __marmot__ trigger (kTriggers), or every trigger and table (kAll). Leaves everything
// else untouched.
enum class MarmotObjects { kTriggers, kAll };
Status DropMarmotObjects(Database& db, MarmotObjects which);

}  // namespace marmot
