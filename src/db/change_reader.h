// ChangeReader: turns __marmot__change_log entries into RowChanges, oldest first.
//
// Capture logs only the key of a changed row. The reader reads up to N log entries after its
// cursor and, in the same read transaction, the current values of each logged row: a row that
// exists becomes an upsert of all its stored columns, a row that is gone becomes a delete of its
// key. Several entries for one row within a batch collapse into one change at the position of
// the last entry, which is exactly the row's newest state (docs/CAPTURE.md explains why this is
// equivalent to shipping every intermediate version under last-writer-wins).
//
// Schema changes: before each read the reader compares SQLite's schema cookie with the one it
// last saw. When the application changed the schema (ALTER, CREATE, DROP, RENAME), it re-installs
// capture (new tables get triggers, a renamed table keeps its id) and forgets every cached column
// list and statement, so a row is never read with the columns of another schema.
//
// Entries are confirmed (Confirm) once JetStream acknowledged them, and deleted later by
// DeleteConfirmed, which the owner calls every cleanup_interval and which also persists the
// publish state (db/publish_state.h). The newest entry is always kept so that sequence numbers
// are never reused. With a ChangeLogHold set, DeleteConfirmed keeps the entries it holds for
// `marmot verify` (db/change_log_hold.h).
//
// REQUIRES: external synchronization (one thread uses a reader).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "db/change_log_hold.h"
#include "db/change_source.h"
#include "db/publish_state.h"
#include "db/schema.h"
#include "db/sqlite.h"
#include "db/value.h"
#include "util/status.h"

namespace marmot {

class ChangeReader final : public ChangeSource {
 public:
  // Opens its own connection to `db_path`. Capture must be installed already; `installed_schema`
  // is the schema cookie right after it was (-1 when not known: the first read installs it again,
  // so that nothing changed in between is missed).
  static Result<std::unique_ptr<ChangeReader>> Open(const std::string& db_path,
                                                    int64_t installed_schema = -1);

  ChangeReader(const ChangeReader&) = delete;
  ChangeReader& operator=(const ChangeReader&) = delete;

  // Cheap check (PRAGMA data_version) whether another connection committed since the last call.
  Result<bool> DatabaseChanged();

  // Reads at most `max_entries` log entries after the cursor into `batch` (cleared first; its
  // buffers are reused) and advances the cursor past them. Re-installs capture first when the
  // schema changed (see the file comment).
  Status ReadBatch(size_t max_entries, ChangeBatch* batch) override;
  Result<ChangeBatch> ReadBatch(size_t max_entries);

  // Reads exactly the entries first..last (recovery re-reads a batch that was partly published);
  // the cursor does not move.
  Status ReadRange(uint64_t first, uint64_t last, ChangeBatch* batch) override;

  // Moves the cursor forward to `seq` without reading (recovery found those entries published).
  void SkipTo(uint64_t seq) override;

  // Re-installs capture and forgets cached tables when the schema cookie changed since the last
  // call; true when it did. ReadBatch calls it; exposed for tests.
  Result<bool> RefreshIfSchemaChanged();

  // Publishes the application's schema changes (docs/SCHEMA.md): called with the encoded schema
  // message, returns the schema stream's sequence for it once stored. Set: on the first read and
  // whenever the schema cookie changes, the live schema is compared with the one last published
  // or applied, and a difference is published before any row is read under it.
  using SchemaPublisher = std::function<Result<uint64_t>(const std::string& payload)>;
  void set_schema_publisher(uint64_t node_id, SchemaPublisher publish) {
    node_id_ = node_id;
    publish_schema_ = std::move(publish);
  }

  // The newest entry's sequence (0 for an empty log). The log never loses its newest entry, so
  // this is the highest sequence this database ever assigned.
  Result<uint64_t> LastLoggedSeq() override;

  Result<std::optional<std::string>> RowIdentity(const RowChange& change) override;

  // Every entry up to and including `seq` is in the streams; `acked` holds, per stream, the
  // sequence of the newest acknowledged message (see PublishState; streams not in it keep their
  // value). In memory until the next persist.
  void Confirm(uint64_t seq, const std::map<std::string, uint64_t>& acked) override;
  // The publisher sessions recorded with the state (see PublishState::sessions).
  void SetSessions(std::vector<std::string> sessions) override { state_.sessions = std::move(sessions); }

  // Persists the in-memory publish state now, in its own transaction.
  Status PersistPublishState() override;

  // Deletes confirmed entries (keeping the newest log row) and persists the publish state, in one
  // transaction. Returns how many entries were deleted.
  Result<size_t> DeleteConfirmed() override;

  // Tells `hold` what is confirmed from now on, and deletes only what it allows (not owned; it
  // must outlive the reader).
  void set_hold(ChangeLogHold* hold) {
    hold_ = hold;
    if (hold_) hold_->Reset(state_.confirmed_seq);
  }

  uint64_t cursor() const override { return cursor_; }
  uint64_t confirmed() const { return state_.confirmed_seq; }
  // The publish state as loaded at open and updated since (confirmations may not be persisted).
  const PublishState& publish_state() const override { return state_; }
  // Number of entries in the log after the confirmed position (for lag metrics and tests).
  Result<int64_t> PendingEntries();

 private:
  struct TableReader {
    TableSchema schema;
    std::shared_ptr<const std::vector<std::string>> stored_columns;
    std::shared_ptr<const std::vector<std::string>> key_columns;
    Statement lookup;  // SELECT stored columns WHERE key IS ?...
  };

  // One change-log entry of the batch being read; its key values are keys_[key_begin, +width).
  struct Entry {
    int64_t table_id;
    TableReader* table;
    size_t key_begin;
    uint64_t row_hash;  // RowHash(table name, key)
  };

  explicit ChangeReader(Database db) : db_(std::move(db)) {}
  // Reads the entries after `after`, up to `upto`, at most `max_entries` of them.
  Status ReadEntries(uint64_t after, uint64_t upto, size_t max_entries, ChangeBatch* batch);
  // Marks in keep_ the last entry of each row (earlier entries of a row are superseded by it).
  void MarkLastEntryOfEachRow();
  bool SameRow(const Entry& a, const Entry& b) const;
  Status LoadTables();
  Result<TableReader*> Table(int64_t id);
  Status PrepareLogRead();
  Result<int64_t> SchemaVersion();
  // The schema-change half of RefreshIfSchemaChanged (see set_schema_publisher): publishes the
  // difference between the local record and the live schema, tables renamed since the last
  // publish as renames (UnpublishedTableRenames, capture.h).
  Status PublishSchemaChange();

  Database db_;
  int key_width_ = 0;
  Statement read_log_;
  Statement any_unread_;  // SELECT 1 ... WHERE seq > ?1 LIMIT 1: the cheap check before a read
  Statement schema_version_;
  int64_t known_schema_version_ = -1;
  uint64_t node_id_ = 0;
  SchemaPublisher publish_schema_;
  bool schema_compared_ = false;                          // PublishSchemaChange ran at least once
  std::unordered_map<int64_t, std::string> table_names_;  // from __marmot__tables
  std::unordered_map<int64_t, std::unique_ptr<TableReader>> tables_;
  std::unordered_map<std::string, std::vector<std::string>> key_columns_;  // by table, for RowIdentity
  uint64_t cursor_ = 0;
  PublishState state_;            // confirmed_seq may be ahead of the persisted record
  PublishState persisted_state_;  // as last written
  uint64_t deleted_upto_ = 0;     // entries up to here are deleted (a hold may keep some confirmed ones)
  ChangeLogHold* hold_ = nullptr;
  int64_t data_version_ = -1;
  // Scratch space of ReadBatch, kept between batches so reading allocates nothing per row.
  std::vector<Entry> entries_;
  std::vector<Value> keys_;  // the first keys_used_ hold the batch's key values
  size_t keys_used_ = 0;
  std::vector<uint32_t> order_;  // entry positions (a batch has far fewer than 2^32 entries)
  std::vector<char> keep_;
};

}  // namespace marmot
