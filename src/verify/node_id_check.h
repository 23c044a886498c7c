// Refusing a second node with the same node_id (issue 10). Two running nodes with one id would
// publish under one name: snapshots, logs, `marmot verify` and the echo hint could not tell them
// apart. At start, before it replicates, a node asks on the verify subject who is running
// ({"op":"whois"}, verify_protocol.h) and refuses to start when a node with its id answers. Two
// nodes starting at the same moment can miss each other (neither answers yet); a restart after
// the old process is gone is never refused.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "util/status.h"

namespace marmot {

// Fails (kInvalidArgument, naming the other node's database and host) when a node with `node_id`
// answers on `subject` within `window`. A NATS problem is not a refusal: it is logged, and the
// start goes on.
Status CheckNodeIdFree(natsConnection* connection, const std::string& subject, uint64_t node_id,
                       std::chrono::milliseconds window);

}  // namespace marmot
