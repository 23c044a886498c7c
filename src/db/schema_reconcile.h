// Reconcile: brings a database's live schema to a wanted one (the canon of the schema stream),
// keeping the data, inside the caller's write transaction.
//
//   1. renames first (ALTER TABLE ... RENAME [COLUMN]), where the live schema still has the old
//      name and the wanted one the new: the table's rows and the column's values stay;
//   2. indexes, views and triggers that differ or are not wanted are dropped;
//   3. tables not wanted are dropped, wanted ones created, changed ones altered: ADD COLUMN or
//      DROP COLUMN when that yields exactly the wanted CREATE statement, otherwise rebuilt
//      (copied aside, re-created from the wanted statement, columns of the same name copied back,
//      rowids kept for tables keyed by rowid: SQLite's documented 12-step procedure);
//   4. wanted indexes, views and triggers that are missing are created.
// Every statement runs on a connection with foreign keys off, so a DROP TABLE never cascades.
#pragma once

#include <string>
#include <vector>

#include "codec/schema_message.h"
#include "db/schema_objects.h"
#include "util/status.h"

namespace marmot {

class Database;

// Returns, for each object still different afterwards (a wanted statement SQLite refused), a note
// naming it and why; empty when the live schema now equals `wanted`.
Result<std::vector<std::string>> ReconcileSchema(Database& db, const SchemaObjects& wanted,
                                                 const std::vector<SchemaRename>& renames);

}  // namespace marmot
