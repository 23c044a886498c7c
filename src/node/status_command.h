// `marmot status`: the cluster as a table, from the heartbeats every running node puts into the
// status bucket (node/status_board.h; docs/OPERATIONS.md, "Cluster status"). Works from any
// machine that reaches the cluster's NATS with the nodes' configuration.
//
// Exit codes: 0 every node that reported is ready, 1 some node is not (the table says why),
// 2 NATS or the status bucket could not be read (no node has run yet).
#pragma once

#include <string>

#include "stream/nats_client.h"

namespace marmot {

inline constexpr int kStatusAllReady = 0;
inline constexpr int kStatusSomeNotReady = 1;
inline constexpr int kStatusCannotAsk = 2;

struct StatusCommand {
  NatsClientOptions nats;
  std::string stream_prefix = "marmot-changes";
};

int RunStatusCommand(const StatusCommand& command);

}  // namespace marmot
