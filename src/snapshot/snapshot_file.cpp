#include "snapshot/snapshot_file.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "db/marmot_tables.h"
#include "db/schema.h"
#include "db/sqlite.h"
#include "util/local_file.h"
#include "util/sha256.h"

namespace marmot {
namespace {

constexpr size_t kChunkBytes = 1u << 20;
// For the scratch copies: no journal, no fsync.
constexpr char kScratchPragmas[] = "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF";
constexpr int kZstdLevel = 1;  // fast: the database is mostly pages of rows, and the copy is on the
                               // critical path of saving; level 3 gains ~10% size for 2x the time

struct ZstdCCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct ZstdDCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
struct BackupDeleter {
  void operator()(sqlite3_backup* b) const { sqlite3_backup_finish(b); }
};

Status FileError(const std::string& what, const std::string& path) {
  return Status::IoError(fmt::format("{} {}: {}", what, path, std::strerror(errno)));
}

// Copies the live database into `copy_path` in one backup step (one read transaction).
Status CopyDatabase(const std::string& db_path, const std::string& copy_path) {
  Database::Options ro;
  ro.read_only = true;
  Result<Database> src = Database::Open(db_path, ro);
  if (!src.ok()) return src.status();
  Database::Options create;
  create.create = true;
  Result<Database> dst = Database::Open(copy_path, create);
  if (!dst.ok()) return dst.status();
  // A scratch file: no journal, no fsync (a failure discards it). ~20% faster copies.
  MARMOT_RETURN_IF_ERROR(dst->Exec(kScratchPragmas));
  std::unique_ptr<sqlite3_backup, BackupDeleter> backup(
      sqlite3_backup_init(dst->get(), "main", src->get(), "main"));
  if (!backup)
    return SqliteError(sqlite3_errcode(dst->get()),
                       "starting the copy of " + db_path + ": " + dst->LastError());
  int rc = SQLITE_OK;
  for (int attempt = 0; attempt < 3000; ++attempt) {  // up to ~30 s while another connection locks it
    rc = sqlite3_backup_step(backup.get(), -1);
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (rc != SQLITE_DONE) {
    return SqliteError(rc, "copying " + db_path + " for a snapshot: " + sqlite3_errstr(rc));
  }
  rc = sqlite3_backup_finish(backup.release());
  if (rc != SQLITE_OK)
    return SqliteError(rc, "copying " + db_path + " for a snapshot: " + sqlite3_errstr(rc));
  return Status();
}

// Strips node-local objects from the copy and fills the manifest's positions, tables and sizes.
Status PrepareCopy(const std::string& copy_path, SnapshotManifest* m) {
  Result<Database> db = Database::Open(copy_path);
  if (!db.ok()) return db.status();
  MARMOT_RETURN_IF_ERROR(db->Exec(std::string(kScratchPragmas) + "; PRAGMA secure_delete=ON"));
  Result<int64_t> has_positions =
      db->QueryInt(std::string("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '") +
                   kPositionsTable + "'");
  if (!has_positions.ok()) return has_positions.status();
  if (*has_positions > 0) {
    Result<Statement> q = db->Prepare("SELECT stream, seq, coalesce(stream_created, 0) FROM " +
                                      QuoteIdent(kPositionsTable) + " ORDER BY stream");
    if (!q.ok()) return q.status();
    while (true) {
      Result<bool> row = q->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      m->positions.push_back({q->ColumnText(0), static_cast<uint64_t>(q->ColumnInt(1)), q->ColumnInt(2)});
    }
  }
  // A node that recorded gaps may lack rows: its copy must not become everyone's.
  Result<int64_t> has_gaps = db->QueryInt(
      std::string("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '") + kGapsTable + "'");
  if (!has_gaps.ok()) return has_gaps.status();
  if (*has_gaps > 0) {
    Result<int64_t> gaps = db->QueryInt("SELECT count(*) FROM " + QuoteIdent(kGapsTable));
    if (!gaps.ok()) return gaps.status();
    if (*gaps > 0) {
      return Status::InvalidArgument(fmt::format(
          "this node's copy may lack rows ({} gap(s) recorded in {}), so it saves no snapshot; it heals from "
          "another node's snapshot",
          *gaps, kGapsTable));
    }
  }
  // Tables the selection leaves out are this node's own (docs/SCHEMA.md): not in a snapshot.
  Result<TableSelection> selection = LoadTableSelection(*db);
  if (!selection.ok()) return selection.status();
  Result<std::vector<std::string>> excluded = TablesLeftOut(*db, *selection);
  if (!excluded.ok()) return excluded.status();
  for (const std::string& table : *excluded)
    MARMOT_RETURN_IF_ERROR(db->Exec("DROP TABLE " + QuoteIdent(table)));
  // Everything marmot keeps but the positions: triggers first (they name the tables).
  Result<Statement> list = db->Prepare(
      "SELECT type, name FROM sqlite_schema WHERE type IN ('trigger', 'table') AND substr(name, 1, 10) = "
      "'__marmot__' AND name <> ?1 ORDER BY type = 'table'");
  if (!list.ok()) return list.status();
  list->BindText(1, kPositionsTable);
  std::vector<std::string> drops;
  while (true) {
    Result<bool> row = list->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    drops.push_back((list->ColumnText(0) == "trigger" ? "DROP TRIGGER " : "DROP TABLE ") +
                    QuoteIdent(list->ColumnText(1)));
  }
  for (const std::string& sql : drops) MARMOT_RETURN_IF_ERROR(db->Exec(sql));
  Result<std::vector<TableSchema>> tables = ReadSchema(*db);
  if (!tables.ok()) return tables.status();
  for (const TableSchema& table : *tables) {
    Result<int64_t> rows = db->QueryInt("SELECT count(*) FROM " + QuoteIdent(table.name));
    if (!rows.ok()) return rows.status().WithContext("counting the rows of table " + QuoteIdent(table.name));
    m->tables.push_back({table.name, *rows});
  }
  Result<int64_t> page_size = db->QueryInt("PRAGMA page_size");
  if (!page_size.ok()) return page_size.status();
  m->page_size = *page_size;
  return Status();
}

// Compresses `in_path` into `out_path`, hashing the output; fills object_bytes and sha256.
Status Compress(const std::string& in_path, const std::string& out_path, SnapshotManifest* m,
                ProgressSink* progress) {
  FilePtr in(std::fopen(in_path.c_str(), "rb"));
  if (!in) return FileError("opening", in_path);
  FilePtr out(std::fopen(out_path.c_str(), "wb"));
  if (!out) return FileError("creating", out_path);
  std::unique_ptr<ZSTD_CCtx, ZstdCCtxDeleter> cctx(ZSTD_createCCtx());
  if (!cctx) return Status::Error("zstd: cannot create a compression context (out of memory?)");
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, kZstdLevel);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
  // Two workers where libzstd is built with threads (Debian's is); ignored otherwise.
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_nbWorkers, 2);
  std::vector<char> in_buf(kChunkBytes), out_buf(ZSTD_CStreamOutSize());
  Sha256 sha;
  uint64_t db_bytes = 0, object_bytes = 0;
  bool last = false;
  while (!last) {
    size_t n = std::fread(in_buf.data(), 1, in_buf.size(), in.get());
    if (n < in_buf.size()) {
      if (std::ferror(in.get())) return FileError("reading", in_path);
      last = true;
    }
    db_bytes += n;
    ZSTD_inBuffer input{in_buf.data(), n, 0};
    ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
    bool finished = false;
    while (!finished) {
      ZSTD_outBuffer output{out_buf.data(), out_buf.size(), 0};
      size_t remaining = ZSTD_compressStream2(cctx.get(), &output, &input, mode);
      if (ZSTD_isError(remaining)) return Status::Error(std::string("zstd: ") + ZSTD_getErrorName(remaining));
      if (output.pos > 0) {
        if (std::fwrite(out_buf.data(), 1, output.pos, out.get()) != output.pos) {
          return FileError("writing (disk full?)", out_path);
        }
        sha.Update(out_buf.data(), output.pos);
        object_bytes += output.pos;
      }
      finished = last ? remaining == 0 : input.pos == input.size;
    }
    if (progress != nullptr) progress->Advance(n);
  }
  if (std::fflush(out.get()) != 0) return FileError("writing (disk full?)", out_path);
  m->db_bytes = db_bytes;
  m->object_bytes = object_bytes;
  m->sha256 = sha.HexDigest();
  return Status();
}

}  // namespace

Result<LocalSnapshot> WriteSnapshotFile(const std::string& db_path, const std::string& work_dir,
                                        uint64_t node_id, ProgressSink* progress) {
  LocalSnapshot snap;
  SnapshotManifest& m = snap.manifest;
  auto now = std::chrono::system_clock::now();
  m.id = NewSnapshotId(now, node_id);
  m.node_id = node_id;
  m.created_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  m.marmot_version = MARMOT_VERSION;
  std::string copy_path = work_dir + "/" + m.id + ".db";
  snap.data_path = work_dir + "/" + m.data_object();
  struct RemoveCopy {
    std::string path;
    ~RemoveCopy() {
      std::error_code ec;
      std::filesystem::remove(path, ec);
      std::filesystem::remove(path + "-journal", ec);
      std::filesystem::remove(path + "-wal", ec);
      std::filesystem::remove(path + "-shm", ec);
    }
  } remove_copy{copy_path};
  Status s = CopyDatabase(db_path, copy_path);
  if (s.ok()) s = PrepareCopy(copy_path, &m);
  if (s.ok()) s = Compress(copy_path, snap.data_path, &m, progress);
  if (!s.ok()) {
    std::error_code ec;
    std::filesystem::remove(snap.data_path, ec);
    return s.WithContext("saving snapshot " + m.id + " of " + db_path);
  }
  return snap;
}

Status UnpackSnapshotFile(const std::string& object_path, const SnapshotManifest& manifest,
                          const std::string& db_out, ProgressSink* progress) {
  std::string what = "snapshot " + manifest.id;
  FilePtr in(std::fopen(object_path.c_str(), "rb"));
  if (!in) return FileError("opening", object_path);
  FilePtr out(std::fopen(db_out.c_str(), "wb"));
  if (!out) return FileError("creating", db_out);
  std::unique_ptr<ZSTD_DCtx, ZstdDCtxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) return Status::Error("zstd: cannot create a decompression context (out of memory?)");
  std::vector<char> in_buf(ZSTD_DStreamInSize()), out_buf(ZSTD_DStreamOutSize());
  Sha256 sha;
  uint64_t read = 0, written = 0;
  size_t pending = 1;  // nonzero until a frame ends exactly at the end of the input
  std::string broken;  // why decompressing stopped
  auto fail = [&](Status s) {
    out.reset();
    std::error_code ec;
    std::filesystem::remove(db_out, ec);
    return s;
  };
  while (true) {
    size_t n = std::fread(in_buf.data(), 1, in_buf.size(), in.get());
    if (n == 0) {
      if (std::ferror(in.get())) return fail(FileError("reading", object_path));
      break;
    }
    read += n;
    sha.Update(in_buf.data(), n);
    ZSTD_inBuffer input{in_buf.data(), n, 0};
    while (broken.empty() && input.pos < input.size) {
      ZSTD_outBuffer output{out_buf.data(), out_buf.size(), 0};
      pending = ZSTD_decompressStream(dctx.get(), &output, &input);
      if (ZSTD_isError(pending)) {
        // Read on to the end: a wrong SHA-256 says more than zstd's complaint.
        broken = std::string("zstd: ") + ZSTD_getErrorName(pending);
        break;
      }
      if (output.pos > 0 && std::fwrite(out_buf.data(), 1, output.pos, out.get()) != output.pos) {
        return fail(FileError("writing (disk full?)", db_out));
      }
      written += output.pos;
      if (written > manifest.db_bytes) {
        broken = fmt::format("it holds more than the {} bytes its manifest says", manifest.db_bytes);
        break;
      }
    }
    if (progress != nullptr) progress->Advance(n);
  }
  std::string digest = sha.HexDigest();
  if (digest != manifest.sha256 || read != manifest.object_bytes) {
    return fail(
        Status::Corruption(fmt::format("{} is damaged: the downloaded object has {} bytes with SHA-256 {}, "
                                       "its manifest says {} bytes with {}; it "
                                       "was not used",
                                       what, read, digest, manifest.object_bytes, manifest.sha256)));
  }
  if (!broken.empty()) return fail(Status::Corruption(fmt::format("{} is damaged: {}", what, broken)));
  if (pending != 0 || written != manifest.db_bytes) {
    return fail(Status::Corruption(
        fmt::format("{} is damaged: it ends early ({} of {} bytes)", what, written, manifest.db_bytes)));
  }
  if (std::fflush(out.get()) != 0) return fail(FileError("writing (disk full?)", db_out));
  return Status();
}

}  // namespace marmot
