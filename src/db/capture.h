// Capture: the triggers that record every row change the application makes.
//
// For each replicated table, AFTER INSERT / UPDATE / DELETE triggers append the key of the
// changed row to __marmot__change_log. A trigger does one small INSERT and nothing else: no
// function lookups, no scans (the original's pragma_function_list check made bulk writes ~100x
// slower). An UPDATE that changes the key also logs the old key, so replicas delete the old row.
// Replicated writes are not captured because the applier's connection runs with triggers off.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "db/schema.h"
#include "util/status.h"

namespace marmot {

class Database;

// Installs capture for `tables` in one transaction: creates marmot's tables, registers each table
// under a stable id, and (re)creates its triggers. Triggers of tables not in `tables` (dropped or
// renamed since) are removed. Safe to run on every start.
//
// With `log_rows_of_new_tables`, a table registered for the first time in a database where
// capture was installed before (a table the application created while marmot ran or was stopped)
// gets every row it already holds logged, so rows written before its triggers existed (in the
// CREATE TABLE's own transaction, say) are published too.
Status InstallCapture(Database& db, const std::vector<TableSchema>& tables,
                      bool log_rows_of_new_tables = false);
// The same inside the caller's write transaction.
Status InstallCaptureInTransaction(Database& db, const std::vector<TableSchema>& tables,
                                   bool log_rows_of_new_tables);

// The tables renamed since the change reader last published the schema, as (old name, new name).
// Capture installation finds a renamed table by its triggers (SQLite moves them with the table)
// and records the rename here (in __marmot__state, chained: a -> b then b -> c is a -> c), so that
// the rename is published as a rename even when it happened while marmot was stopped, or when
// NATS was away at the time: published as a drop and a create, it would cost the other nodes
// the table's rows.
Result<std::vector<std::pair<std::string, std::string>>> UnpublishedTableRenames(Database& db);
// After the schema was published (or found unchanged): forgets them.
Status ForgetUnpublishedTableRenames(Database& db);

// Removes every trigger and table marmot created (the -cleanup flag), in one transaction.
Status RemoveCapture(Database& db);

}  // namespace marmot
