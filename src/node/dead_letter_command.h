// `marmot dead-letter list|replay|drop`: the operator's tools for this node's dead-letter table
// (__marmot__dead_letter; docs/OPERATIONS.md, "Dead letters").
//
//   list    the newest dead letters (-table NAME, -limit N): id, time, stream message, table,
//           operation, state (pending, superseded, not replayable) and reason.
//   replay  applies the recorded changes again, oldest first, after the cause was fixed (a missing
//           column added, a constraint relaxed); each in its own transaction, without publishing
//           it (the other nodes applied it when it arrived). A dead letter whose row received a
//           later change from the stream since is dropped instead: applying it would undo that
//           change. Applied and superseded records are deleted; failing ones stay, with the reason.
//   drop    deletes the selected records (the rows stay as they are on this node: `marmot verify`
//           shows where they differ, and `-repair` makes them agree).
//
// Works on the database file directly, also while the node runs (SQLite's locking orders it with
// the node's writes). Exit codes: 0 done (for replay: nothing left failing), 1 otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace marmot {

struct DeadLetterCommand {
  std::string db_path;
  std::string action;          // "list", "replay" or "drop"
  std::string table;           // only this table's; empty: every table
  std::optional<uint64_t> id;  // only this record
  bool all = false;            // every record (replay, drop)
  uint64_t limit = 50;         // list: the newest this many
};

int RunDeadLetterCommand(const DeadLetterCommand& command);

}  // namespace marmot
