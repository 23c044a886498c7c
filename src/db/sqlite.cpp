#include "db/sqlite.h"

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "db/value.h"

namespace marmot {

std::string QuoteIdent(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// ---- Statement ----

Status SqliteError(int rc, std::string message) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Busy(std::move(message));
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return Status::IoError(std::move(message));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(std::move(message));
    case SQLITE_ERROR:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
      return Status::InvalidArgument(std::move(message));
    default:
      return Status::Error(std::move(message));
  }
}

void Statement::CheckBind(int rc, int index) {
  if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) {
    bind_error_ = rc;
    bind_error_index_ = index;
  }
}

void Statement::BindNull(int index) { CheckBind(sqlite3_bind_null(stmt_.get(), index), index); }
void Statement::BindInt(int index, int64_t v) { CheckBind(sqlite3_bind_int64(stmt_.get(), index, v), index); }
void Statement::BindDouble(int index, double v) {
  CheckBind(sqlite3_bind_double(stmt_.get(), index, v), index);
}
void Statement::BindText(int index, std::string_view v) {
  CheckBind(sqlite3_bind_text64(stmt_.get(), index, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
            index);
}
void Statement::BindBlob(int index, std::string_view bytes) {
  // A zero-length blob must stay a BLOB, not become NULL: sqlite3_bind_zeroblob does that.
  if (bytes.empty()) {
    CheckBind(sqlite3_bind_zeroblob(stmt_.get(), index, 0), index);
    return;
  }
  CheckBind(sqlite3_bind_blob64(stmt_.get(), index, bytes.data(), bytes.size(), SQLITE_TRANSIENT), index);
}

void Statement::BindUncopied(int index, const Value& v) {
  if (v.type() == Value::Type::kText) {
    CheckBind(sqlite3_bind_text64(stmt_.get(), index, v.bytes().data(), v.bytes().size(), SQLITE_STATIC,
                                  SQLITE_UTF8),
              index);
  } else if (v.type() == Value::Type::kBlob && !v.bytes().empty()) {
    CheckBind(sqlite3_bind_blob64(stmt_.get(), index, v.bytes().data(), v.bytes().size(), SQLITE_STATIC),
              index);
  } else {
    Bind(index, v);
  }
}

void Statement::Bind(int index, const Value& v) {
  switch (v.type()) {
    case Value::Type::kNull:
      BindNull(index);
      break;
    case Value::Type::kInteger:
      BindInt(index, v.integer());
      break;
    case Value::Type::kReal:
      BindDouble(index, v.real());
      break;
    case Value::Type::kText:
      BindText(index, v.bytes());
      break;
    case Value::Type::kBlob:
      BindBlob(index, v.bytes());
      break;
  }
}

Result<bool> Statement::Step() {
  if (bind_error_ != SQLITE_OK) {
    return SqliteError(bind_error_, "binding parameter " + std::to_string(bind_error_index_) + ": " +
                                        sqlite3_errstr(bind_error_) +
                                        " (running: " + sqlite3_sql(stmt_.get()) + ")");
  }
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(rc, std::string(sqlite3_errmsg(db_)) + " (running: " + sqlite3_sql(stmt_.get()) + ")");
}

Status Statement::Run() {
  while (true) {
    Result<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status();
  }
}

void Statement::Reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
  bind_error_ = SQLITE_OK;
  bind_error_index_ = 0;
}

std::string Statement::ColumnText(int col) const {
  const void* p = sqlite3_column_blob(stmt_.get(), col);
  int n = sqlite3_column_bytes(stmt_.get(), col);
  return p ? std::string(static_cast<const char*>(p), n) : std::string();
}

Value Statement::ColumnValue(int col) const {
  Value v;
  ReadColumn(col, &v);
  return v;
}

namespace {

// A TEXT or BLOB column's bytes as stored: TEXT as UTF-8 (marmot's databases are UTF-8, so
// nothing is converted), the length from column_bytes, so embedded NULs are kept.
std::string_view ColumnBytes(sqlite3_stmt* stmt, int col, int type) {
  const void* p = type == SQLITE_TEXT ? static_cast<const void*>(sqlite3_column_text(stmt, col))
                                      : sqlite3_column_blob(stmt, col);
  int n = sqlite3_column_bytes(stmt, col);
  return p ? std::string_view(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string_view();
}

}  // namespace

void Statement::ReadColumn(int col, Value* into) const {
  sqlite3_stmt* stmt = stmt_.get();
  int type = sqlite3_column_type(stmt, col);
  switch (type) {
    case SQLITE_INTEGER:
      return into->SetInteger(sqlite3_column_int64(stmt, col));
    case SQLITE_FLOAT:
      return into->SetReal(sqlite3_column_double(stmt, col));
    case SQLITE_TEXT:
      return into->SetText(ColumnBytes(stmt, col, type));
    case SQLITE_BLOB:
      return into->SetBlob(ColumnBytes(stmt, col, type));
    default:
      return into->SetNull();
  }
}

bool Statement::ColumnEquals(int col, const Value& v) const {
  sqlite3_stmt* stmt = stmt_.get();
  int type = sqlite3_column_type(stmt, col);
  switch (v.type()) {
    case Value::Type::kNull:
      return type == SQLITE_NULL;
    case Value::Type::kInteger:
      return type == SQLITE_INTEGER && sqlite3_column_int64(stmt, col) == v.integer();
    case Value::Type::kReal:
      return type == SQLITE_FLOAT &&
             std::bit_cast<uint64_t>(sqlite3_column_double(stmt, col)) == std::bit_cast<uint64_t>(v.real());
    case Value::Type::kText:
      return type == SQLITE_TEXT && ColumnBytes(stmt, col, type) == v.bytes();
    case Value::Type::kBlob:
      return type == SQLITE_BLOB && ColumnBytes(stmt, col, type) == v.bytes();
  }
  return false;
}

// ---- Database ----

namespace {

// sqlite3_busy_handler callback: retry every 100 us for the first 2 ms, then every 1 ms, until the
// timeout (`timeout_ms` points to it, in ms). Unlike
// SQLite's own handler, whose sleeps grow to 100 ms, this never falls far behind a busy
// application's stream of short transactions.
int PollForLock(void* timeout_ms, int attempts) {
  constexpr int kFastAttempts = 20;
  int waited_ms = attempts <= kFastAttempts ? attempts / 10 : 2 + (attempts - kFastAttempts);
  if (waited_ms >= *static_cast<const int*>(timeout_ms)) return 0;
  std::this_thread::sleep_for(std::chrono::microseconds(attempts < kFastAttempts ? 100 : 1000));
  return 1;
}

}  // namespace

void ConfigureSqliteForMarmot() { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

Result<Database> Database::Open(const std::string& path, const Options& options) {
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  flags |= options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (options.create && !options.read_only) flags |= SQLITE_OPEN_CREATE;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Database db(raw, path);
  if (rc != SQLITE_OK) {
    std::string why = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    return SqliteError(rc, "opening database " + path + ": " + why);
  }
  sqlite3_extended_result_codes(raw, 1);
  // SQLite's legacy fallback reads an unknown "identifier" as a string literal: after a column is
  // renamed, a prepared SELECT "old_name" would return the text 'old_name' as the value. Marmot's
  // SQL quotes every identifier, so it must fail instead.
  sqlite3_db_config(raw, SQLITE_DBCONFIG_DQS_DML, 0, nullptr);
  sqlite3_db_config(raw, SQLITE_DBCONFIG_DQS_DDL, 0, nullptr);
  if (options.poll_for_locks) {
    db.lock_timeout_ms_ = std::make_unique<int>(options.busy_timeout_ms);
    sqlite3_busy_handler(raw, PollForLock, db.lock_timeout_ms_.get());
  } else {
    sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  }
  // Fail here, not at first use, when the file is not a database.
  Result<int64_t> probe = db.QueryInt("SELECT count(*) FROM sqlite_schema");
  if (!probe.ok()) return probe.status().WithContext("opening database " + path);
  return db;
}

Status Database::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return SqliteError(rc, msg + " (running: " + sql.substr(0, 200) + ")");
  }
  return Status();
}

Result<Statement> Database::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                              &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return SqliteError(
        rc, std::string(sqlite3_errmsg(db_.get())) + " (preparing: " + std::string(sql.substr(0, 200)) + ")");
  }
  return Statement(stmt, db_.get());
}

Result<int64_t> Database::QueryInt(const std::string& sql) {
  Result<Statement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  return *row ? stmt->ColumnInt(0) : 0;
}

Result<std::string> Database::QueryText(const std::string& sql) {
  Result<Statement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  return *row ? stmt->ColumnText(0) : std::string();
}

Result<bool> Database::HasTable(const std::string& name) {
  Result<Statement> stmt = Prepare("SELECT 1 FROM main.sqlite_schema WHERE name = ?1");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, name);
  return stmt->Step();
}

Status Database::DisableTriggersAndForeignKeys() {
  int enabled = 1;
  if (sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, &enabled) != SQLITE_OK ||
      enabled != 0) {
    return Status::Error("cannot disable triggers on the apply connection to " + path_);
  }
  return Exec("PRAGMA foreign_keys=OFF");
}

Status Database::EnsureWal(bool* switched) {
  *switched = false;
  Result<std::string> mode = QueryText("PRAGMA journal_mode");
  if (!mode.ok()) return mode.status().WithContext("reading journal mode of " + path_);
  if (*mode == "wal") return Status();
  Result<std::string> now = QueryText("PRAGMA journal_mode=WAL");
  if (!now.ok() || *now != "wal") {
    std::string why = now.ok() ? "journal mode stayed '" + *now + "'" : now.status().message();
    return Status::Error("database " + path_ + " is in '" + *mode +
                         "' journal mode and could not be switched to WAL (" + why +
                         "); marmot needs WAL. Stop the applications using it and run "
                         "`sqlite3 " +
                         path_ + " 'PRAGMA journal_mode=WAL'` once, then start marmot again");
  }
  *switched = true;
  return Status();
}

// ---- Transaction ----

Transaction::~Transaction() {
  if (open_) (void)db_->Exec("ROLLBACK");
}

Status Transaction::Begin(bool immediate) {
  MARMOT_RETURN_IF_ERROR(db_->Exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN"));
  open_ = true;
  return Status();
}

void Transaction::Rollback() {
  if (open_) (void)db_->Exec("ROLLBACK");
  open_ = false;
}

Status Transaction::Commit() {
  Status s = db_->Exec("COMMIT");
  if (s.ok()) open_ = false;
  return s;
}

}  // namespace marmot
