// SnapshotKeeper: saves snapshots into a store and finds and fetches them again. It owns the store
// and the cluster-wide lease; the node decides when (node/snapshot_supervisor.h).
//
// Save: take the lease (another node saving now: skip), write the snapshot file
// (snapshot_file.h), upload the data object and then the manifest, check that the store lists
// both at their sizes, and only then delete the snapshots beyond the newest `keep` (manifest
// first, so a snapshot being deleted is never listed half gone). Temporary files live in
// `work_dir` and are removed after each step.
//
// Thread safety: one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "snapshot/lease.h"
#include "snapshot/manifest.h"
#include "snapshot/snapshot_store.h"
#include "util/status.h"

namespace marmot {

struct SnapshotKeeperOptions {
  std::string db_path;
  std::string work_dir;  // for temporary files; created when missing
  uint64_t node_id = 0;
  int keep = 3;  // snapshots kept in the store, >= 1
};

class SnapshotKeeper {
 public:
  // `lease` may be null (a store no other node uses, tests).
  SnapshotKeeper(std::unique_ptr<SnapshotStore> store, std::unique_ptr<SnapshotLease> lease,
                 SnapshotKeeperOptions options);

  enum class SaveOutcome { kSaved, kLeaseHeld };
  // Saves one snapshot (see the file comment). kLeaseHeld when another node is saving now.
  Result<SaveOutcome> Save(SnapshotManifest* saved = nullptr);

  // The newest complete snapshot, nullopt when the store has none.
  Result<std::optional<SnapshotManifest>> Newest();

  // Downloads the data object of `manifest`, checks it and decompresses it into work_dir; returns
  // the database file's path (delete with Discard when done).
  Result<std::string> Fetch(const SnapshotManifest& manifest);
  // Removes the temporary files of this keeper.
  void Discard();

  std::string Describe() const { return store_->Describe(); }
  SnapshotStore* store() { return store_.get(); }

 private:
  Status PrepareWorkDir();
  Status Upload(const SnapshotManifest& manifest, const std::string& data_path);
  Status Prune(const std::string& newest_id);

  std::unique_ptr<SnapshotStore> store_;
  std::unique_ptr<SnapshotLease> lease_;
  SnapshotKeeperOptions options_;
};

}  // namespace marmot
