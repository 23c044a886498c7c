// The verify scenario of marmot_bench (issue 10): what `marmot verify` costs a node. The digest of
// a large database (verify/table_digest.h, what each node computes) against a baseline of one
// full read of the same rows (every column of every row stepped through), in the same run.
#pragma once

#include <cstdint>
#include <vector>

#include "cluster_bench.h"

namespace marmot::bench {

struct VerifyBenchOptions {
  int runs = 3;
  int64_t database_mib = 1024;  // size of the generated database (GenerateDatabase)
};

// Per run: the full read (baseline), then DigestTable of the items table in one read transaction;
// the figure is their ratio (target: about 1x), plus the digest's throughput.
void VerifyDigest(const VerifyBenchOptions& options, std::vector<Figure>* out);

}  // namespace marmot::bench
