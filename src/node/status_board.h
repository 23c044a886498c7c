// StatusBoard: the cluster's status, one entry per running node, in the NATS KV bucket
// "<stream_prefix>-status" (docs/OPERATIONS.md, "Cluster status").
//
// Every node puts its heartbeat (a JSON object: node id, instance, host, version, readiness and
// reasons, per-stream positions and lag, pending changes, dead letters, gaps, last error) under
// key "<node_id>-<instance>" every few seconds. The bucket's entries expire kTtl after their last
// write, so a node that stopped or died drops out by itself. `marmot status` and the status page
// read every entry.
//
// Thread safety: Publish and ReadAll may be called from several threads (nats.c's KV is).
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stream/nats_handles.h"
#include "util/status.h"

namespace marmot {

class NatsClient;

class StatusBoard {
 public:
  static constexpr std::chrono::seconds kTtl{30};

  // The bucket name for `stream_prefix`.
  static std::string Bucket(const std::string& stream_prefix) { return stream_prefix + "-status"; }

  // Opens the bucket; `create` makes it when missing (nodes), otherwise a missing bucket is
  // kNotFound (`marmot status` before any node ran).
  static Result<std::unique_ptr<StatusBoard>> Open(NatsClient* client, const std::string& bucket,
                                                   int replicas, bool create);

  Status Publish(const std::string& key, const nlohmann::json& heartbeat);
  // Every node's latest heartbeat, ordered by key.
  Result<std::vector<nlohmann::json>> ReadAll();

 private:
  StatusBoard(KvStorePtr kv, std::string bucket) : kv_(std::move(kv)), bucket_(std::move(bucket)) {}
  KvStorePtr kv_;
  std::string bucket_;
};

}  // namespace marmot
