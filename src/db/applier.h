// Applier: writes replicated row changes into the local database.
//
// A batch is applied in ONE transaction on a connection that has triggers and foreign keys
// switched off, so neither marmot's capture nor the application's own triggers fire for rows that
// come from elsewhere (their effects arrive as replicated rows themselves). An upsert is
// INSERT OR REPLACE of the full row, so it also removes rows that conflict on another UNIQUE
// constraint, just as it happened on the node that wrote it; a delete removes by key. Generated
// columns are never written (they are not in the change).
//
// A change that cannot be applied (unknown table or column, constraint failure, ...) is written
// to __marmot__dead_letter with the reason and a replayable SQL statement (an excerpt of at most
// kMaxDeadLetterStatement bytes for huge rows: the stream sequence finds the whole change); the
// rest of the batch goes on. A change whose columns differ from the local table's (written under
// another schema) is dead-lettered too, never written in part or with defaults filled in. The
// position handed in with the batch (stream, sequence) is stored in the same transaction, so
// after a crash the rows and the position agree.
//
// Schema changes: every batch first compares SQLite's schema cookie with the last one seen; when
// the schema changed, every cached statement, key list and lookup is dropped and made again.
//
// REQUIRES: external synchronization (one thread uses an applier).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "db/row_matcher.h"
#include "db/schema.h"
#include "db/shape_cache.h"
#include "db/sqlite.h"
#include "db/value.h"
#include "util/hash_set64.h"
#include "util/status.h"

namespace marmot {

struct StreamPosition {
  std::string stream;
  uint64_t seq = 0;
  int64_t created_ns = 0;  // the stream's creation time (0: unknown); tells a re-created stream
  int64_t msg_hash = 0;    // PayloadHash of message `seq` (0: unknown); tells a replaced history
};

// The position stored for `stream` in __marmot__positions ({stream, 0, 0} when none).
Result<StreamPosition> ReadStreamPosition(Database& db, const std::string& stream);

struct ApplyStats {
  size_t applied = 0;
  size_t dead_lettered = 0;
  size_t superseded = 0;        // skipped: a newer local write to the same row is not published yet
  size_t unchanged = 0;         // skipped: this node's own change came back and the row still holds it
  size_t transactions = 0;      // write transactions the batch took (more than one: split, see Apply)
  double max_hold_seconds = 0;  // the longest of them held the write lock this long
};

class Applier {
 public:
  // Opens its own connection to `db_path` and creates marmot's tables if needed.
  static Result<std::unique_ptr<Applier>> Open(const std::string& db_path);

  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;

  // Applies `changes` in order in one transaction and records `position` (if given) in it.
  // Fails only when the transaction itself fails (disk full, I/O error, busy beyond the timeout):
  // then nothing of the batch is applied and the caller retries it.
  //
  // The application's writers wait while a transaction holds the write lock, so a transaction
  // that has held it for max_hold() commits at the next message boundary (changes carry their
  // message's stream_seq), with the position just before that message, and the rest of the batch
  // goes on in a new transaction (checked again for local writes, which may have come in between).
  // A crash in between re-applies the rest from the stream.
  //
  // `local_unread_after` is the change reader's cursor when this database also captures local
  // writes. A row whose local change-log entries after that cursor are not read yet was written
  // here after everything now in the stream, so its local write will be published later and win;
  // applying the incoming change would overwrite the values the reader is about to publish. Such
  // changes are skipped (counted as superseded). docs/CAPTURE.md has the full argument. In a table
  // with a UNIQUE index besides its key, a skipped upsert would also skip the rows its REPLACE
  // removes on every other node: there it is written, and the local row put back before the
  // transaction commits (RestoreLocalRows), as the local write will do everywhere when it is
  // published.
  //
  // Changes marked `echo` (this node's own, back from the stream) are first compared with the
  // local rows in a read transaction, which does not block the application's writers; those the
  // database already holds are skipped (counted as unchanged), unless an earlier upsert of the
  // batch can remove the row first (REPLACE on another UNIQUE index of the same table).
  Result<ApplyStats> Apply(std::span<const RowChange> changes, const std::optional<StreamPosition>& position,
                           std::optional<uint64_t> local_unread_after = std::nullopt);

  // Records a stream message that could not be decoded at all. Like RecordGap, the record is
  // written by this applier's next transaction (Apply or SavePosition), the one that moves the
  // position past the message: a position never moves on without its record.
  void DeadLetterMessage(const StreamPosition& position, const std::string& reason);

  // The last sequence stored for `stream`, 0 when none.
  Result<uint64_t> LoadPosition(const std::string& stream);
  // The position stored for `stream` with the stream's creation time (both 0 when none).
  Result<StreamPosition> LoadStreamPosition(const std::string& stream);
  // Stores `position` (and the records waiting for it) in its own transaction (a consumer moving
  // past a gap or onto a new stream).
  Status SavePosition(const StreamPosition& position);

  // Records in __marmot__gaps that messages first..last of `stream` (last 0: unknown) will never
  // be applied here; written by the next transaction, with the position (see DeadLetterMessage).
  void RecordGap(const std::string& stream, uint64_t first, uint64_t last, const std::string& reason);

  // Longest reason and statement stored with a dead letter.
  static constexpr size_t kMaxDeadLetterReason = 4096;
  static constexpr size_t kMaxDeadLetterStatement = size_t{64} * 1024;
  // A change larger than this (its values) is recorded without the replayable copy.
  static constexpr size_t kMaxDeadLetterChange = size_t{1} << 20;

  // Replays dead letter `id` (docs/OPERATIONS.md, dead letters): applies its recorded change in a
  // write transaction of its own and deletes the record. Not applied, and the record deleted, when
  // a later change to the same row has arrived since (superseded: applying it would undo that
  // change). Kept, with the reason, when it fails again, when the row has local writes the change
  // log still holds (they are newer: try again once they went out), or when nothing replayable was
  // recorded (an undecodable message, or a record of an older version).
  enum class ReplayResult { kApplied, kSuperseded, kFailed, kNotReplayable };
  struct ReplayOutcome {
    ReplayResult result = ReplayResult::kFailed;
    std::string detail;
  };
  Result<ReplayOutcome> ReplayDeadLetter(int64_t id);

  // Called (outside any transaction) when a change names a table or column this database does not
  // have: waits until the schema stream has been applied up to its current end; the batch is then
  // tried again once (what still does not fit is dead-lettered). An error (stopping) fails the
  // batch, to be applied later. Without it such changes are dead-lettered at once.
  using SchemaWait = std::function<Status(const std::string& why)>;
  void set_schema_wait(SchemaWait wait) { schema_wait_ = std::move(wait); }

  // How long one transaction may hold the write lock before the batch is split (see Apply).
  static constexpr std::chrono::milliseconds kDefaultMaxHold{100};
  void set_max_hold(std::chrono::milliseconds hold) { max_hold_ = hold; }
  std::chrono::milliseconds max_hold() const { return max_hold_; }

  // Total number of dead-lettered changes since this applier was opened (a metric).
  uint64_t dead_lettered_total() const { return dead_lettered_total_; }

  Database& database() { return db_; }

 private:
  // Which row a change touches: RowHash of its table and key, computed here (the same function
  // the change reader uses for shards; decoded changes carry no hash); `known` is false when the table or a
  // key column is unknown here (the change will be dead-lettered anyway). Equal rows have equal hashes; the
  // converse holds only up to hash collisions, so each use below says what a collision would cost.
  struct RowKey {
    uint64_t hash = 0;
    bool known = false;
  };
  // Where a change's key values are among its columns (per change shape).
  struct KeyPositions {
    std::vector<size_t> at;
    bool known = false;
  };

  // The statement for one change shape, or why changes of that shape cannot be applied here.
  struct PreparedShape {
    Statement statement;
    // Set for an upsert written under an older schema (it lacks columns the table has here): the
    // row is updated in place when it exists, and `statement` inserts it otherwise.
    Statement update;
    std::string mismatch;       // not empty: the change's columns differ from the local table's
    bool newer_schema = false;  // the mismatch is a table or column not here (yet?)
    bool excluded = false;      // the table is left out by the table selection: skip
  };

  explicit Applier(Database db) : db_(std::move(db)), matcher_(&db_) {}
  // Drops every cache when the schema cookie changed since the last call; true when it did.
  Result<bool> ForgetCachesIfSchemaChanged();
  // Drops every prepared statement, key list and lookup.
  void ForgetCaches();
  Result<PreparedShape> MakeShape(const RowChange& change);
  // What `name` (a column of `table`, or a table when `table` is empty) was renamed to since,
  // following __marmot__renamed until a name in `here` (if given); `name` when never renamed.
  Result<std::string> NameAfterRenames(const std::string& table, const std::string& name,
                                       const std::vector<std::string>* here);
  // For each change, 1 in `unchanged` when it can be skipped: an echo whose row the database
  // already holds, with no earlier change of the batch writing the same row.
  Status FindUnchangedEchoes(std::span<const RowChange> changes, std::vector<char>* unchanged);
  Result<PreparedShape*> ShapeFor(const RowChange& change);
  // True when the change log has entries after `after` (local writes the reader has not read).
  Result<bool> HasUnreadLocalWrites(uint64_t after);
  // Marks in `superseded` the changes whose rows have local log entries after `after`; changes
  // marked in `unchanged` are left out.
  Status FindSupersededChanges(std::span<const RowChange> changes, const std::vector<char>& unchanged,
                               uint64_t after, std::vector<char>* superseded);
  // Fills row_keys_ for `changes`, in order.
  Status ComputeRowKeys(std::span<const RowChange> changes);
  // "table NUL key-bytes": the exact identity of the row `change` touches (nullopt as for RowKey).
  Result<std::optional<std::string>> RowIdentity(const RowChange& change);
  // The key columns of `table` (cached); empty when the table does not exist here.
  Result<const std::vector<std::string>*> KeyColumns(const std::string& table);
  // True when `table` has a UNIQUE index besides its key here (cached): an upsert's REPLACE can
  // then remove other rows of the table.
  Result<bool> ReplacesOtherRows(const std::string& table);
  // The row `change` touches as it is here (its key must be known here).
  struct LocalRow {
    RowChange key;                 // a delete of the row (its key columns)
    std::optional<RowChange> row;  // an upsert of every stored column; none when the row is not here
  };
  Result<LocalRow> ReadLocalRow(const RowChange& change);
  // Puts the rows of local_rows_to_restore_ back: deletes them all, then inserts the local values
  // of those that were here, except where a unique value is now another row's: that row came in
  // with a change of this transaction which, without the superseded upsert written before it,
  // would have removed the local row by REPLACE; the row then stays deleted, and its own
  // change-log entry publishes that.
  Status RestoreLocalRows();
  Result<KeyPositions> MakeKeyPositions(const RowChange& change);
  // `superseded_here`: the row's newer local write supersedes the change, so the record is written
  // already superseded (a replay drops it instead of undoing that write) and leaves dead_rows_ alone.
  Status DeadLetter(const RowChange& change, const std::string& reason,
                    const std::optional<StreamPosition>& position, bool superseded_here = false);
  // A superseded upsert (see Apply) in a table where REPLACE can remove other rows: written, the
  // local row saved first in local_rows_to_restore_ (the transaction's commit puts it back). The
  // status of writing it, as RunChange's.
  Status WriteSupersededUpsert(const RowChange& change);
  // Writes one change with its prepared statement; fails when its shape does not fit the table
  // here or SQLite refuses it (the caller dead-letters it, or rolls back when SQLite did).
  Status RunChange(const RowChange& change);
  // RowHash of the row `change` touches, when its table and key columns are known here.
  Result<std::optional<uint64_t>> RowHashOf(const RowChange& change);
  // A change to the row with hash `hash` arrived from the stream at `seq` without being
  // dead-lettered: dead letters of that row become superseded.
  Status MarkDeadLettersSuperseded(uint64_t hash, uint64_t seq);
  // Writes the queued gap and message records; inside a write transaction.
  Status WriteQueuedRecords();
  Status WritePosition(const StreamPosition& position);

  struct QueuedGap {
    std::string stream;
    uint64_t first = 0, last = 0;
    std::string reason;
  };
  struct QueuedMessage {
    StreamPosition position;
    std::string reason;
  };

  SchemaWait schema_wait_;
  bool schema_waited_ = false;  // within one Apply: wait at most once
  Database db_;
  RowMatcher matcher_;
  Statement schema_version_;
  int64_t known_schema_version_ = -1;
  ShapeCache<PreparedShape> statements_;
  ShapeCache<KeyPositions> key_positions_;
  // What the applier knows about one table here, filled as it is needed; dropped with the other
  // caches when the schema changes (ForgetCaches).
  struct LocalRowReader {
    Statement lookup;    // the row by its key (SelectRowByKeySql)
    Statement put_back;  // INSERT OR IGNORE of every stored column (RestoreLocalRows)
    std::shared_ptr<const std::vector<std::string>> stored_columns, key_columns;
  };
  struct TableFacts {
    std::optional<TableSchema> schema;  // none: no such (replicated) table here
    std::vector<std::string> key_columns;
    std::optional<bool> replaces_other_rows;   // see ReplacesOtherRows
    std::optional<LocalRowReader> local_rows;  // see ReadLocalRow
  };
  Result<TableFacts*> Facts(const std::string& table);
  Result<LocalRowReader*> LocalRows(const std::string& table);
  std::unordered_map<std::string, TableFacts> tables_;
  // Local rows that superseded upserts were written over in the open transaction, to be put back
  // before it commits (see Apply); local_rows_saved_ holds their identities (RowIdentity).
  std::vector<LocalRow> local_rows_to_restore_;
  std::unordered_set<std::string> local_rows_saved_;
  // Row hashes whose dead letters the open transaction marks superseded: they leave dead_rows_
  // when it commits (a rollback undoes the marks).
  std::vector<uint64_t> dead_rows_marked_;
  std::vector<std::string> replacing_tables_;  // FindUnchangedEchoes: tables an upsert may replace rows in
  // Per-batch scratch space, kept so that applying allocates nothing per row.
  std::vector<RowKey> row_keys_;
  std::vector<char> unchanged_;
  std::vector<char> superseded_;
  // Row hashes: in FindUnchangedEchoes the rows written earlier in the batch, in
  // FindSupersededChanges the rows the batch writes.
  HashSet64 rows_seen_;
  HashSet64 superseded_hashes_;  // rows of the batch that an unread local write also touches
  Value column_scratch_;
  Statement save_position_;
  Statement dead_letter_;
  Statement mark_superseded_;
  Statement clear_replace_notes_;  // empties __marmot__replaced
  // Row hashes of dead letters not yet superseded; empty (the usual case) costs nothing per change.
  std::unordered_set<uint64_t> dead_rows_;
  uint64_t dead_lettered_total_ = 0;
  std::chrono::milliseconds max_hold_ = kDefaultMaxHold;
  std::vector<QueuedGap> queued_gaps_;
  std::vector<QueuedMessage> queued_messages_;
};

// The SQL statement (with values inlined as literals) that would apply `change` by hand; stored in
// the dead-letter table so an operator can fix the cause and replay it. Longer than `max_bytes`,
// it is cut there (values shortened, then the text) and ends in "... (truncated)".
std::string ChangeToSql(const RowChange& change, size_t max_bytes = SIZE_MAX);

}  // namespace marmot
