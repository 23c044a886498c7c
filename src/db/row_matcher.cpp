#include "db/row_matcher.h"

#include <algorithm>

#include "db/schema.h"

namespace marmot {

Result<RowMatcher::Lookup*> RowMatcher::LookupFor(const RowChange& change) {
  if (last_ && last_columns_ == change.columns && last_op_ == change.op && last_table_ == change.table) {
    return last_;
  }
  std::string shape = ChangeShapeKey(change);
  auto found = lookups_.find(shape);
  if (found == lookups_.end()) {
    Lookup lookup;
    Result<std::optional<TableSchema>> schema = ReadTableSchema(*db_, change.table);
    if (!schema.ok()) return schema.status();
    const std::vector<std::string>& columns = *change.columns;
    bool same_columns =
        change.op == RowChange::Op::kDelete || (*schema && (*schema)->StoredColumns() == columns);
    if (*schema && same_columns) {
      lookup.usable = true;
      std::string where;
      for (const std::string& key : (*schema)->KeyColumns()) {
        auto at = std::find(columns.begin(), columns.end(), key);
        if (at == columns.end()) {
          lookup.usable = false;
          break;
        }
        lookup.key_values.push_back(static_cast<size_t>(at - columns.begin()));
        where += (where.empty() ? "" : " AND ") + QuoteIdent(key) + " IS ?" +
                 std::to_string(lookup.key_values.size());
      }
      std::string select;
      if (change.op == RowChange::Op::kDelete) select = "1";
      for (size_t i = 0; change.op == RowChange::Op::kUpsert && i < columns.size(); ++i) {
        select += (i ? ", " : "") + QuoteIdent(columns[i]);
      }
      if (lookup.usable) {
        Result<Statement> statement =
            db_->Prepare("SELECT " + select + " FROM " + QuoteIdent(change.table) + " WHERE " + where);
        if (!statement.ok())
          return statement.status().WithContext("looking up rows of " + QuoteIdent(change.table));
        lookup.statement = std::move(*statement);
      }
    }
    found = lookups_.emplace(std::move(shape), std::move(lookup)).first;
  }
  last_columns_ = change.columns;
  last_op_ = change.op;
  last_table_ = change.table;
  last_ = &found->second;
  return last_;
}

Result<bool> RowMatcher::AlreadyHolds(const RowChange& change) {
  if (change.values.size() != change.columns->size()) return false;
  Result<Lookup*> lookup = LookupFor(change);
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
        holds = l.statement.ColumnValue(static_cast<int>(i)) == change.values[i];
      }
    }
  }
  l.statement.Reset();
  if (!found.ok()) return found.status().WithContext("looking up a row of " + QuoteIdent(change.table));
  return holds;
}

}  // namespace marmot
