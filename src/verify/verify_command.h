// `marmot verify [-repair -from N]`: asks every running node for table digests and prints
// whether they agree (docs/VERIFY.md).
//
// The nodes answer over NATS (verify_protocol.h). Digests are compared at one point of every
// shard stream, also while the writers go on: the command tells the nodes to expect a session,
// publishes a barrier message into each shard stream, and every node takes its digests when its
// consumers have applied the barriers (and waits there meanwhile). Rows a node wrote that may
// reach the streams only after the barriers are named by that node and left out on every node.
// For a table that differs it compares the nodes' buckets, then the rows of the buckets that
// differ, and prints the keys whose rows differ. With `repair_from`, node N logs each differing
// key as changed, so its publisher sends its version of the row (or a delete where it has none)
// through the streams; the command then verifies again, once those rows are in the streams.
//
// Exit codes: 0 every table agrees on every node; 1 some differ; 2 the nodes could not be asked
// (NATS unreachable, no answer, fewer nodes than `expected_nodes`, a node not at the barriers
// within `wait`).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "stream/nats_client.h"
#include "stream/streams.h"

namespace marmot {

struct VerifyOptions {
  NatsClientOptions nats;               // where the nodes' NATS is (urls must not be empty)
  StreamLayout layout;                  // the streams the nodes apply, and the verify subject's prefix
  size_t expected_nodes = 0;            // 0: whoever answers
  std::chrono::seconds wait{60};        // how long the nodes may take to reach the barriers
  std::optional<uint64_t> repair_from;  // -repair -from N
  size_t max_keys_shown = 20;           // per table
};

inline constexpr int kVerifyAgree = 0;
inline constexpr int kVerifyDiffer = 1;
inline constexpr int kVerifyCannotAsk = 2;

// Runs the command, printing the report on stdout and problems on stderr; returns the exit code.
int RunVerify(const VerifyOptions& options);

}  // namespace marmot
