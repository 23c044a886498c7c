// The snapshot scenario of marmot_bench (issue #9): saving and restoring a large database, in
// process and with the real marmot binary against an external nats-server, each against a
// baseline of the same run on the same database (VACUUM INTO for saving, a file copy for
// restoring and for a new node's bootstrap).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cluster_bench.h"

namespace marmot::bench {

struct SnapshotBenchOptions {
  std::string marmot_binary;
  int runs = 2;
  int64_t database_mib = 1024;  // size of the generated database
};

// Generates one database of `database_mib` MiB (an items table with text and numbers and an
// index, marmot's capture installed and a stream position, as on a node), then per run:
//   baselines  VACUUM INTO of it, and std::filesystem::copy_file of it;
//   save       WriteSnapshotFile in process (ratio to VACUUM INTO) and the compression ratio;
//   restore    UnpackSnapshotFile + PrepareSnapshotForRestore + RestoreDatabase into a copy of
//              the database (ratio to the file copy);
//   marmot     `marmot -save-snapshot` into a NATS object store (wall time including the upload,
//              ratio to VACUUM INTO, peak RSS), then a new node with an empty database file
//              started until its log says "restored snapshot" (ratio to the file copy, peak RSS);
//              the restored database must hold every row.
void SnapshotSaveRestore(const SnapshotBenchOptions& options, std::vector<Figure>* out);

// Fills `path` with items (text, numbers, an index) until the file reaches `mib` MiB, then installs
// marmot's capture and records a stream position, as on a node. The same rows every time. Returns
// the number of rows.
int64_t GenerateDatabase(const std::string& path, int64_t mib);

}  // namespace marmot::bench
