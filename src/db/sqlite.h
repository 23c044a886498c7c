// Thin RAII layer over the SQLite C API.
//
// Database owns one sqlite3 connection; Statement owns one prepared statement. Neither can be
// copied. Every failure comes back as a Status whose message carries SQLite's own message and
// what we were doing ("preparing ...", "stepping ..."). Nothing here is thread-safe: one
// connection belongs to one thread at a time (REQUIRES: external synchronization).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/status.h"

namespace marmot {

class Value;

// Quotes an SQL identifier ("a""b" style) so that any table or column name, including ones with
// spaces, quotes, dots, keywords or unicode, can be used in generated SQL. Every identifier in
// SQL that marmot builds goes through this function.
std::string QuoteIdent(std::string_view name);

class Statement {
 public:
  Statement() = default;
  Statement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
  Statement(Statement&&) = default;
  Statement& operator=(Statement&&) = default;

  bool valid() const { return stmt_ != nullptr; }
  sqlite3_stmt* get() const { return stmt_.get(); }

  // Binding: index is 1-based as in SQLite. A value SQLite refuses (too big for its limits, index
  // out of range, out of memory) is never silently bound as NULL: the failure is kept and the next
  // Step() or Run() returns it, naming the parameter, without running the statement.
  void BindNull(int index);
  void BindInt(int index, int64_t v);
  void BindDouble(int index, double v);
  void BindText(int index, std::string_view v);
  void BindBlob(int index, std::string_view bytes);
  void Bind(int index, const Value& v);
  // As Bind, without copying TEXT and BLOB bytes: `v` must stay alive and unchanged until the next
  // Reset() (which clears the bindings). For hot loops that bind, step and reset at once.
  void BindUncopied(int index, const Value& v);

  // Steps once. Returns true when a row is available, false when done, or an error naming `sql`.
  Result<bool> Step();
  // Steps until done (for statements that return no rows).
  Status Run();
  // Resets the statement, clears bindings and a kept binding failure so it can be reused.
  void Reset();

  int ColumnCount() const { return sqlite3_column_count(stmt_.get()); }
  int64_t ColumnInt(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  std::string ColumnText(int col) const;
  bool ColumnIsNull(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }
  // The column's bytes as a BLOB, valid until the next Step or Reset.
  std::string_view ColumnBlob(int col) const {
    const void* p = sqlite3_column_blob(stmt_.get(), col);
    return p ? std::string_view(static_cast<const char*>(p),
                                static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)))
             : std::string_view();
  }
  Value ColumnValue(int col) const;
  // As ColumnValue, into an existing Value whose buffer is reused (no allocation once it is big
  // enough).
  void ReadColumn(int col, Value* into) const;
  // Exactly equal to `v` (same storage class, same bytes; REAL by bit pattern), without a copy.
  bool ColumnEquals(int col, const Value& v) const;

 private:
  struct Finalizer {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
  };
  // Keeps the first binding failure since the last Reset() (see Bind*).
  void CheckBind(int rc, int index);

  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
  sqlite3* db_ = nullptr;
  int bind_error_ = SQLITE_OK;
  int bind_error_index_ = 0;
};

// A failed Status for SQLite result code `rc` (extended codes allowed) with `message`; the code is
// mapped: BUSY/LOCKED -> kBusy, IOERR/FULL/CANTOPEN/READONLY/PERM -> kIoError, CORRUPT/NOTADB ->
// kCorruption, ERROR/CONSTRAINT/MISMATCH/TOOBIG/RANGE -> kInvalidArgument, others -> kUnknown.
Status SqliteError(int rc, std::string message);

// Process-wide SQLite settings for marmot's own connections; call once at start, before any
// connection is opened. Turns off SQLite's memory statistics, whose global mutex is taken on
// every allocation (marmot never reads them).
void ConfigureSqliteForMarmot();

class Database {
 public:
  struct Options {
    bool read_only = false;
    bool create = false;  // create the file when missing
    int busy_timeout_ms = 5000;
    // When another connection holds the lock: true retries every 0.1-1 ms until the timeout;
    // false uses SQLite's own handler, whose sleeps grow to 100 ms. Marmot's writers poll so a
    // busy application (hundreds of commits a second) cannot starve them.
    bool poll_for_locks = false;
  };

  // Opens `path`. The error names the file and SQLite's reason.
  static Result<Database> Open(const std::string& path, const Options& options);
  static Result<Database> Open(const std::string& path) { return Open(path, Options()); }

  Database(Database&&) = default;
  Database& operator=(Database&&) = default;

  sqlite3* get() const { return db_.get(); }
  const std::string& path() const { return path_; }

  // Runs one or more statements that return no rows.
  Status Exec(const std::string& sql);
  Result<Statement> Prepare(std::string_view sql);
  // Runs a query expected to return one integer (first column of the first row; 0 when no rows).
  Result<int64_t> QueryInt(const std::string& sql);
  Result<std::string> QueryText(const std::string& sql);
  // Whether the main database has a table (or other schema object) named `name`.
  Result<bool> HasTable(const std::string& name);

  // Switches the application's triggers and foreign keys off for this connection: the applier
  // uses this so replicated rows neither re-fire capture nor the application's own triggers.
  Status DisableTriggersAndForeignKeys();

  // Makes sure the database is in WAL mode. If it is not, tries to switch it, which succeeds only
  // when no other connection has the file open; `switched` tells the caller to log it.
  Status EnsureWal(bool* switched);

  // SQLite's latest error message for this connection.
  std::string LastError() const { return sqlite3_errmsg(db_.get()); }

 private:
  struct Closer {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  // The busy handler's argument: declared before db_ so it outlives the connection, on the heap
  // so it stays put when the Database moves.
  std::unique_ptr<int> lock_timeout_ms_;
  std::unique_ptr<sqlite3, Closer> db_;
  std::string path_;
};

// RAII transaction: BEGIN on Begin(), ROLLBACK in the destructor unless Commit() succeeded.
class Transaction {
 public:
  explicit Transaction(Database* db) : db_(db) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status Begin(bool immediate);
  Status Commit();
  // Rolls back now (the destructor would later); nothing when not begun or already ended.
  void Rollback();

 private:
  Database* db_;
  bool open_ = false;
};

}  // namespace marmot
