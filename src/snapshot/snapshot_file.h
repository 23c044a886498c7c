// Snapshot files on the local disk: making one from the live database, and turning a downloaded
// one back into a database file. Memory stays flat whatever the database size: everything is
// streamed in 1 MiB pieces.
//
// WriteSnapshotFile
//   1. copies the database with SQLite's backup API in one step: one read transaction, so the
//      copy is consistent and holds exactly the stream positions its rows reflect (they live in
//      __marmot__positions, written in the apply transactions); in WAL mode the application's
//      writers are not blocked;
//   2. removes marmot's capture objects from the copy (triggers, change log, state, dead letters,
//      gaps: all node-local) and keeps the positions, with secure_delete on so the freed pages are
//      zeros and compress to nothing;
//   3. counts each table's rows (for the manifest) and compresses the copy with zstd into
//      ID.db.zst (one frame with a content checksum), hashing the compressed bytes with SHA-256
//      as they are written.
//
// UnpackSnapshotFile reverses step 3: it decompresses while hashing what it reads, and rejects
// (kCorruption, deleting the output) an object whose SHA-256 or size differs from the manifest.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "snapshot/manifest.h"
#include "snapshot/snapshot_store.h"
#include "util/status.h"

namespace marmot {

struct LocalSnapshot {
  SnapshotManifest manifest;
  std::string data_path;  // ID.db.zst in the work directory
};

// Writes the snapshot of `db_path` into `work_dir` (which must exist). `progress` (may be null)
// is told the bytes compressed.
Result<LocalSnapshot> WriteSnapshotFile(const std::string& db_path, const std::string& work_dir,
                                        uint64_t node_id, ProgressSink* progress);

// Decompresses `object_path` (the downloaded data object of `manifest`) into `db_out`, checking
// the SHA-256 and sizes against the manifest.
Status UnpackSnapshotFile(const std::string& object_path, const SnapshotManifest& manifest,
                          const std::string& db_out, ProgressSink* progress);

}  // namespace marmot
