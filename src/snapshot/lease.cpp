#include "snapshot/lease.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "stream/nats_client.h"

namespace marmot {

namespace {
constexpr char kKey[] = "snapshot";
}

Result<std::unique_ptr<SnapshotLease>> SnapshotLease::Open(NatsClient* client, const std::string& bucket,
                                                           int replicas) {
  kvConfig cfg;
  kvConfig_Init(&cfg);
  cfg.Bucket = bucket.c_str();
  cfg.Description = "marmot: which node saves a snapshot now";
  cfg.History = 1;
  cfg.TTL = std::chrono::duration_cast<std::chrono::nanoseconds>(kTtl).count();
  cfg.Replicas = replicas;
  cfg.StorageType = js_FileStorage;
  Result<KvStorePtr> kv =
      OpenKeyValue(client->jetstream(), cfg, /*create=*/true, "the snapshot lease bucket");
  if (!kv.ok()) return kv.status();
  return std::unique_ptr<SnapshotLease>(new SnapshotLease(std::move(*kv), bucket));
}

Result<std::unique_ptr<SnapshotLease::Hold>> SnapshotLease::TryTake(uint64_t node_id) {
  std::string value = fmt::format("node {}", node_id);
  uint64_t revision = 0;
  natsStatus s = kvStore_Create(&revision, kv_.get(), kKey, value.data(), static_cast<int>(value.size()));
  if (s == NATS_OK) return std::make_unique<Hold>(kv_.get(), revision, std::move(value));
  // The create is refused when the key holds a value: another node saves now.
  kvEntry* raw = nullptr;
  natsStatus g = kvStore_Get(&raw, kv_.get(), kKey);
  KvEntryPtr entry(raw);
  if (g == NATS_OK) {
    spdlog::debug("snapshot lease in {} is held by {}", bucket_, kvEntry_ValueString(entry.get()));
    return std::unique_ptr<Hold>();
  }
  return NatsStatus(s, "taking the snapshot lease in bucket " + bucket_);
}

SnapshotLease::Hold::Hold(kvStore* kv, uint64_t revision, std::string value)
    : kv_(kv), revision_(revision), value_(std::move(value)), renewer_([this] { RenewLoop(); }) {}

SnapshotLease::Hold::~Hold() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  renewer_.join();
  natsStatus s = kvStore_Delete(kv_, kKey);
  if (s != NATS_OK) spdlog::warn("releasing the snapshot lease: {} (it expires by itself)", NatsError(s));
}

void SnapshotLease::Hold::RenewLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, kRenewEvery, [this] { return done_; })) {
    uint64_t revision = 0;
    natsStatus s =
        kvStore_Update(&revision, kv_, kKey, value_.data(), static_cast<int>(value_.size()), revision_);
    if (s == NATS_OK) {
      revision_ = revision;
    } else {
      spdlog::warn(
          "renewing the snapshot lease: {}; another node may start saving too (harmless: each snapshot "
          "has its own name)",
          NatsError(s));
    }
  }
}

}  // namespace marmot
