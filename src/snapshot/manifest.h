// SnapshotManifest: the small JSON document stored next to each snapshot's data object. It says
// what the snapshot holds (stream positions, tables and row counts) and how to check it (size and
// SHA-256 of the stored object), so a node can decide whether a snapshot helps it before
// downloading gigabytes, and can reject a damaged download.
//
// A snapshot with id ID is two objects in the store:
//   ID.db.zst           the database (zstd, one frame with a content checksum)
//   ID.manifest.json    this manifest, written after the data object is complete
// IDs are "snapshot-<UTC time to the millisecond>-<node id in 16 hex digits>", so sorting IDs as
// strings sorts snapshots by age.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace marmot {

struct SnapshotPosition {
  std::string stream;
  uint64_t seq = 0;        // every message up to here is applied in the snapshot
  int64_t created_ns = 0;  // the stream's creation time as the node knew it (0: unknown)
};

struct SnapshotTable {
  std::string name;
  int64_t rows = 0;
};

struct SnapshotManifest {
  int format = 1;
  std::string id;
  uint64_t node_id = 0;
  int64_t created_unix_ms = 0;
  std::string marmot_version;
  int64_t page_size = 0;
  uint64_t db_bytes = 0;      // the database file inside the object
  uint64_t object_bytes = 0;  // the stored (compressed) object
  std::string sha256;         // of the stored object, 64 lowercase hex digits
  std::vector<SnapshotPosition> positions;
  std::vector<SnapshotTable> tables;

  std::string data_object() const { return id + ".db.zst"; }
  std::string manifest_object() const { return id + ".manifest.json"; }
  // The position of `stream`, 0 when the snapshot has none for it.
  uint64_t PositionOf(const std::string& stream) const;
};

inline constexpr char kManifestSuffix[] = ".manifest.json";

// "snapshot-20261129T143240123Z-00000000000000a1".
std::string NewSnapshotId(std::chrono::system_clock::time_point now, uint64_t node_id);

std::string ManifestToJson(const SnapshotManifest& manifest);
// Errors name `what` (the object it came from) and the bad field.
Result<SnapshotManifest> ManifestFromJson(const std::string& json, const std::string& what);

}  // namespace marmot
