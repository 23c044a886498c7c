// SchemaApplier: takes the schema stream's messages, in order, into this database.
//
// Every node keeps the schema the stream defines (the 'canon' record of __marmot__schema) and
// updates it from each message, identically everywhere: for each object transition (before ->
// after) of the message,
//   - the canon already equals `after`: nothing to do (a change made on several nodes);
//   - the canon equals `before`: it becomes `after`;
//   - the same transition was taken before: a late copy of a change already made, skipped;
//   - otherwise two nodes changed the object differently at the same time: the later one in the
//     stream wins, as for rows, and an error says which definition was replaced.
// Then the live schema is brought to the canon (db/schema_reconcile.h), in the same transaction
// that stores the stream position, and capture is re-installed in it, unless this node has a
// schema change of its own not yet back from the stream (its application's change must not be
// undone before the stream has placed it): then the live schema catches up when it has.
//
// REQUIRES: one thread uses an applier.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "codec/schema_message.h"
#include "db/applier.h"
#include "db/sqlite.h"
#include "util/status.h"

namespace marmot {

class SchemaApplier {
 public:
  // Opens its own connection (foreign keys off). Records the live schema as both 'local' and
  // 'canon' when the database has no records yet (its first start with schema replication).
  // `publishing`: this node publishes its own schema changes (publish = true); when it does not,
  // nothing of its own is ever in flight, and the live schema always follows the canon.
  static Result<std::unique_ptr<SchemaApplier>> Open(const std::string& db_path, bool publishing = true);

  // Takes message `position` into the canon and, if nothing of this node's own is in flight,
  // brings the live schema to it. One write transaction.
  Status Apply(const SchemaChange& change, const StreamPosition& position);
  // Moves past a message that cannot be decoded (logged as an error by the caller), recording it
  // in the dead-letter table with `reason`, so that metrics, /health and `marmot dead-letter list`
  // show it. One write transaction.
  Status Skip(const StreamPosition& position, const std::string& reason);

  Result<StreamPosition> LoadPosition(const std::string& stream);

  // False while the live schema waits for this node's own change to come back (see the file
  // comment), or differs from the canon after the last message.
  bool settled() const { return settled_.load(); }
  // Tries again to bring the live schema to the canon (the consumer calls it while not settled:
  // this node's own change may have come back before the reader recorded it as published).
  Status Retry();

 private:
  SchemaApplier(Database db, bool publishing) : db_(std::move(db)), publishing_(publishing) {}
  Status WritePosition(const StreamPosition& position);
  // Brings the live schema to the canon when nothing local is in flight.
  Status CatchUp(uint64_t applied_seq);

  Database db_;
  bool publishing_;
  uint64_t applied_seq_ = 0;
  std::atomic<bool> settled_{true};
  // What CatchUp last reported as still different, and when: Retry runs every half second while
  // the schema differs, and says the same again only every kRepeatNotesAfter.
  std::string reported_notes_;
  std::chrono::steady_clock::time_point notes_reported_at_;
};

// True while this node has a schema change of its own that the schema stream has not brought
// back yet (not published, or published after the last message applied here).
Result<bool> OwnSchemaChangeInFlight(Database& db);

// Records the live schema as the 'local' and 'canon' records when none exist (a database that
// has not met schema replication yet). Call inside a write transaction.
Status InitSchemaRecords(Database& db);

}  // namespace marmot
