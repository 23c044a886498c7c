#include "db/row_matcher.h"

#include <algorithm>

#include "db/schema.h"

namespace marmot {

Result<RowMatcher::Lookup> RowMatcher::MakeLookup(const RowChange& change) {
  Lookup lookup;
  Result<std::optional<TableSchema>> schema = ReadTableSchema(*db_, change.table);
  if (!schema.ok()) return schema.status();
  const std::vector<std::string>& columns = *change.columns;
  bool delete_op = change.op == RowChange::Op::kDelete;
  // Every column of the change must be a stored column here. The table may have more (added here
  // after the change was written): a row holding the change's values in its columns holds all
  // that this node's own change wrote.
  if (!*schema) return lookup;
  if (!delete_op) {
    std::vector<std::string> stored = (*schema)->StoredColumns();
    for (const std::string& c : columns) {
      if (std::find(stored.begin(), stored.end(), c) == stored.end()) return lookup;
    }
  }
  std::string where;
  for (const std::string& key : (*schema)->KeyColumns()) {
    auto at = std::find(columns.begin(), columns.end(), key);
    if (at == columns.end()) return lookup;
    lookup.key_values.push_back(static_cast<size_t>(at - columns.begin()));
    where +=
        (where.empty() ? "" : " AND ") + QuoteIdent(key) + " IS ?" + std::to_string(lookup.key_values.size());
  }
  std::string select = delete_op ? "1" : "";
  for (size_t i = 0; !delete_op && i < columns.size(); ++i)
    select += (i ? ", " : "") + QuoteIdent(columns[i]);
  Result<Statement> statement =
      db_->Prepare("SELECT " + select + " FROM " + QuoteIdent(change.table) + " WHERE " + where);
  if (!statement.ok())
    return statement.status().WithContext("looking up rows of " + QuoteIdent(change.table));
  lookup.statement = std::move(*statement);
  lookup.usable = true;
  return lookup;
}

Result<bool> RowMatcher::AlreadyHolds(const RowChange& change) {
  if (change.values.size() != change.columns->size()) return false;
  Result<Lookup*> lookup = lookups_.Get(change, [this](const RowChange& c) { return MakeLookup(c); });
  if (!lookup.ok()) return lookup.status();
  Lookup& l = **lookup;
  if (!l.usable) return false;
  for (size_t k = 0; k < l.key_values.size(); ++k) {
    l.statement.BindUncopied(static_cast<int>(k + 1), change.values[l.key_values[k]]);
  }
  Result<bool> found = l.statement.Step();
  bool holds = false;
  if (found.ok()) {
    if (change.op == RowChange::Op::kDelete) {
      holds = !*found;
    } else if (*found) {
      holds = true;
      for (size_t i = 0; holds && i < change.values.size(); ++i) {
        holds = l.statement.ColumnEquals(static_cast<int>(i), change.values[i]);
      }
    }
  }
  l.statement.Reset();
  if (!found.ok()) return found.status().WithContext("looking up a row of " + QuoteIdent(change.table));
  return holds;
}

}  // namespace marmot
