// OpenSnapshotStore: the store that [snapshot] store names, built from its [snapshot.*] section.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "snapshot/snapshot_store.h"
#include "util/status.h"

namespace marmot {

class NatsClient;

// `nats_bucket` is the object store bucket for store = "nats" (SnapshotBucket(config)); `client`
// is needed only for that store.
Result<std::unique_ptr<SnapshotStore>> OpenSnapshotStore(const SnapshotConfig& config,
                                                         const std::string& nats_bucket, NatsClient* client);

}  // namespace marmot
