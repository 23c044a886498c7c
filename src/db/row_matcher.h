// RowMatcher: tells whether the local database already holds a row change exactly.
//
// Every node applies every change from the stream, its own included. When a node's own change
// comes back, the row usually still holds exactly the values that were published; writing them
// again would cost the node a second write of everything it wrote, and the write lock its
// application wants. The applier asks a RowMatcher first and leaves such rows alone
// (docs/CAPTURE.md, "Own changes coming back").
//
// REQUIRES: external synchronization (used by the applier's thread, on the applier's connection).
#pragma once

#include <vector>

#include "db/shape_cache.h"
#include "db/sqlite.h"
#include "db/value.h"
#include "util/status.h"

namespace marmot {

class RowMatcher {
 public:
  explicit RowMatcher(Database* db) : db_(db) {}
  RowMatcher(const RowMatcher&) = delete;
  RowMatcher& operator=(const RowMatcher&) = delete;

  // True when the database already holds what `change` wrote: for an upsert, the row exists and
  // holds exactly the change's values (same type, same bytes) in the change's columns (a column
  // the table gained here since is not compared); for a delete, no row has the key. False when
  // the answer is not certain (the table is unknown here or lacks a column of the change).
  Result<bool> AlreadyHolds(const RowChange& change);

  // Forgets every prepared lookup (after a schema change).
  void Clear() { lookups_.Clear(); }

 private:
  struct Lookup {
    Statement statement;             // SELECT of the change's columns (or 1) by key
    std::vector<size_t> key_values;  // where each key column's value is in the change
    bool usable = false;             // false: the table or its columns differ here
  };
  // The lookup for a change of this shape (prepared on first use).
  Result<Lookup> MakeLookup(const RowChange& change);

  Database* db_;
  ShapeCache<Lookup> lookups_;
};

}  // namespace marmot
