#include "db/schema_applier.h"

#include <spdlog/spdlog.h>

#include "db/capture.h"
#include "db/marmot_tables.h"
#include "db/schema.h"
#include "db/schema_objects.h"
#include "db/schema_reconcile.h"

namespace marmot {
namespace {

constexpr char kPublishedSeqKey[] = "schema_published_seq";
constexpr char kAppliedSeqKey[] = "schema_applied_seq";
// How often a schema that stays different from the cluster's is reported again at error level.
constexpr std::chrono::minutes kRepeatNotesAfter{10};

Result<int64_t> StateInt(Database& db, const char* key) {
  return db.QueryInt("SELECT ifnull((SELECT value FROM " + QuoteIdent(kStateTable) + " WHERE name = '" + key +
                     "'), 0)");
}

std::string Describe(const std::optional<std::string>& sql) { return sql ? *sql : std::string("(none)"); }

}  // namespace

Result<bool> OwnSchemaChangeInFlight(Database& db) {
  Transaction read(&db);
  MARMOT_RETURN_IF_ERROR(read.Begin(/*immediate=*/false));
  Result<int64_t> published = StateInt(db, kPublishedSeqKey);
  if (!published.ok()) return published.status();
  Result<int64_t> applied = StateInt(db, kAppliedSeqKey);
  if (!applied.ok()) return applied.status();
  if (*published > *applied) return true;
  Result<bool> recorded = HasSchemaRecord(db, kLocalRecord);
  if (!recorded.ok()) return recorded.status();
  if (!*recorded) return false;
  Result<SchemaObjects> local = LoadSchemaRecord(db, kLocalRecord);
  if (!local.ok()) return local.status();
  Result<SchemaObjects> live = ReadLiveSchema(db);
  if (!live.ok()) return live.status();
  return *live != *local;
}

Status InitSchemaRecords(Database& db) {
  MARMOT_RETURN_IF_ERROR(EnsureMarmotTables(db, 1));
  Result<bool> has = HasSchemaRecord(db, kCanonRecord);
  if (!has.ok()) return has.status();
  if (*has) return Status();
  Result<SchemaObjects> live = ReadLiveSchema(db);
  if (!live.ok()) return live.status();
  MARMOT_RETURN_IF_ERROR(StoreSchemaRecord(db, kLocalRecord, *live));
  return StoreSchemaRecord(db, kCanonRecord, *live);
}

Result<std::unique_ptr<SchemaApplier>> SchemaApplier::Open(const std::string& db_path, bool publishing) {
  Database::Options options;
  options.poll_for_locks = true;
  Result<Database> db = Database::Open(db_path, options);
  if (!db.ok()) return db.status();
  MARMOT_RETURN_IF_ERROR(db->DisableTriggersAndForeignKeys());
  Transaction txn(&*db);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext("opening the schema applier"));
  MARMOT_RETURN_IF_ERROR(InitSchemaRecords(*db).WithContext("recording the schema of " + db_path));
  MARMOT_RETURN_IF_ERROR(txn.Commit());
  std::unique_ptr<SchemaApplier> applier(new SchemaApplier(std::move(*db), publishing));
  return applier;
}

Status SchemaApplier::Apply(const SchemaChange& change, const StreamPosition& position) {
  std::string what =
      "applying schema message " + std::to_string(position.seq) + " of stream " + position.stream;
  Transaction txn(&db_);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext(what));
  Result<SchemaObjects> canon = LoadSchemaRecord(db_, kCanonRecord);
  if (!canon.ok()) return canon.status().WithContext(what);
  Result<TableSelection> selection = LoadTableSelection(db_);
  if (!selection.ok()) return selection.status().WithContext(what);
  Result<Statement> seen =
      db_.Prepare("SELECT count(*) FROM " + QuoteIdent(kSchemaSeenTable) + " WHERE transition = ?1");
  Result<Statement> mark =
      db_.Prepare("INSERT OR IGNORE INTO " + QuoteIdent(kSchemaSeenTable) + " VALUES (?1)");
  if (!seen.ok()) return seen.status().WithContext(what);
  if (!mark.ok()) return mark.status().WithContext(what);
  bool changed = false;
  for (const ObjectTransition& t : change.objects) {
    if (!selection->Selects(t.tbl_name)) continue;  // excluded tables are never touched
    std::string key = ObjectKey(t.name);
    auto found = canon->find(key);
    std::optional<std::string> current;
    if (found != canon->end()) current = found->second.sql;
    std::string transition = t.Key();
    seen->BindText(1, transition);
    Result<bool> row = seen->Step();
    bool taken = row.ok() && *row && seen->ColumnInt(0) > 0;
    seen->Reset();
    if (!row.ok()) return row.status().WithContext(what);
    if (current == t.after) {
      // Already in place.
    } else if (current != t.before && taken) {
      spdlog::info("schema: {} {} from node {}: a late copy of a change already made, skipped", t.type,
                   QuoteIdent(t.name), change.origin_node);
      continue;
    } else {
      if (current != t.before) {
        spdlog::error(
            "schema: node {} changed {} {} from a definition that is not the cluster's; the later change "
            "wins on every node. Replaced: {} With: {}",
            change.origin_node, t.type, QuoteIdent(t.name), Describe(current), Describe(t.after));
      }
      if (t.after) {
        (*canon)[key] = SchemaObject{t.type, t.name, t.tbl_name, *t.after};
      } else {
        canon->erase(key);
      }
      changed = true;
    }
    mark->BindText(1, transition);
    Status s = mark->Run();
    mark->Reset();
    MARMOT_RETURN_IF_ERROR(s.WithContext(what));
  }
  if (changed) {
    MARMOT_RETURN_IF_ERROR(StoreSchemaRecord(db_, kCanonRecord, *canon).WithContext(what));
    MARMOT_RETURN_IF_ERROR(RecordRenames(db_, change).WithContext(what));
    Result<Statement> rename =
        db_.Prepare("INSERT INTO " + QuoteIdent(kSchemaRenamesTable) +
                    " (tbl, old_name, new_name, column_rename) VALUES (?1, ?2, ?3, ?4)");
    if (!rename.ok()) return rename.status().WithContext(what);
    for (const SchemaRename& r : change.renames) {
      rename->BindText(1, r.table);
      rename->BindText(2, r.from);
      rename->BindText(3, r.to);
      rename->BindInt(4, r.column ? 1 : 0);
      MARMOT_RETURN_IF_ERROR(rename->Run().WithContext(what));
      rename->Reset();
    }
  }
  MARMOT_RETURN_IF_ERROR(CatchUp(position.seq).WithContext(what));
  MARMOT_RETURN_IF_ERROR(WritePosition(position).WithContext(what));
  MARMOT_RETURN_IF_ERROR(txn.Commit().WithContext(what));
  applied_seq_ = position.seq;
  return Status();
}

Status SchemaApplier::CatchUp(uint64_t applied_seq) {
  Result<int64_t> published = StateInt(db_, kPublishedSeqKey);
  if (!published.ok()) return published.status();
  Result<SchemaObjects> local = LoadSchemaRecord(db_, kLocalRecord);
  if (!local.ok()) return local.status();
  Result<SchemaObjects> live = ReadLiveSchema(db_);
  if (!live.ok()) return live.status();
  if (publishing_ && (static_cast<uint64_t>(*published) > applied_seq || *live != *local)) {
    // This node's own schema change is not back from the stream yet (or not even published).
    settled_ = false;
    return Status();
  }
  Result<SchemaObjects> canon = LoadSchemaRecord(db_, kCanonRecord);
  if (!canon.ok()) return canon.status();
  if (*live == *canon) {
    if (!reported_notes_.empty()) spdlog::info("schema: this node's schema now equals the cluster's");
    reported_notes_.clear();
    settled_ = true;
    return db_.Exec("DELETE FROM " + QuoteIdent(kSchemaRenamesTable));
  }
  std::vector<SchemaRename> renames;
  Result<Statement> read = db_.Prepare("SELECT tbl, old_name, new_name, column_rename FROM " +
                                       QuoteIdent(kSchemaRenamesTable) + " ORDER BY id");
  if (!read.ok()) return read.status();
  while (true) {
    Result<bool> row = read->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    renames.push_back(
        {read->ColumnText(0), read->ColumnText(1), read->ColumnText(2), read->ColumnInt(3) != 0});
  }
  Result<std::vector<std::string>> notes = ReconcileSchema(db_, *canon, renames);
  if (!notes.ok()) return notes.status();
  std::string joined;
  for (const std::string& note : *notes) joined += note + "\n";
  const auto now = std::chrono::steady_clock::now();
  const bool report = joined != reported_notes_ || now - notes_reported_at_ >= kRepeatNotesAfter;
  for (const std::string& note : *notes) {
    if (report) {
      spdlog::error("schema: this node's schema differs from the cluster's: {}", note);
    } else {
      spdlog::debug("schema: this node's schema still differs from the cluster's: {}", note);
    }
  }
  if (report) notes_reported_at_ = now;
  if (notes->empty() && !reported_notes_.empty())
    spdlog::info("schema: this node's schema now equals the cluster's");
  reported_notes_ = std::move(joined);
  settled_ = notes->empty();
  Result<std::vector<TableSchema>> tables = ReadSchema(db_);
  if (!tables.ok()) return tables.status();
  MARMOT_RETURN_IF_ERROR(InstallCaptureInTransaction(db_, *tables, /*log_rows_of_new_tables=*/false));
  live = ReadLiveSchema(db_);
  if (!live.ok()) return live.status();
  MARMOT_RETURN_IF_ERROR(StoreSchemaRecord(db_, kLocalRecord, *live));
  // Renames the installation just followed were the cluster's (the live schema is the local record
  // now): nothing of this node's to publish (capture.h).
  MARMOT_RETURN_IF_ERROR(ForgetUnpublishedTableRenames(db_));
  if (report || notes->empty())
    spdlog::info("schema: applied the cluster's schema changes to {}", db_.path());
  return db_.Exec("DELETE FROM " + QuoteIdent(kSchemaRenamesTable));
}

Status SchemaApplier::Skip(const StreamPosition& position, const std::string& reason) {
  const std::string what = "recording undecodable schema message " + std::to_string(position.seq);
  Transaction txn(&db_);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext(what));
  Result<Statement> insert = db_.Prepare("INSERT INTO " + QuoteIdent(kDeadLetterTable) +
                                         " (stream, stream_seq, tbl, op, reason, statement) "
                                         "VALUES (?1, ?2, '', 'undecodable schema message', ?3, '')");
  if (!insert.ok()) return insert.status().WithContext(what);
  insert->BindText(1, position.stream);
  insert->BindInt(2, static_cast<int64_t>(position.seq));
  insert->BindText(3, reason);
  MARMOT_RETURN_IF_ERROR(insert->Run().WithContext(what));
  MARMOT_RETURN_IF_ERROR(WritePosition(position));
  MARMOT_RETURN_IF_ERROR(txn.Commit().WithContext(what));
  applied_seq_ = position.seq;
  return Status();
}

Status SchemaApplier::Retry() {
  if (settled_.load()) return Status();
  Transaction txn(&db_);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true).WithContext("catching up with the cluster's schema"));
  MARMOT_RETURN_IF_ERROR(CatchUp(applied_seq_).WithContext("catching up with the cluster's schema"));
  return txn.Commit();
}

Status SchemaApplier::WritePosition(const StreamPosition& position) {
  MARMOT_RETURN_IF_ERROR(db_.Exec("INSERT OR REPLACE INTO " + QuoteIdent(kStateTable) +
                                  " (name, value) VALUES ('" + kAppliedSeqKey + "', " +
                                  std::to_string(position.seq) + ")"));
  Result<Statement> stmt = db_.Prepare("INSERT OR REPLACE INTO " + QuoteIdent(kPositionsTable) +
                                       " (stream, seq, stream_created) VALUES (?1, ?2, ?3)");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, position.stream);
  stmt->BindInt(2, static_cast<int64_t>(position.seq));
  stmt->BindInt(3, position.created_ns);
  return stmt->Run().WithContext("storing the position of stream " + position.stream);
}

Result<StreamPosition> SchemaApplier::LoadPosition(const std::string& stream) {
  Result<StreamPosition> position = ReadStreamPosition(db_, stream);
  if (position.ok()) applied_seq_ = position->seq;
  return position;
}

}  // namespace marmot
