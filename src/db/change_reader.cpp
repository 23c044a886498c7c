#include "db/change_reader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "codec/schema_message.h"
#include "db/capture.h"
#include "db/marmot_tables.h"
#include "db/schema_applier.h"
#include "db/schema_objects.h"

namespace marmot {

Result<std::unique_ptr<ChangeReader>> ChangeReader::Open(const std::string& db_path,
                                                         int64_t installed_schema) {
  Database::Options options;
  options.poll_for_locks = true;
  Result<Database> db = Database::Open(db_path, options);
  if (!db.ok()) return db.status();
  std::unique_ptr<ChangeReader> reader(new ChangeReader(std::move(*db)));
  std::string what = "opening change reader on " + db_path;
  Result<Statement> version = reader->db_.Prepare("PRAGMA schema_version");
  if (!version.ok()) return version.status().WithContext(what);
  reader->schema_version_ = std::move(*version);
  // A table created or renamed since capture was installed (the node connects to NATS in between)
  // changed the cookie: the first read installs capture again.
  reader->known_schema_version_ = installed_schema;
  MARMOT_RETURN_IF_ERROR(reader->PrepareLogRead().WithContext(what));
  MARMOT_RETURN_IF_ERROR(reader->LoadTables().WithContext(what));
  Result<PublishState> state = LoadPublishState(reader->db_);
  if (!state.ok()) return state.status().WithContext(what);
  reader->state_ = reader->persisted_state_ = *state;
  reader->cursor_ = state->confirmed_seq;
  return reader;
}

Result<int64_t> ChangeReader::SchemaVersion() {
  Result<bool> row = schema_version_.Step();
  int64_t version = row.ok() && *row ? schema_version_.ColumnInt(0) : -1;
  schema_version_.Reset();
  if (!row.ok()) return row.status().WithContext("reading the schema cookie");
  return version;
}

Result<bool> ChangeReader::RefreshIfSchemaChanged() {
  Result<int64_t> version = SchemaVersion();
  if (!version.ok()) return version.status();
  if (*version == known_schema_version_ && (schema_compared_ || !publish_schema_)) return false;
  if (*version == known_schema_version_) {
    // The first read: a schema change made while marmot was stopped goes out now (capture was
    // installed at start, so a table renamed meanwhile shows as dropped and created).
    MARMOT_RETURN_IF_ERROR(PublishSchemaChange().WithContext("publishing a schema change of " + db_.path()));
    schema_compared_ = true;
    return false;
  }
  spdlog::info("the schema of {} changed; re-installing capture", db_.path());
  tables_.clear();
  key_columns_.clear();
  {
    // Schema read and capture installed in one transaction: a table renamed or dropped in between
    // would make the installation fail.
    Transaction txn(&db_);
    MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext("re-installing capture"));
    Result<std::vector<TableSchema>> tables = ReadSchema(db_);
    if (!tables.ok()) return tables.status().WithContext("re-reading the schema");
    MARMOT_RETURN_IF_ERROR(InstallCaptureInTransaction(db_, *tables, /*log_rows_of_new_tables=*/true)
                               .WithContext("re-installing capture"));
    MARMOT_RETURN_IF_ERROR(txn.Commit().WithContext("re-installing capture"));
    spdlog::info("capture installed on {} table(s) of {}", tables->size(), db_.path());
  }
  // The installation changed the schema itself (triggers): remember the cookie after it.
  version = SchemaVersion();
  if (!version.ok()) return version.status();
  known_schema_version_ = *version;
  // Compared after the cookie was taken: a change committed later moves the cookie again, so it is
  // published by a later call, and never read past. Published before any row is read under it.
  if (publish_schema_) {
    MARMOT_RETURN_IF_ERROR(PublishSchemaChange().WithContext("publishing a schema change of " + db_.path()));
    schema_compared_ = true;
  }
  MARMOT_RETURN_IF_ERROR(PrepareLogRead().WithContext("re-reading the change log's columns"));
  MARMOT_RETURN_IF_ERROR(LoadTables().WithContext("re-reading captured tables"));
  return true;
}

Status ChangeReader::PublishSchemaChange() {
  Result<bool> recorded = HasSchemaRecord(db_, kLocalRecord);
  if (!recorded.ok()) return recorded.status();
  if (!*recorded) {
    // No record yet (a restored snapshot carries none): the live schema is the starting point.
    Transaction txn(&db_);
    MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true));
    MARMOT_RETURN_IF_ERROR(InitSchemaRecords(db_));
    MARMOT_RETURN_IF_ERROR(ForgetUnpublishedTableRenames(db_));
    return txn.Commit();
  }
  Result<SchemaObjects> local = LoadSchemaRecord(db_, kLocalRecord);
  if (!local.ok()) return local.status();
  Result<SchemaObjects> live = ReadLiveSchema(db_);
  if (!live.ok()) return live.status();
  if (*live == *local) return ForgetUnpublishedTableRenames(db_);
  // The renames found when capture was installed, since the last publish (capture.h).
  Result<std::vector<std::pair<std::string, std::string>>> renamed = UnpublishedTableRenames(db_);
  if (!renamed.ok()) return renamed.status();
  SchemaChange change = DiffSchemas(*local, *live, *renamed);
  change.origin_node = node_id_;
  for (const ObjectTransition& t : change.objects) {
    spdlog::info("schema: publishing {} {} ({})", t.type, QuoteIdent(t.name),
                 !t.before  ? "new"
                 : !t.after ? "dropped"
                            : "changed");
  }
  std::string reused;  // table renames onto names that stay or were taken: the others cannot repeat them
  for (const SchemaRename& r : change.renames) {
    if (!r.column && (local->count(ObjectKey(r.to)) > 0 || live->count(ObjectKey(r.from)) > 0))
      reused += (reused.empty() ? "" : ", ") + QuoteIdent(r.from) + " -> " + QuoteIdent(r.to);
  }
  if (!reused.empty()) {
    spdlog::error(
        "schema: tables were renamed onto each other's names ({}) where marmot could not follow them one "
        "by one (a swap or a chain, while marmot was stopped or NATS away): the other nodes cannot repeat "
        "that and keep the rows under the old names. Run `marmot verify`, then `marmot verify -repair "
        "-from {}`",
        reused, node_id_);
  }
  for (const SchemaRename& r : change.renames) {
    spdlog::info("schema: publishing the rename of {} {} to {}", r.column ? "column" : "table",
                 r.column ? QuoteIdent(r.table) + "." + QuoteIdent(r.from) : QuoteIdent(r.from),
                 QuoteIdent(r.to));
  }
  Result<uint64_t> seq = publish_schema_(EncodeSchemaChange(change));
  if (!seq.ok()) return seq.status();
  Transaction txn(&db_);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true));
  MARMOT_RETURN_IF_ERROR(StoreSchemaRecord(db_, kLocalRecord, *live));
  MARMOT_RETURN_IF_ERROR(RecordRenames(db_, change));
  MARMOT_RETURN_IF_ERROR(ForgetUnpublishedTableRenames(db_));
  MARMOT_RETURN_IF_ERROR(db_.Exec("INSERT OR REPLACE INTO " + QuoteIdent(kStateTable) +
                                  " (name, value) VALUES ('schema_published_seq', max(" +
                                  std::to_string(*seq) + ", ifnull((SELECT value FROM " +
                                  QuoteIdent(kStateTable) + " WHERE name = 'schema_published_seq'), 0)))"));
  return txn.Commit();
}

Status ChangeReader::PrepareLogRead() {
  Result<int> width = ChangeLogKeyColumns(db_);
  if (!width.ok()) return width.status();
  if (*width == 0) return Status::NotFound("change log is missing: capture is not installed");
  key_width_ = *width;
  std::string sql = "SELECT seq, tbl";
  for (int k = 1; k <= key_width_; ++k) sql += ", k" + std::to_string(k);
  sql += " FROM " + QuoteIdent(kChangeLogTable) + " WHERE seq > ?1 AND seq <= ?3 ORDER BY seq LIMIT ?2";
  Result<Statement> stmt = db_.Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  read_log_ = std::move(*stmt);
  Result<Statement> any =
      db_.Prepare("SELECT 1 FROM " + QuoteIdent(kChangeLogTable) + " WHERE seq > ?1 LIMIT 1");
  if (!any.ok()) return any.status();
  any_unread_ = std::move(*any);
  return Status();
}

Status ChangeReader::LoadTables() {
  Result<Statement> stmt = db_.Prepare(std::string("SELECT id, name FROM ") + QuoteIdent(kTablesTable));
  if (!stmt.ok()) return stmt.status();
  table_names_.clear();
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    table_names_[stmt->ColumnInt(0)] = stmt->ColumnText(1);
  }
  return Status();
}

Result<ChangeReader::TableReader*> ChangeReader::Table(int64_t id) {
  auto found = tables_.find(id);
  if (found != tables_.end()) return found->second.get();
  if (!table_names_.count(id)) MARMOT_RETURN_IF_ERROR(LoadTables());
  auto name = table_names_.find(id);
  if (name == table_names_.end()) return static_cast<TableReader*>(nullptr);
  Result<std::optional<TableSchema>> schema = ReadTableSchema(db_, name->second);
  if (!schema.ok()) return schema.status();
  if (!*schema) return static_cast<TableReader*>(nullptr);  // dropped since it was logged

  auto table = std::make_unique<TableReader>();
  table->schema = std::move(**schema);
  auto stored = std::make_shared<std::vector<std::string>>(table->schema.StoredColumns());
  auto keys = std::make_shared<std::vector<std::string>>(table->schema.KeyColumns());
  Result<Statement> lookup = db_.Prepare(SelectRowByKeySql(table->schema));
  if (!lookup.ok()) return lookup.status().WithContext("reading rows of table " + QuoteIdent(name->second));
  table->lookup = std::move(*lookup);
  table->stored_columns = std::move(stored);
  table->key_columns = std::move(keys);
  TableReader* raw = table.get();
  tables_[id] = std::move(table);
  return raw;
}

Result<bool> ChangeReader::DatabaseChanged() {
  Result<int64_t> version = db_.QueryInt("PRAGMA data_version");
  if (!version.ok()) return version.status();
  bool changed = *version != data_version_;
  data_version_ = *version;
  return changed;
}

Result<ChangeBatch> ChangeReader::ReadBatch(size_t max_entries) {
  ChangeBatch batch;
  MARMOT_RETURN_IF_ERROR(ReadBatch(max_entries, &batch));
  return batch;
}

Status ChangeReader::ReadBatch(size_t max_entries, ChangeBatch* batch) {
  batch->Clear();
  Result<bool> refreshed = RefreshIfSchemaChanged();
  if (!refreshed.ok()) return refreshed.status();
  // Most wakes on a node that mostly applies come from the applier's own commits: answer those
  // with one indexed lookup instead of a read transaction.
  any_unread_.BindInt(1, static_cast<int64_t>(cursor_));
  Result<bool> any = any_unread_.Step();
  any_unread_.Reset();
  if (!any.ok()) return any.status().WithContext("reading change log");
  if (!*any) return Status();
  MARMOT_RETURN_IF_ERROR(ReadEntries(cursor_, UINT64_MAX >> 1, max_entries, batch));
  if (batch->entries > 0) cursor_ = batch->last_seq;
  return Status();
}

Status ChangeReader::ReadRange(uint64_t first, uint64_t last, ChangeBatch* batch) {
  batch->Clear();
  Result<bool> refreshed = RefreshIfSchemaChanged();
  if (!refreshed.ok()) return refreshed.status();
  if (last < first) return Status();
  return ReadEntries(first - 1, last, last - first + 1, batch);
}

void ChangeReader::SkipTo(uint64_t seq) {
  if (seq > cursor_) cursor_ = seq;
}

Result<uint64_t> ChangeReader::LastLoggedSeq() {
  Result<int64_t> newest = db_.QueryInt("SELECT max(seq) FROM " + QuoteIdent(kChangeLogTable));
  if (!newest.ok()) return newest.status().WithContext("reading the change log's newest entry");
  return static_cast<uint64_t>(*newest);
}

Status ChangeReader::ReadEntries(uint64_t after, uint64_t upto, size_t max_entries, ChangeBatch* batch) {
  Transaction read_txn(&db_);
  MARMOT_RETURN_IF_ERROR(read_txn.Begin(/*immediate=*/false).WithContext("reading change log"));
  // The schema cannot change under a read transaction, but it may have changed since the check
  // before it: then read with the new schema.
  Result<int64_t> version = SchemaVersion();
  if (!version.ok()) return version.status();
  if (*version != known_schema_version_) {
    MARMOT_RETURN_IF_ERROR(read_txn.Commit());
    Result<bool> refreshed = RefreshIfSchemaChanged();
    if (!refreshed.ok()) return refreshed.status();
    return ReadEntries(after, upto, max_entries, batch);
  }

  size_t dropped = 0;  // entries of tables that no longer exist
  // 1. The log entries, oldest first.
  entries_.clear();
  keys_used_ = 0;
  read_log_.BindInt(1, static_cast<int64_t>(after));
  read_log_.BindInt(2, static_cast<int64_t>(max_entries));
  read_log_.BindInt(3, static_cast<int64_t>(upto));
  while (true) {
    Result<bool> row = read_log_.Step();
    if (!row.ok()) {
      read_log_.Reset();
      return row.status().WithContext("reading change log");
    }
    if (!*row) break;
    uint64_t seq = static_cast<uint64_t>(read_log_.ColumnInt(0));
    if (batch->entries++ == 0) batch->first_seq = seq;
    batch->last_seq = seq;
    int64_t table_id = read_log_.ColumnInt(1);
    Result<TableReader*> table = Table(table_id);
    if (!table.ok()) {
      read_log_.Reset();
      return table.status();
    }
    if (*table == nullptr) {  // the table was dropped: nothing left here to replicate
      ++dropped;
      continue;
    }
    Entry entry{table_id, *table, keys_used_, 0};
    size_t width = (*table)->key_columns->size();
    if (keys_.size() < keys_used_ + width) keys_.resize(keys_used_ + width);
    RowHasher hasher(entry.table->schema.name);
    for (size_t k = 0; k < width; ++k) {
      Value& key = keys_[keys_used_++];
      read_log_.ReadColumn(2 + static_cast<int>(k), &key);
      hasher.Add(key);
    }
    entry.row_hash = hasher.hash();
    entries_.push_back(entry);
  }
  read_log_.Reset();

  // 2. Only the last entry of each row matters: it will read the row's newest state.
  MarkLastEntryOfEachRow();

  // 3. The current values of each row: present -> upsert, gone -> delete.
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (!keep_[i]) continue;
    const Entry& entry = entries_[i];
    TableReader* table = entry.table;
    size_t width = table->key_columns->size();
    for (size_t k = 0; k < width; ++k)
      table->lookup.BindUncopied(static_cast<int>(k + 1), keys_[entry.key_begin + k]);
    Result<bool> found = table->lookup.Step();
    if (!found.ok()) {
      table->lookup.Reset();
      return found.status().WithContext("reading row of table " + QuoteIdent(table->schema.name));
    }
    RowChange& change = batch->changes.Append();
    change.table = table->schema.name;
    change.row_hash = entry.row_hash;
    if (*found) {
      change.op = RowChange::Op::kUpsert;
      change.columns = table->stored_columns;
      change.values.resize(table->stored_columns->size());
      for (size_t c = 0; c < change.values.size(); ++c) {
        table->lookup.ReadColumn(static_cast<int>(c), &change.values[c]);
      }
    } else {
      change.op = RowChange::Op::kDelete;
      change.columns = table->key_columns;
      change.values.resize(width);
      for (size_t k = 0; k < width; ++k) change.values[k] = keys_[entry.key_begin + k];
    }
    table->lookup.Reset();
  }
  if (dropped > 0) {
    spdlog::warn(
        "{} change-log entr{} of table(s) dropped here since were skipped (the drop reaches the other "
        "nodes as a schema change)",
        dropped, dropped == 1 ? "y" : "ies");
  }
  return read_txn.Commit().WithContext("reading change log");
}

bool ChangeReader::SameRow(const Entry& a, const Entry& b) const {
  if (a.table_id != b.table_id) return false;
  size_t width = a.table->key_columns->size();
  for (size_t k = 0; k < width; ++k) {
    if (!(keys_[a.key_begin + k] == keys_[b.key_begin + k])) return false;
  }
  return true;
}

void ChangeReader::MarkLastEntryOfEachRow() {
  size_t n = entries_.size();
  keep_.assign(n, 1);
  // Entries of one row have the same hash: sort by (hash, position) and look within equal hashes.
  order_.resize(n);
  for (size_t i = 0; i < n; ++i) order_[i] = static_cast<uint32_t>(i);
  std::sort(order_.begin(), order_.end(), [this](uint32_t a, uint32_t b) {
    const Entry& x = entries_[a];
    const Entry& y = entries_[b];
    return x.row_hash != y.row_hash ? x.row_hash < y.row_hash : a < b;
  });
  for (size_t g = 0; g < n;) {
    size_t end = g + 1;
    while (end < n && entries_[order_[end]].row_hash == entries_[order_[g]].row_hash) ++end;
    // A group is almost always one entry; otherwise it is mostly one row written several times.
    for (size_t i = g; i + 1 < end; ++i) {
      for (size_t j = i + 1; j < end && keep_[order_[i]]; ++j) {
        if (SameRow(entries_[order_[i]], entries_[order_[j]])) keep_[order_[i]] = 0;
      }
    }
    g = end;
  }
}

void ChangeReader::Confirm(uint64_t seq, const std::map<std::string, uint64_t>& acked) {
  if (seq > state_.confirmed_seq) state_.confirmed_seq = seq;
  if (hold_) hold_->SetConfirmed(state_.confirmed_seq, acked);
  // The newest round's acks are the bound for what follows (also after a stream was created
  // again, when they are lower than before).
  for (const auto& [stream, at] : acked) state_.acked_seq[stream] = at;
}

Status ChangeReader::PersistPublishState() {
  if (state_ == persisted_state_) return Status();
  Transaction txn(&db_);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext("saving publish state"));
  MARMOT_RETURN_IF_ERROR(SavePublishState(db_, state_));
  MARMOT_RETURN_IF_ERROR(txn.Commit().WithContext("saving publish state"));
  persisted_state_ = state_;
  return Status();
}

Result<size_t> ChangeReader::DeleteConfirmed() {
  if (state_ == persisted_state_ && deleted_upto_ >= state_.confirmed_seq) return size_t{0};
  const uint64_t limit = hold_ ? hold_->DeletableUpTo(state_.confirmed_seq) : state_.confirmed_seq;
  Transaction txn(&db_);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext("deleting confirmed change-log entries"));
  std::string log = QuoteIdent(kChangeLogTable);
  // Keep the newest row: seq is max(seq)+1 for new rows, so deleting it would let a seq repeat.
  Result<Statement> del =
      db_.Prepare("DELETE FROM " + log + " WHERE seq <= ?1 AND seq < (SELECT max(seq) FROM " + log + ")");
  if (!del.ok()) return del.status();
  del->BindInt(1, static_cast<int64_t>(limit));
  MARMOT_RETURN_IF_ERROR(del->Run().WithContext("deleting confirmed change-log entries"));
  size_t deleted = static_cast<size_t>(sqlite3_changes(db_.get()));
  MARMOT_RETURN_IF_ERROR(SavePublishState(db_, state_));
  MARMOT_RETURN_IF_ERROR(txn.Commit().WithContext("deleting confirmed change-log entries"));
  persisted_state_ = state_;
  deleted_upto_ = limit;
  return deleted;
}

Result<std::optional<std::string>> ChangeReader::RowIdentity(const RowChange& change) {
  auto keys = key_columns_.find(change.table);
  if (keys == key_columns_.end()) {
    Result<std::optional<TableSchema>> schema = ReadTableSchema(db_, change.table);
    if (!schema.ok()) return schema.status();
    std::vector<std::string> names;
    if (*schema) names = (*schema)->KeyColumns();
    keys = key_columns_.emplace(change.table, std::move(names)).first;
  }
  if (keys->second.empty()) return std::optional<std::string>();
  std::string id = change.table;
  id.push_back('\0');
  for (const std::string& key : keys->second) {
    auto at = std::find(change.columns->begin(), change.columns->end(), key);
    if (at == change.columns->end() || change.values.size() != change.columns->size()) {
      return std::optional<std::string>();
    }
    AppendKeyBytes(change.values[static_cast<size_t>(at - change.columns->begin())], &id);
  }
  return std::optional<std::string>(std::move(id));
}

Result<int64_t> ChangeReader::PendingEntries() {
  return db_.QueryInt("SELECT count(*) FROM " + QuoteIdent(kChangeLogTable) + " WHERE seq > " +
                      std::to_string(state_.confirmed_seq));
}

}  // namespace marmot
