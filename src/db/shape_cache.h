// ShapeCache<T>: one T (a prepared statement, say) per change shape, i.e. per ChangeShapeKey
// (operation, table, column list). The last entry used is remembered by the change's shared
// column list, so a run of changes from one message finds it without building the key.
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
  template <typename Make>
  Result<T*> Get(const RowChange& change, Make make) {
    if (last_ && last_columns_ == change.columns && last_op_ == change.op && last_table_ == change.table) {
      return last_;
    }
    std::string key = ChangeShapeKey(change);
    auto found = entries_.find(key);
    if (found == entries_.end()) {
      Result<T> made = make(change);
      if (!made.ok()) return made.status();
      found = entries_.emplace(std::move(key), std::move(*made)).first;
    }
    // Holding the column list keeps its address from being reused by another list.
    last_columns_ = change.columns;
    last_op_ = change.op;
    last_table_ = change.table;
    last_ = &found->second;  // stable: unordered_map never moves its elements
    return last_;
  }

 private:
  std::unordered_map<std::string, T> entries_;
  std::shared_ptr<const std::vector<std::string>> last_columns_;
  RowChange::Op last_op_ = RowChange::Op::kUpsert;
  std::string last_table_;
  T* last_ = nullptr;
};

}  // namespace marmot
