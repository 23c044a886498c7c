// RestoreDatabase: replaces the content of the live database with a snapshot's, through SQLite's
// backup API, while the application may keep the file open.
//
// The backup first takes the live database's write lock (waiting while the application holds it),
// then calls `under_write_lock`: the caller checks there that nothing was captured since it last
// published (no commit can slip in while the lock is held). Only then are pages copied; all of
// them go in one transaction, so a restore that fails half way (disk full, a crash) leaves the
// database as it was. Readers in WAL mode go on reading the old content until their read
// transaction ends; the schema cookie changes, so every connection re-reads the schema.
//
// PrepareSnapshotForRestore readies the snapshot file for the restore: it installs capture in it
// (so the application's first write after the restore is captured, before marmot re-installs
// capture on the live database), and carries this node's dead letters into it (a restore must not
// hide changes that could not be applied).
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "snapshot/snapshot_store.h"
#include "util/status.h"

namespace marmot {

Status PrepareSnapshotForRestore(const std::string& snapshot_db, const std::string& live_db);

// `progress` (may be null) is told the bytes copied. Waiting for the write lock ends (kBusy, nothing
// changed) after 5 minutes or when `stop` is set.
Status RestoreDatabase(const std::string& live_db, const std::string& snapshot_db,
                       const std::function<Status()>& under_write_lock, ProgressSink* progress,
                       const std::atomic<bool>& stop);

}  // namespace marmot
