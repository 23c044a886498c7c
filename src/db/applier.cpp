#include "db/applier.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_set>

#include "codec/wire_format.h"
#include "db/marmot_tables.h"
#include "db/schema.h"
#include "db/schema_objects.h"

namespace marmot {
namespace {

// A literal for `v`, shortened to about `budget` bytes (a TEXT or BLOB longer than that shows its
// start followed by "...").
std::string BoundedLiteral(const Value& v, size_t budget) {
  bool bytes = v.type() == Value::Type::kText || v.type() == Value::Type::kBlob;
  size_t keep = v.type() == Value::Type::kBlob ? budget / 2 : budget;
  if (!bytes || v.bytes().size() <= keep) return v.ToDebugString();
  std::string_view start(v.bytes().data(), keep);
  Value part =
      v.type() == Value::Type::kText ? Value::Text(std::string(start)) : Value::Blob(std::string(start));
  return part.ToDebugString() + "...";
}

// The statement text for `change`, with ?N placeholders, or with literals when `values` is set
// (each at most about `value_budget` bytes).
std::string BuildSql(const RowChange& change, const std::vector<Value>* values,
                     size_t value_budget = SIZE_MAX) {
  const std::vector<std::string>& cols = *change.columns;
  auto param = [&](size_t i) {
    if (values) return BoundedLiteral((*values)[i], value_budget);
    std::string placeholder = "?";
    placeholder += std::to_string(i + 1);
    return placeholder;
  };
  std::string sql;
  if (change.op == RowChange::Op::kUpsert) {
    // An empty column name: a value left out (Applier::MakeShape).
    std::string names;
    std::string values;
    for (size_t i = 0; i < cols.size(); ++i) {
      if (cols[i].empty()) continue;
      names += (names.empty() ? "" : ", ") + QuoteIdent(cols[i]);
      values += (values.empty() ? "" : ", ") + param(i);
    }
    sql = "INSERT OR REPLACE INTO " + QuoteIdent(change.table) + " (" + names + ") VALUES (" + values + ")";
  } else {
    sql = "DELETE FROM " + QuoteIdent(change.table) + " WHERE ";
    for (size_t i = 0; i < cols.size(); ++i)
      sql += (i ? " AND " : "") + QuoteIdent(cols[i]) + " IS " + param(i);
  }
  return sql;
}

}  // namespace

std::string ChangeToSql(const RowChange& change, size_t max_bytes) {
  if (change.values.size() != change.columns->size()) {
    return "-- " + std::to_string(change.values.size()) + " values for " +
           std::to_string(change.columns->size()) + " columns of table " + QuoteIdent(change.table);
  }
  size_t budget = max_bytes == SIZE_MAX ? SIZE_MAX : max_bytes / std::max<size_t>(change.values.size(), 1);
  std::string sql = BuildSql(change, &change.values, budget);
  bool shortened = sql.size() > max_bytes;
  if (shortened) sql.resize(max_bytes);
  for (const Value& v : change.values) {
    bool bytes = v.type() == Value::Type::kText || v.type() == Value::Type::kBlob;
    if (bytes && v.bytes().size() > (v.type() == Value::Type::kBlob ? budget / 2 : budget)) shortened = true;
  }
  if (shortened) sql += " -- ... (truncated)";
  return sql;
}

Result<std::unique_ptr<Applier>> Applier::Open(const std::string& db_path) {
  Database::Options options;
  options.poll_for_locks = true;
  Result<Database> db = Database::Open(db_path, options);
  if (!db.ok()) return db.status();
  std::unique_ptr<Applier> applier(new Applier(std::move(*db)));
  Database& d = applier->db_;
  std::string what = "opening applier on " + db_path;
  MARMOT_RETURN_IF_ERROR(d.DisableTriggersAndForeignKeys().WithContext(what));
  // No fsync per applied batch: in WAL mode a power cut can only roll back the newest batches,
  // each together with the stream position stored in it, and the consumer applies them again
  // from the stream. The application's own connections keep whatever durability they chose.
  MARMOT_RETURN_IF_ERROR(d.Exec("PRAGMA synchronous=NORMAL").WithContext(what));
  {
    Transaction txn(&d);
    MARMOT_RETURN_IF_ERROR(txn.Begin(true).WithContext(what));
    Result<int> width = ChangeLogKeyColumns(d);
    if (!width.ok()) return width.status().WithContext(what);
    MARMOT_RETURN_IF_ERROR(EnsureMarmotTables(d, std::max(*width, 1)).WithContext(what));
    MARMOT_RETURN_IF_ERROR(txn.Commit().WithContext(what));
  }
  Result<Statement> save = d.Prepare("INSERT OR REPLACE INTO " + QuoteIdent(kPositionsTable) +
                                     "(stream, seq, stream_created, msg_hash) VALUES (?1, ?2, ?3, ?4)");
  if (!save.ok()) return save.status().WithContext(what);
  applier->save_position_ = std::move(*save);
  Result<Statement> version = d.Prepare("PRAGMA schema_version");
  if (!version.ok()) return version.status().WithContext(what);
  applier->schema_version_ = std::move(*version);
  // A message applied again after a restart (the position was held back by a row in chunks) does
  // not record the same dead letter twice.
  std::string dead_letters = QuoteIdent(kDeadLetterTable);
  Result<Statement> dead = d.Prepare(
      "INSERT INTO " + dead_letters +
      "(stream, stream_seq, tbl, op, reason, statement, row_hash, change, superseded_seq) "
      "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 "
      "WHERE NOT EXISTS (SELECT 1 FROM " +
      dead_letters + " WHERE stream IS ?1 AND stream_seq IS ?2 AND tbl = ?3 AND op = ?4 AND statement = ?6)");
  if (!dead.ok()) return dead.status().WithContext(what);
  applier->dead_letter_ = std::move(*dead);
  // With a WHERE: a bare DELETE takes SQLite's truncate path and writes a page even when empty.
  Result<Statement> clear_notes =
      d.Prepare("DELETE FROM " + QuoteIdent(kReplacedRowsTable) + " WHERE tbl IS NOT NULL");
  if (!clear_notes.ok()) return clear_notes.status().WithContext(what);
  applier->clear_replace_notes_ = std::move(*clear_notes);
  Result<Statement> mark = d.Prepare(
      "UPDATE " + dead_letters + " SET superseded_seq = ?2 WHERE row_hash = ?1 AND superseded_seq IS NULL");
  if (!mark.ok()) return mark.status().WithContext(what);
  applier->mark_superseded_ = std::move(*mark);
  Result<Statement> pending = d.Prepare("SELECT row_hash FROM " + dead_letters +
                                        " WHERE superseded_seq IS NULL AND row_hash IS NOT NULL");
  if (!pending.ok()) return pending.status().WithContext(what);
  while (true) {
    Result<bool> row = pending->Step();
    if (!row.ok()) return row.status().WithContext(what);
    if (!*row) break;
    applier->dead_rows_.insert(static_cast<uint64_t>(pending->ColumnInt(0)));
  }
  return applier;
}

Result<bool> Applier::ForgetCachesIfSchemaChanged() {
  Result<bool> row = schema_version_.Step();
  int64_t version = row.ok() && *row ? schema_version_.ColumnInt(0) : -1;
  schema_version_.Reset();
  if (!row.ok()) return row.status().WithContext("reading the schema cookie");
  if (version == known_schema_version_) return false;
  if (known_schema_version_ != -1) spdlog::debug("schema of {} changed: applier caches dropped", db_.path());
  known_schema_version_ = version;
  ForgetCaches();
  return true;
}

void Applier::ForgetCaches() {
  statements_.Clear();
  key_positions_.Clear();
  tables_.clear();
  matcher_.Clear();
}

namespace {

// The names in `a` that are not in `b`, quoted and comma-separated.
std::string Missing(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::string out;
  for (const std::string& name : a) {
    if (std::find(b.begin(), b.end(), name) == b.end()) out += (out.empty() ? "" : ", ") + QuoteIdent(name);
  }
  return out;
}

}  // namespace

Result<Applier::PreparedShape> Applier::MakeShape(const RowChange& change) {
  PreparedShape shape;
  // The change as it is written here: a table or columns renamed since it was written take their
  // new names (__marmot__renamed keeps every rename), and values of dropped columns are left out.
  RowChange renamed;
  renamed.table = change.table;
  renamed.op = change.op;
  renamed.columns = change.columns;
  const RowChange* as_here = &renamed;
  Result<std::optional<TableSchema>> schema = ReadTableSchema(db_, change.table);
  if (!schema.ok()) return schema.status();
  if (!*schema) {
    Result<std::string> now = NameAfterRenames("", change.table, nullptr);
    if (!now.ok()) return now.status();
    if (now->empty()) {
      // Dropped since the change was written: the drop wins, as if it had come after.
      spdlog::info("changes to table {} skipped: the table was dropped since they were written",
                   QuoteIdent(change.table));
      shape.excluded = true;
      return shape;
    }
    if (*now != change.table) {
      schema = ReadTableSchema(db_, *now);
      if (!schema.ok()) return schema.status();
      if (*schema) renamed.table = *now;
    }
  }
  if (!*schema) {
    Result<TableSelection> selection = LoadTableSelection(db_);
    if (!selection.ok()) return selection.status();
    if (!selection->Selects(change.table)) {
      shape.excluded = true;
      return shape;
    }
    shape.mismatch = "no such table here: " + QuoteIdent(change.table);
    shape.newer_schema = true;
    return shape;
  }
  bool upsert = change.op == RowChange::Op::kUpsert;
  std::vector<std::string> here = upsert ? (*schema)->StoredColumns() : (*schema)->KeyColumns();
  std::string unknown = Missing(*change.columns, here);
  if (!unknown.empty()) {
    // An empty name stands for a column dropped since: its value is left out.
    std::vector<std::string> mapped = *change.columns;
    std::string dropped;
    for (std::string& column : mapped) {
      if (std::find(here.begin(), here.end(), column) != here.end()) continue;
      Result<std::string> now = NameAfterRenames(renamed.table, column, &here);
      if (!now.ok()) return now.status();
      if (now->empty()) dropped += (dropped.empty() ? "" : ", ") + QuoteIdent(column);
      if (now->empty() || std::find(mapped.begin(), mapped.end(), *now) == mapped.end()) column = *now;
    }
    if (!dropped.empty()) {
      spdlog::info("changes to table {} written before {} was dropped: applied without it",
                   QuoteIdent(change.table), dropped);
    }
    renamed.columns = std::make_shared<const std::vector<std::string>>(std::move(mapped));
    unknown = Missing(*renamed.columns, here);
    // Missing() counts the dropped ones (empty names) as unknown: they are not.
    if (!dropped.empty()) {
      std::vector<std::string> named;
      for (const std::string& c : *renamed.columns)
        if (!c.empty()) named.push_back(c);
      unknown = Missing(named, here);
    }
  }
  const std::vector<std::string>& columns = *as_here->columns;
  std::string lacking = Missing(here, columns);
  if (upsert && unknown.empty() && !lacking.empty() && Missing((*schema)->KeyColumns(), columns).empty()) {
    // Written under an older schema (columns were added here since): the columns it has are
    // written, the others keep their values (or defaults, for a new row).
    std::vector<std::string> keys = (*schema)->KeyColumns();
    std::string sql = "UPDATE " + QuoteIdent(renamed.table) + " SET ";
    std::string where;
    for (size_t i = 0; i < columns.size(); ++i) {
      const std::string& column = columns[i];
      if (column.empty()) continue;  // left out (see above)
      std::string param = "?" + std::to_string(i + 1);
      if (std::find(keys.begin(), keys.end(), column) != keys.end()) {
        where += (where.empty() ? "" : " AND ") + QuoteIdent(column) + " IS " + param;
      } else {
        sql += (sql.back() == ' ' ? "" : ", ") + QuoteIdent(column) + " = " + param;
      }
    }
    if (sql.back() != ' ') {
      Result<Statement> update = db_.Prepare(sql + " WHERE " + where);
      if (!update.ok()) return update.status();
      shape.update = std::move(*update);
    }
    Result<Statement> insert = db_.Prepare(BuildSql(*as_here, nullptr));
    if (!insert.ok()) return insert.status();
    shape.statement = std::move(*insert);
    return shape;
  }
  if (!unknown.empty() || !lacking.empty()) {
    shape.newer_schema = !unknown.empty();
    shape.mismatch = "the change's columns differ from table " + QuoteIdent(change.table) + " here (";
    if (!unknown.empty()) shape.mismatch += "not here: " + unknown;
    if (!unknown.empty() && !lacking.empty()) shape.mismatch += "; ";
    if (!lacking.empty())
      shape.mismatch += std::string(upsert ? "missing in the change: " : "key here: ") + lacking;
    shape.mismatch +=
        schema_waited_
            ? "), and this node has applied the whole schema stream: its schema differs from the writer's "
              "and "
              "no schema change explains it (make the schemas equal, e.g. run the writer's migration here, "
              "then "
              "`marmot dead-letter replay`; docs/SCHEMA.md)"
            : "): it was written under another schema, and is not applied in part or with defaults filled in";
    return shape;
  }
  Result<Statement> statement = db_.Prepare(BuildSql(*as_here, nullptr));
  if (!statement.ok()) return statement.status();
  shape.statement = std::move(*statement);
  return shape;
}

Result<std::string> Applier::NameAfterRenames(const std::string& table, const std::string& name,
                                              const std::vector<std::string>* here) {
  Result<Statement> read = db_.Prepare("SELECT new_name FROM " + QuoteIdent(kRenamedColumnsTable) +
                                       " WHERE tbl = ?1 AND old_name = ?2");
  if (!read.ok()) return read.status();
  std::string now = name;
  for (int hop = 0; hop < 16; ++hop) {  // a -> b -> c; bounded in case of a cycle
    if (here && std::find(here->begin(), here->end(), now) != here->end()) return now;
    read->BindText(1, table);
    read->BindText(2, now);
    Result<bool> row = read->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    now = read->ColumnText(0);
    read->Reset();
  }
  return now;
}

Result<Applier::PreparedShape*> Applier::ShapeFor(const RowChange& change) {
  return statements_.Get(change, [this](const RowChange& c) { return MakeShape(c); });
}

Status Applier::DeadLetter(const RowChange& change, const std::string& reason,
                           const std::optional<StreamPosition>& position, bool superseded_here) {
  ++dead_lettered_total_;
  std::string statement = ChangeToSql(change, kMaxDeadLetterStatement);
  std::string why = reason.substr(0, kMaxDeadLetterReason);
  uint64_t seq = change.stream_seq != 0 ? change.stream_seq : position ? position->seq : 0;
  spdlog::error("dead-lettered a change to table {} from stream {} message {} ({}): {}",
                QuoteIdent(change.table), position ? position->stream : "?", seq, why,
                statement.substr(0, 300));
  if (position) {
    dead_letter_.BindText(1, position->stream);
    dead_letter_.BindInt(2, static_cast<int64_t>(seq));
  }
  dead_letter_.BindText(3, change.table);
  dead_letter_.BindText(4, change.op == RowChange::Op::kUpsert ? "upsert" : "delete");
  dead_letter_.BindText(5, why);
  dead_letter_.BindText(6, statement);
  // The row's hash, so a later change to it marks this record superseded (replay then skips it).
  Result<std::optional<uint64_t>> hash = RowHashOf(change);
  if (hash.ok() && *hash) {
    dead_letter_.BindInt(7, static_cast<int64_t>(**hash));
    if (!superseded_here) dead_rows_.insert(**hash);
  }
  if (superseded_here) dead_letter_.BindInt(9, 0);  // 0: by a local write, not a stream message
  // The change itself, for replay, unless it is huge: a dead letter stays small (the 50 MB row of
  // tests/e2e/bounds_test.sh is recorded as an SQL excerpt only, and cannot be replayed).
  size_t bytes = 0;
  for (const Value& v : change.values) bytes += v.bytes().size() + 16;
  std::string encoded;
  if (bytes <= kMaxDeadLetterChange) {
    const RowChange* one[] = {&change};
    encoded = EncodeChangeMessage(MessageOrigin{}, one);
    dead_letter_.BindBlob(8, encoded);
  }
  Status s = dead_letter_.Run();
  dead_letter_.Reset();
  return s.WithContext("writing to " + std::string(kDeadLetterTable));
}

Result<Applier::TableFacts*> Applier::Facts(const std::string& table) {
  auto found = tables_.find(table);
  if (found != tables_.end()) return &found->second;
  Result<std::optional<TableSchema>> schema = ReadTableSchema(db_, table);
  if (!schema.ok()) return schema.status();
  TableFacts facts;
  if (*schema) facts.key_columns = (*schema)->KeyColumns();
  facts.schema = std::move(*schema);
  return &tables_.emplace(table, std::move(facts)).first->second;
}

Result<const std::vector<std::string>*> Applier::KeyColumns(const std::string& table) {
  Result<TableFacts*> facts = Facts(table);
  if (!facts.ok()) return facts.status();
  return &(*facts)->key_columns;
}

Result<bool> Applier::ReplacesOtherRows(const std::string& table) {
  Result<TableFacts*> facts = Facts(table);
  if (!facts.ok()) return facts.status();
  if (!(*facts)->replaces_other_rows) {
    Result<std::vector<std::string>> unique = UniqueIndexesBesidesKey(db_, table);
    if (!unique.ok()) return unique.status();
    (*facts)->replaces_other_rows = !unique->empty();
  }
  return *(*facts)->replaces_other_rows;
}

Result<Applier::LocalRowReader*> Applier::LocalRows(const std::string& table) {
  Result<TableFacts*> facts = Facts(table);
  if (!facts.ok()) return facts.status();
  TableFacts& f = **facts;
  if (f.local_rows) return &*f.local_rows;
  if (!f.schema) return Status::NotFound("no table " + QuoteIdent(table) + " here");
  LocalRowReader reader;
  std::vector<std::string> stored = f.schema->StoredColumns();
  std::string names, values;
  for (size_t i = 0; i < stored.size(); ++i) {
    names += (i ? ", " : "") + QuoteIdent(stored[i]);
    values += (i ? ", ?" : "?") + std::to_string(i + 1);
  }
  Result<Statement> lookup = db_.Prepare(SelectRowByKeySql(*f.schema));
  if (!lookup.ok()) return lookup.status();
  Result<Statement> put_back =
      db_.Prepare("INSERT OR IGNORE INTO " + QuoteIdent(table) + " (" + names + ") VALUES (" + values + ")");
  if (!put_back.ok()) return put_back.status();
  reader.lookup = std::move(*lookup);
  reader.put_back = std::move(*put_back);
  reader.stored_columns = std::make_shared<const std::vector<std::string>>(std::move(stored));
  reader.key_columns = std::make_shared<const std::vector<std::string>>(f.key_columns);
  f.local_rows = std::move(reader);
  return &*f.local_rows;
}

Result<Applier::LocalRow> Applier::ReadLocalRow(const RowChange& change) {
  Result<LocalRowReader*> found = LocalRows(change.table);
  if (!found.ok()) return found.status();
  LocalRowReader& reader = **found;
  Result<KeyPositions*> positions =
      key_positions_.Get(change, [this](const RowChange& c) { return MakeKeyPositions(c); });
  if (!positions.ok()) return positions.status();
  if (!(*positions)->known || (*positions)->at.size() != reader.key_columns->size())
    return Status::NotFound("the key of a change to table " + QuoteIdent(change.table) +
                            " is not known here");
  LocalRow local;
  local.key.table = change.table;
  local.key.op = RowChange::Op::kDelete;
  local.key.columns = reader.key_columns;
  for (size_t at : (*positions)->at) local.key.values.push_back(change.values[at]);
  for (size_t k = 0; k < local.key.values.size(); ++k)
    reader.lookup.Bind(static_cast<int>(k + 1), local.key.values[k]);
  Result<bool> found_row = reader.lookup.Step();
  if (found_row.ok() && *found_row) {
    RowChange row;
    row.table = change.table;
    row.op = RowChange::Op::kUpsert;
    row.columns = reader.stored_columns;
    for (size_t c = 0; c < reader.stored_columns->size(); ++c)
      row.values.push_back(reader.lookup.ColumnValue(static_cast<int>(c)));
    local.row = std::move(row);
  }
  reader.lookup.Reset();
  if (!found_row.ok())
    return found_row.status().WithContext("reading a row of table " + QuoteIdent(change.table));
  return local;
}

Status Applier::RestoreLocalRows() {
  for (const LocalRow& local : local_rows_to_restore_) MARMOT_RETURN_IF_ERROR(RunChange(local.key));
  for (const LocalRow& local : local_rows_to_restore_) {
    if (!local.row) continue;
    const RowChange& row = *local.row;
    Result<LocalRowReader*> reader = LocalRows(row.table);
    if (!reader.ok()) return reader.status();
    Statement& insert = (*reader)->put_back;
    for (size_t i = 0; i < row.values.size(); ++i) insert.Bind(static_cast<int>(i + 1), row.values[i]);
    Status put = insert.Run();
    insert.Reset();
    MARMOT_RETURN_IF_ERROR(put);
    if (sqlite3_changes(db_.get()) == 0) {
      spdlog::debug(
          "a row of table {} lost a unique value to an incoming row: it stays removed here, and its "
          "change-log entry publishes that",
          QuoteIdent(row.table));
    }
  }
  local_rows_to_restore_.clear();
  if (!local_rows_saved_.empty()) local_rows_saved_.clear();  // clear() visits every bucket
  return Status();
}

Result<std::optional<std::string>> Applier::RowIdentity(const RowChange& change) {
  Result<KeyPositions*> positions =
      key_positions_.Get(change, [this](const RowChange& c) { return MakeKeyPositions(c); });
  if (!positions.ok()) return positions.status();
  if (!(*positions)->known) return std::optional<std::string>();
  std::string id = change.table;
  id.push_back('\0');
  for (size_t at : (*positions)->at) AppendKeyBytes(change.values[at], &id);
  return std::optional<std::string>(std::move(id));
}

Result<Applier::KeyPositions> Applier::MakeKeyPositions(const RowChange& change) {
  KeyPositions positions;
  Result<const std::vector<std::string>*> keys = KeyColumns(change.table);
  if (!keys.ok()) return keys.status();
  if ((*keys)->empty()) return positions;
  for (const std::string& key : **keys) {
    auto at = std::find(change.columns->begin(), change.columns->end(), key);
    if (at == change.columns->end()) return positions;
    positions.at.push_back(static_cast<size_t>(at - change.columns->begin()));
  }
  positions.known = true;
  return positions;
}

Status Applier::ComputeRowKeys(std::span<const RowChange> changes) {
  row_keys_.assign(changes.size(), RowKey());
  for (size_t i = 0; i < changes.size(); ++i) {
    const RowChange& change = changes[i];
    Result<KeyPositions*> positions =
        key_positions_.Get(change, [this](const RowChange& c) { return MakeKeyPositions(c); });
    if (!positions.ok()) return positions.status();
    if (!(*positions)->known || change.values.size() != change.columns->size()) continue;
    RowHasher hasher(change.table);
    for (size_t at : (*positions)->at) hasher.Add(change.values[at]);
    row_keys_[i] = RowKey{hasher.hash(), true};
  }
  return Status();
}

Result<bool> Applier::HasUnreadLocalWrites(uint64_t after) {
  Result<int64_t> newest = db_.QueryInt("SELECT max(seq) FROM " + QuoteIdent(kChangeLogTable));
  if (!newest.ok()) return newest.status();
  return *newest > static_cast<int64_t>(after);
}

Status Applier::FindSupersededChanges(std::span<const RowChange> changes, const std::vector<char>& unchanged,
                                      uint64_t after, std::vector<char>* superseded) {
  superseded->assign(changes.size(), 0);
  // The rows the batch will write (own changes the database already holds are not written, so
  // they need no check, and a batch of only those needs no scan).
  rows_seen_.Clear();
  bool any_written = false;
  for (size_t i = 0; i < changes.size(); ++i) {
    if (row_keys_[i].known && (unchanged.empty() || !unchanged[i])) {
      rows_seen_.Insert(row_keys_[i].hash);
      any_written = true;
    }
  }
  if (!any_written) return Status();

  // Stream through the unread entries; memory stays bounded by the incoming batch. A hash match
  // is confirmed by comparing exact identities (built only for matches), so a hash collision can
  // never make a change be skipped.
  Result<int> width = ChangeLogKeyColumns(db_);
  if (!width.ok()) return width.status();
  std::string sql = "SELECT t.name";
  for (int k = 1; k <= *width; ++k) sql += ", l.k" + std::to_string(k);
  sql += " FROM " + QuoteIdent(kChangeLogTable) + " AS l JOIN " + QuoteIdent(kTablesTable) +
         " AS t ON t.id = l.tbl WHERE l.seq > ?1";
  Result<Statement> unread = db_.Prepare(sql);
  if (!unread.ok()) return unread.status();
  unread->BindInt(1, static_cast<int64_t>(after));
  std::unordered_set<std::string> written_here;  // exact identities of the matches
  superseded_hashes_.Clear();
  std::string table;
  while (true) {
    Result<bool> row = unread->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    unread->ReadColumn(0, &column_scratch_);
    table.assign(column_scratch_.bytes());
    Result<const std::vector<std::string>*> keys = KeyColumns(table);
    if (!keys.ok()) return keys.status();
    size_t key_count = std::min((*keys)->size(), static_cast<size_t>(*width));
    RowHasher hasher(table);
    for (size_t k = 0; k < key_count; ++k) {
      unread->ReadColumn(static_cast<int>(k + 1), &column_scratch_);
      hasher.Add(column_scratch_);
    }
    if (!rows_seen_.Contains(hasher.hash())) continue;
    superseded_hashes_.Insert(hasher.hash());
    std::string id = table;
    id.push_back('\0');
    for (size_t k = 0; k < key_count; ++k) AppendKeyBytes(unread->ColumnValue(static_cast<int>(k + 1)), &id);
    written_here.insert(std::move(id));
  }
  if (written_here.empty()) return Status();
  for (size_t i = 0; i < changes.size(); ++i) {
    if (!row_keys_[i].known || (!unchanged.empty() && unchanged[i])) continue;
    if (!superseded_hashes_.Contains(row_keys_[i].hash)) continue;  // exact identities only for matches
    Result<std::optional<std::string>> id = RowIdentity(changes[i]);
    if (!id.ok()) return id.status();
    if (*id && written_here.count(**id)) (*superseded)[i] = 1;
  }
  return Status();
}

Status Applier::FindUnchangedEchoes(std::span<const RowChange> changes, std::vector<char>* unchanged) {
  unchanged->assign(changes.size(), 0);
  Transaction read(&db_);
  MARMOT_RETURN_IF_ERROR(read.Begin(/*immediate=*/false));
  // Rows that an earlier change of this batch will write: a later echo of the same row must be
  // compared with that change's values, not with the row as it is now, so it is applied. (A hash
  // collision with another row only makes an echo be written again, which is harmless.)
  // Likewise a row that an earlier upsert of the batch can remove by REPLACE (it takes a value of
  // another UNIQUE index of the row's table): the echo must write the row again, as on every node.
  rows_seen_.Clear();
  replacing_tables_.clear();
  bool unknown_upsert = false;  // an upsert of a table not known here (renamed?): any row may go
  for (size_t i = 0; i < changes.size(); ++i) {
    const RowChange& change = changes[i];
    if (!row_keys_[i].known) {
      unknown_upsert = unknown_upsert || change.op == RowChange::Op::kUpsert;
      continue;
    }
    bool may_be_replaced = unknown_upsert || std::find(replacing_tables_.begin(), replacing_tables_.end(),
                                                       change.table) != replacing_tables_.end();
    if (change.echo && !may_be_replaced && !rows_seen_.Contains(row_keys_[i].hash)) {
      Result<bool> holds = matcher_.AlreadyHolds(change);
      if (!holds.ok()) return holds.status();
      if (*holds) {
        (*unchanged)[i] = 1;
        continue;
      }
    }
    rows_seen_.Insert(row_keys_[i].hash);
    if (change.op == RowChange::Op::kUpsert && !may_be_replaced) {
      Result<bool> replaces = ReplacesOtherRows(change.table);
      if (!replaces.ok()) return replaces.status();
      if (*replaces) replacing_tables_.push_back(change.table);
    }
  }
  return read.Commit();
}

Result<ApplyStats> Applier::Apply(std::span<const RowChange> changes,
                                  const std::optional<StreamPosition>& position,
                                  std::optional<uint64_t> local_unread_after) {
  ApplyStats stats;
  Result<bool> forgot = ForgetCachesIfSchemaChanged();
  if (!forgot.ok()) return forgot.status().WithContext("applying batch to " + db_.path());
  // Row keys, computed once, and only when one of the checks below needs them.
  bool have_keys = false;
  auto compute_keys = [&]() -> Status {
    if (have_keys) return Status();
    have_keys = true;
    return ComputeRowKeys(changes);
  };
  // Outside the write transaction: a row the application writes meanwhile has an unread change-log
  // entry, so the superseded check below covers it.
  unchanged_.clear();
  if (std::any_of(changes.begin(), changes.end(), [](const RowChange& c) { return c.echo; })) {
    std::string what = "comparing own changes with " + db_.path();
    MARMOT_RETURN_IF_ERROR(compute_keys().WithContext(what));
    MARMOT_RETURN_IF_ERROR(FindUnchangedEchoes(changes, &unchanged_).WithContext(what));
  }
  Transaction txn(&db_);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext("applying batch to " + db_.path()));
  const auto locked_at = std::chrono::steady_clock::now();
  // Notes that capture's REPLACE triggers left for a row an OR IGNORE kept (docs/CAPTURE.md) are
  // dropped before this transaction may remove that row: otherwise a later local insert would
  // take the removal for its own.
  Status cleared = clear_replace_notes_.Run();
  clear_replace_notes_.Reset();
  MARMOT_RETURN_IF_ERROR(cleared.WithContext("applying batch to " + db_.path()));
  local_rows_to_restore_.clear();
  if (!local_rows_saved_.empty()) local_rows_saved_.clear();
  dead_rows_marked_.clear();
  // Puts back the local rows superseded upserts were written over, writes the queued records and
  // `at` (if any) and commits; counts the transaction.
  auto commit = [&](const std::optional<StreamPosition>& at) -> Status {
    // After every change of the transaction, as the local writes will come after them on every
    // other node.
    MARMOT_RETURN_IF_ERROR(RestoreLocalRows().WithContext(
        "putting back local rows that superseded changes were written over in " + db_.path()));
    MARMOT_RETURN_IF_ERROR(WriteQueuedRecords());
    if (at) MARMOT_RETURN_IF_ERROR(WritePosition(*at));
    MARMOT_RETURN_IF_ERROR(txn.Commit().WithContext("applying batch to " + db_.path()));
    for (uint64_t hash : dead_rows_marked_) dead_rows_.erase(hash);
    dead_rows_marked_.clear();
    queued_gaps_.clear();
    queued_messages_.clear();
    ++stats.transactions;
    stats.max_hold_seconds =
        std::max(stats.max_hold_seconds,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - locked_at).count());
    return Status();
  };
  // Again under the write lock: a schema change between the check above and here must not meet
  // statements, column checks and comparisons made for the old schema. Start over (rare).
  forgot = ForgetCachesIfSchemaChanged();
  if (!forgot.ok()) return forgot.status().WithContext("applying batch to " + db_.path());
  if (*forgot) {
    txn.Rollback();
    return Apply(changes, position, local_unread_after);
  }
  superseded_.clear();
  if (local_unread_after) {
    // The common case, nothing unread, costs one lookup of the log's last entry.
    const char* what = "checking for unpublished local writes";
    Result<bool> unread = HasUnreadLocalWrites(*local_unread_after);
    if (!unread.ok()) return unread.status().WithContext(what);
    if (*unread) {
      MARMOT_RETURN_IF_ERROR(compute_keys().WithContext(what));
      MARMOT_RETURN_IF_ERROR(
          FindSupersededChanges(changes, unchanged_, *local_unread_after, &superseded_).WithContext(what));
    }
  }
  // A change that reaches a row with dead letters, and is not dead-lettered itself, is newer than
  // them: they are marked superseded so that a replay does not undo it.
  auto later_change_to = [&](size_t i) -> Status {
    if (dead_rows_.empty()) return Status();
    MARMOT_RETURN_IF_ERROR(compute_keys());
    if (!row_keys_[i].known || dead_rows_.count(row_keys_[i].hash) == 0) return Status();
    uint64_t seq = changes[i].stream_seq != 0 ? changes[i].stream_seq : position ? position->seq : 0;
    return MarkDeadLettersSuperseded(row_keys_[i].hash, seq);
  };
  // The clock is read every 64 changes, so every transaction applies at least 64 (a slow check
  // above cannot make the batch crawl in tiny transactions).
  bool held_long = false;
  for (size_t i = 0; i < changes.size(); ++i) {
    const RowChange& change = changes[i];
    if (!held_long && i % 64 == 0 && i > 0)
      held_long = std::chrono::steady_clock::now() - locked_at >= max_hold_;
    // Held the lock long enough: commit up to the message before this one (where a new message
    // starts, and only forward), and go on in a new transaction.
    if (held_long && i > 0 && position && change.stream_seq > changes[i - 1].stream_seq &&
        changes[i - 1].stream_seq != 0 && change.stream_seq - 1 < position->seq) {
      StreamPosition part = *position;
      part.seq = change.stream_seq - 1;
      MARMOT_RETURN_IF_ERROR(commit(part));
      Result<ApplyStats> rest = Apply(changes.subspan(i), position, local_unread_after);
      if (!rest.ok()) return rest.status();
      stats.applied += rest->applied;
      stats.dead_lettered += rest->dead_lettered;
      stats.superseded += rest->superseded;
      stats.unchanged += rest->unchanged;
      stats.transactions += rest->transactions;
      stats.max_hold_seconds = std::max(stats.max_hold_seconds, rest->max_hold_seconds);
      return stats;
    }
    if (!unchanged_.empty() && unchanged_[i]) {
      ++stats.unchanged;
      MARMOT_RETURN_IF_ERROR(later_change_to(i));
      continue;
    }
    const bool superseded = !superseded_.empty() && superseded_[i];
    if (superseded) {
      ++stats.superseded;
      MARMOT_RETURN_IF_ERROR(later_change_to(i));
      if (change.op != RowChange::Op::kUpsert) continue;
    }
    Status applied = superseded ? WriteSupersededUpsert(change) : RunChange(change);
    if (applied.ok()) {
      if (superseded) continue;
      ++stats.applied;
      MARMOT_RETURN_IF_ERROR(later_change_to(i));
      continue;
    }
    // A failed statement leaves the transaction open unless SQLite had to roll it back
    // (I/O error, disk full, ...); only then does the whole batch fail.
    if (sqlite3_get_autocommit(db_.get())) {
      return applied.WithContext("applying batch to " + db_.path() + " (rolled back)");
    }
    // A table or column not here: the schema change that brings it may still be on its way
    // (schema stream and row streams are not ordered with each other). Wait for the schema
    // stream once, outside the transaction, then try the batch again.
    if (applied.Is(StatusCode::kNotFound) && schema_wait_ && !schema_waited_) {
      txn.Rollback();
      schema_waited_ = true;
      Status waited = schema_wait_(applied.message());
      if (!waited.ok()) {
        schema_waited_ = false;
        return waited;
      }
      // The statements made before the wait may stand for another schema, or lack a rename
      // recorded since; a change that still does not fit is now taken as written under an older
      // schema (see MakeShape).
      Result<bool> dropped = ForgetCachesIfSchemaChanged();
      if (!dropped.ok()) return dropped.status();
      ForgetCaches();
      Result<ApplyStats> again = Apply(changes, position, local_unread_after);
      schema_waited_ = false;
      return again;
    }
    if (superseded) {
      // The local write wins anyway, but the rows this change's REPLACE removed on the other nodes
      // may stay here: recorded, already superseded, so that health and metrics show it.
      MARMOT_RETURN_IF_ERROR(DeadLetter(change,
                                        "superseded by a newer local write to the row, but not written for "
                                        "the rows its REPLACE removes on other nodes (they may stay here; "
                                        "run marmot verify): " +
                                            applied.message(),
                                        position, /*superseded_here=*/true));
      ++stats.dead_lettered;
      continue;
    }
    MARMOT_RETURN_IF_ERROR(DeadLetter(change, applied.message(), position));
    ++stats.dead_lettered;
  }
  MARMOT_RETURN_IF_ERROR(commit(position));
  return stats;
}

Status Applier::WriteSupersededUpsert(const RowChange& change) {
  Result<bool> replaces = ReplacesOtherRows(change.table);
  if (!replaces.ok()) return replaces.status();
  if (!*replaces) return Status();  // skipping it skips nothing else
  const char* what = "writing a superseded change for the rows it replaces";
  // Read when the transaction first writes a superseded change to the row, as the batch's earlier
  // changes left it (a later change to it finds the first one's values instead).
  Result<std::optional<std::string>> identity = RowIdentity(change);
  if (!identity.ok()) return identity.status().WithContext(what);
  if (!*identity) return Status::Error(std::string(what) + ": its key is not known here");
  if (!local_rows_saved_.count(**identity)) {
    Result<LocalRow> local = ReadLocalRow(change);
    if (!local.ok()) return local.status().WithContext(what);
    local_rows_to_restore_.push_back(std::move(*local));
    local_rows_saved_.insert(std::move(**identity));
  }
  // Not written (a table or column not here, a constraint): it replaced nothing either; the row
  // saved above goes back as it was.
  return RunChange(change);
}

Status Applier::RunChange(const RowChange& change) {
  Result<PreparedShape*> shape = ShapeFor(change);
  if (!shape.ok()) return shape.status();
  if ((*shape)->excluded) return Status();
  if (!(*shape)->mismatch.empty()) {
    return Status::Error((*shape)->newer_schema ? StatusCode::kNotFound : StatusCode::kInvalidArgument,
                         (*shape)->mismatch);
  }
  if (change.values.size() != change.columns->size()) {
    return Status::Error("change has " + std::to_string(change.values.size()) + " values for " +
                         std::to_string(change.columns->size()) + " columns");
  }
  // A statement that leaves values out has fewer parameters than the change has values.
  auto bind_all = [&change](Statement* st) {
    size_t params = static_cast<size_t>(sqlite3_bind_parameter_count(st->get()));
    for (size_t v = 0; v < change.values.size() && v < params; ++v)
      st->BindUncopied(static_cast<int>(v + 1), change.values[v]);
  };
  if ((*shape)->update.get()) {
    Statement* u = &(*shape)->update;
    bind_all(u);
    Status updated = u->Run();
    u->Reset();
    if (!updated.ok()) return updated;
    if (sqlite3_changes(db_.get()) > 0) return Status();
  }
  Statement* s = &(*shape)->statement;
  bind_all(s);
  Status applied = s->Run();
  s->Reset();
  return applied;
}

Result<std::optional<uint64_t>> Applier::RowHashOf(const RowChange& change) {
  Result<KeyPositions*> positions =
      key_positions_.Get(change, [this](const RowChange& c) { return MakeKeyPositions(c); });
  if (!positions.ok()) return positions.status();
  if (!(*positions)->known || change.values.size() != change.columns->size())
    return std::optional<uint64_t>();
  RowHasher hasher(change.table);
  for (size_t at : (*positions)->at) hasher.Add(change.values[at]);
  return std::optional<uint64_t>(hasher.hash());
}

Status Applier::MarkDeadLettersSuperseded(uint64_t hash, uint64_t seq) {
  // Equal rows have equal hashes; a collision (2^-64 per pair) would mark another row's dead letter
  // superseded: replay would then drop it instead of applying it, and say so.
  mark_superseded_.BindInt(1, static_cast<int64_t>(hash));
  mark_superseded_.BindInt(2, static_cast<int64_t>(seq));
  Status s = mark_superseded_.Run();
  mark_superseded_.Reset();
  if (s.ok()) dead_rows_marked_.push_back(hash);
  return s.WithContext("marking dead letters superseded in " + std::string(kDeadLetterTable));
}

Result<Applier::ReplayOutcome> Applier::ReplayDeadLetter(int64_t id) {
  const std::string what = "replaying dead letter " + std::to_string(id) + " in " + db_.path();
  Result<bool> forgot = ForgetCachesIfSchemaChanged();  // the cause may have been a schema change
  if (!forgot.ok()) return forgot.status().WithContext(what);
  Transaction txn(&db_);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext(what));
  forgot = ForgetCachesIfSchemaChanged();
  if (!forgot.ok()) return forgot.status().WithContext(what);
  Status cleared = clear_replace_notes_.Run();  // as in Apply
  clear_replace_notes_.Reset();
  MARMOT_RETURN_IF_ERROR(cleared.WithContext(what));
  Result<Statement> read =
      db_.Prepare("SELECT superseded_seq, change FROM " + QuoteIdent(kDeadLetterTable) + " WHERE id = ?1");
  if (!read.ok()) return read.status().WithContext(what);
  read->BindInt(1, id);
  Result<bool> found = read->Step();
  if (!found.ok()) return found.status().WithContext(what);
  if (!*found) return Status::NotFound("no dead letter with id " + std::to_string(id) + " in " + db_.path());
  ReplayOutcome outcome;
  bool superseded = !read->ColumnIsNull(0);
  int64_t superseded_seq = superseded ? read->ColumnInt(0) : 0;
  bool superseded_by_local_write = superseded && superseded_seq == 0;  // see DeadLetter
  std::string blob = read->ColumnIsNull(1) ? std::string() : std::string(read->ColumnBlob(1));
  read->Reset();
  auto remove = [&]() -> Status {
    return db_.Exec("DELETE FROM " + QuoteIdent(kDeadLetterTable) + " WHERE id = " + std::to_string(id));
  };
  if (superseded) {
    MARMOT_RETURN_IF_ERROR(remove().WithContext(what));
    MARMOT_RETURN_IF_ERROR(txn.Commit().WithContext(what));
    outcome.result = ReplayResult::kSuperseded;
    outcome.detail = superseded_by_local_write
                         ? "a newer local write to the row superseded it; dropped without applying"
                         : "a later change to the row arrived (stream message " +
                               std::to_string(superseded_seq) + "); dropped without applying";
    return outcome;
  }
  if (blob.empty()) {
    outcome.result = ReplayResult::kNotReplayable;
    outcome.detail =
        "no change was recorded (a message that could not be decoded, or a record from before replay "
        "existed)";
    return outcome;
  }
  Result<ChangeMessage> decoded = DecodeChangeMessage(blob);
  if (!decoded.ok() || decoded->changes.size() != 1) {
    outcome.result = ReplayResult::kNotReplayable;
    outcome.detail = "the recorded change cannot be decoded: " +
                     (decoded.ok() ? std::string("it holds no single change") : decoded.status().message());
    return outcome;
  }
  const RowChange& change = decoded->changes.front();
  std::span<const RowChange> one(&change, 1);
  // A local write to the row that the change log still holds is newer than this change.
  MARMOT_RETURN_IF_ERROR(ComputeRowKeys(one).WithContext(what));
  std::vector<char> local, none;
  MARMOT_RETURN_IF_ERROR(FindSupersededChanges(one, none, 0, &local).WithContext(what));
  if (!local.empty() && local[0]) {
    outcome.result = ReplayResult::kFailed;
    outcome.detail =
        "the row has local writes in the change log (newer than this change); replay again once "
        "they are published";
    return outcome;
  }
  Status applied = RunChange(change);
  if (!applied.ok()) {
    if (sqlite3_get_autocommit(db_.get())) return applied.WithContext(what + " (rolled back)");
    outcome.result = ReplayResult::kFailed;
    outcome.detail = applied.message();
    return outcome;  // the transaction rolls back: the record stays
  }
  MARMOT_RETURN_IF_ERROR(remove().WithContext(what));
  MARMOT_RETURN_IF_ERROR(txn.Commit().WithContext(what));
  outcome.result = ReplayResult::kApplied;
  return outcome;
}

void Applier::DeadLetterMessage(const StreamPosition& position, const std::string& reason) {
  ++dead_lettered_total_;
  queued_messages_.push_back(QueuedMessage{position, reason.substr(0, kMaxDeadLetterReason)});
}

void Applier::RecordGap(const std::string& stream, uint64_t first, uint64_t last, const std::string& reason) {
  queued_gaps_.push_back(QueuedGap{stream, first, last, reason.substr(0, kMaxDeadLetterReason)});
}

Status Applier::WriteQueuedRecords() {
  for (const QueuedMessage& m : queued_messages_) {
    dead_letter_.BindText(1, m.position.stream);
    dead_letter_.BindInt(2, static_cast<int64_t>(m.position.seq));
    dead_letter_.BindText(3, "");
    dead_letter_.BindText(4, "undecodable message");
    dead_letter_.BindText(5, m.reason);
    dead_letter_.BindText(6, "");
    Status s = dead_letter_.Run();
    dead_letter_.Reset();
    MARMOT_RETURN_IF_ERROR(s.WithContext("writing to " + std::string(kDeadLetterTable)));
  }
  if (queued_gaps_.empty()) return Status();
  Result<Statement> insert =
      db_.Prepare("INSERT INTO " + QuoteIdent(kGapsTable) +
                  "(stream, first_missing, last_missing, reason) VALUES (?1, ?2, ?3, ?4)");
  if (!insert.ok()) return insert.status().WithContext("recording a gap");
  for (const QueuedGap& g : queued_gaps_) {
    insert->BindText(1, g.stream);
    insert->BindInt(2, static_cast<int64_t>(g.first));
    if (g.last == 0) {
      insert->BindNull(3);
    } else {
      insert->BindInt(3, static_cast<int64_t>(g.last));
    }
    insert->BindText(4, g.reason);
    Status s = insert->Run();
    insert->Reset();
    MARMOT_RETURN_IF_ERROR(s.WithContext("recording a gap in stream " + g.stream));
  }
  return Status();
}

Status Applier::WritePosition(const StreamPosition& position) {
  save_position_.BindText(1, position.stream);
  save_position_.BindInt(2, static_cast<int64_t>(position.seq));
  save_position_.BindInt(3, position.created_ns);
  if (position.msg_hash != 0)
    save_position_.BindInt(4, position.msg_hash);
  else
    save_position_.BindNull(4);
  Status s = save_position_.Run();
  save_position_.Reset();
  return s.WithContext("storing position of stream " + position.stream);
}

Result<uint64_t> Applier::LoadPosition(const std::string& stream) {
  Result<StreamPosition> position = LoadStreamPosition(stream);
  if (!position.ok()) return position.status();
  return position->seq;
}

Result<StreamPosition> ReadStreamPosition(Database& db, const std::string& stream) {
  Result<Statement> stmt = db.Prepare("SELECT seq, ifnull(stream_created, 0), ifnull(msg_hash, 0) FROM " +
                                      QuoteIdent(kPositionsTable) + " WHERE stream = ?1");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, stream);
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status().WithContext("reading position of stream " + stream);
  StreamPosition position{stream, 0, 0};
  if (*row) {
    position.seq = static_cast<uint64_t>(stmt->ColumnInt(0));
    position.created_ns = stmt->ColumnInt(1);
    position.msg_hash = stmt->ColumnInt(2);
  }
  return position;
}

Result<StreamPosition> Applier::LoadStreamPosition(const std::string& stream) {
  return ReadStreamPosition(db_, stream);
}

Status Applier::SavePosition(const StreamPosition& position) {
  std::string what = "storing position of stream " + position.stream;
  Transaction txn(&db_);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext(what));
  MARMOT_RETURN_IF_ERROR(WriteQueuedRecords());
  MARMOT_RETURN_IF_ERROR(WritePosition(position));
  MARMOT_RETURN_IF_ERROR(txn.Commit().WithContext(what));
  queued_gaps_.clear();
  queued_messages_.clear();
  return Status();
}

}  // namespace marmot
