// ChangeReader: turns __marmot__change_log entries into RowChanges, oldest first.
//
// Capture logs only the key of a changed row. The reader reads up to N log entries after its
// cursor and, in the same read transaction, the current values of each logged row: a row that
// exists becomes an upsert of all its stored columns, a row that is gone becomes a delete of its
// key. Several entries for one row within a batch collapse into one change at the position of
// the last entry, which is exactly the row's newest state (docs/CAPTURE.md explains why this is
// equivalent to shipping every intermediate version under last-writer-wins).
//
// Entries are removed only after the consumer confirms them (Confirm), and then lazily by
// DeleteConfirmed, which the owner calls every cleanup_interval. The newest entry is always kept
// so that sequence numbers are never reused (they feed publish dedup ids).
//
// REQUIRES: external synchronization (one thread uses a reader).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "db/schema.h"
#include "db/sqlite.h"
#include "db/value.h"
#include "util/status.h"

namespace marmot {

struct ChangeBatch {
  uint64_t first_seq = 0;  // first change-log entry covered (0 when empty)
  uint64_t last_seq = 0;   // last change-log entry covered; confirm this when done
  size_t entries = 0;      // log entries read (>= changes.size() because of coalescing)
  RowChangeList changes;

  bool empty() const { return entries == 0; }
  void Clear() {
    first_seq = last_seq = 0;
    entries = 0;
    changes.clear();
  }
};

class ChangeReader {
 public:
  // Opens its own connection to `db_path`. Capture must be installed already.
  static Result<std::unique_ptr<ChangeReader>> Open(const std::string& db_path);

  ChangeReader(const ChangeReader&) = delete;
  ChangeReader& operator=(const ChangeReader&) = delete;

  // Cheap check (PRAGMA data_version) whether another connection committed since the last call.
  Result<bool> DatabaseChanged();

  // Reads at most `max_entries` log entries after the cursor into `batch` (cleared first; its
  // buffers are reused) and advances the cursor past them.
  Status ReadBatch(size_t max_entries, ChangeBatch* batch);
  Result<ChangeBatch> ReadBatch(size_t max_entries);

  // The consumer has durably taken over every entry up to and including `seq`.
  void Confirm(uint64_t seq);

  // Deletes confirmed entries (keeping the newest log row) and persists the confirmed position.
  // Returns how many entries were deleted.
  Result<size_t> DeleteConfirmed();

  uint64_t cursor() const { return cursor_; }
  uint64_t confirmed() const { return confirmed_; }
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
  // Marks in keep_ the last entry of each row (earlier entries of a row are superseded by it).
  void MarkLastEntryOfEachRow();
  bool SameRow(const Entry& a, const Entry& b) const;
  Status LoadTables();
  Result<TableReader*> Table(int64_t id);
  Status PrepareLogRead();

  Database db_;
  int key_width_ = 0;
  Statement read_log_;
  Statement any_unread_;  // SELECT 1 ... WHERE seq > ?1 LIMIT 1: the cheap check before a read
  std::unordered_map<int64_t, std::string> table_names_;  // from __marmot__tables
  std::unordered_map<int64_t, std::unique_ptr<TableReader>> tables_;
  uint64_t cursor_ = 0;
  uint64_t confirmed_ = 0;
  uint64_t persisted_confirmed_ = 0;
  int64_t data_version_ = -1;
  // Scratch space of ReadBatch, kept between batches so reading allocates nothing per row.
  std::vector<Entry> entries_;
  std::vector<Value> keys_;  // the first keys_used_ hold the batch's key values
  size_t keys_used_ = 0;
  std::vector<uint32_t> order_;  // entry positions (a batch has far fewer than 2^32 entries)
  std::vector<char> keep_;
};

}  // namespace marmot
