// ShapeCache<T>: one T (a prepared statement, say) per change shape, i.e. per ChangeShapeKey
// (operation, table, column list). The last few entries used are remembered by the change's shared
// column list, so the changes of one message find theirs without building the key.
//
// REQUIRES: external synchronization.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "db/value.h"
#include "util/status.h"

namespace marmot {

template <typename T>
class ShapeCache {
 public:
  // The entry for `change`'s shape; `make(change)` (returning Result<T>) creates it the first
  // time. A failed `make` is not cached.
  // Forgets every entry (after a schema change).
  void Clear() {
    for (Recent& r : recent_) r = Recent();
    entries_.clear();
  }

  template <typename Make>
  Result<T*> Get(const RowChange& change, Make make) {
    for (const Recent& r : recent_) {
      if (r.entry && r.columns == change.columns && r.op == change.op && r.table == change.table)
        return r.entry;
    }
    std::string key = ChangeShapeKey(change);
    auto found = entries_.find(key);
    if (found == entries_.end()) {
      Result<T> made = make(change);
      if (!made.ok()) return made.status();
      found = entries_.emplace(std::move(key), std::move(*made)).first;
    }
    Recent& r = recent_[next_recent_];
    next_recent_ = (next_recent_ + 1) % kRecent;
    // Holding the column list keeps its address from being reused by another list.
    r.columns = change.columns;
    r.op = change.op;
    r.table = change.table;
    r.entry = &found->second;  // stable: unordered_map never moves its elements
    return r.entry;
  }

 private:
  // The last shapes used, found by their shared column list without building a key: enough for
  // batches that interleave a few shapes (upserts and deletes of a few tables).
  static constexpr size_t kRecent = 4;
  struct Recent {
    std::shared_ptr<const std::vector<std::string>> columns;
    RowChange::Op op = RowChange::Op::kUpsert;
    std::string table;
    T* entry = nullptr;
  };

  std::unordered_map<std::string, T> entries_;
  Recent recent_[kRecent];
  size_t next_recent_ = 0;
};

}  // namespace marmot
