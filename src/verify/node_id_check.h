// Warning about a second node with the same node_id (issue 10). Two nodes may share one: clones of
// a machine derive the default node_id from the same /etc/machine-id, and replication stays
// correct (message ids are unique per database incarnation; tests/e2e/message_id_test.sh), but
// logs and snapshot names cannot tell the two apart (`marmot verify` can: it labels the second
// "node N#2"). At start a node asks on the verify subject who is running ({"op":"whois"},
// verify_protocol.h) and logs a warning naming the other node when one has its id. Two nodes
// starting at the same moment can miss each other.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace marmot {

// The warning's text (naming the other node's database and host) when a node with `node_id`
// answers on `subject` within `window`; empty when none does or NATS cannot be asked.
std::string NodeIdInUse(natsConnection* connection, const std::string& subject, uint64_t node_id,
                        std::chrono::milliseconds window);

}  // namespace marmot
