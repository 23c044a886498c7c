#include "node/status_board.h"

#include <algorithm>

#include "stream/nats_client.h"

namespace marmot {

Result<std::unique_ptr<StatusBoard>> StatusBoard::Open(NatsClient* client, const std::string& bucket,
                                                       int replicas, bool create) {
  kvConfig cfg;
  kvConfig_Init(&cfg);
  cfg.Bucket = bucket.c_str();
  cfg.Description = "marmot: every running node's status (heartbeats)";
  cfg.History = 1;
  cfg.TTL = std::chrono::duration_cast<std::chrono::nanoseconds>(kTtl).count();
  cfg.Replicas = replicas;
  cfg.StorageType = js_MemoryStorage;  // heartbeats are rewritten every few seconds
  Result<KvStorePtr> kv = OpenKeyValue(client->jetstream(), cfg, create, "the status bucket");
  if (!kv.ok()) return kv.status();
  return std::unique_ptr<StatusBoard>(new StatusBoard(std::move(*kv), bucket));
}

Status StatusBoard::Publish(const std::string& key, const nlohmann::json& heartbeat) {
  std::string value = heartbeat.dump();
  uint64_t revision = 0;
  natsStatus s = kvStore_Put(&revision, kv_.get(), key.c_str(), value.data(), static_cast<int>(value.size()));
  if (s != NATS_OK) return NatsStatus(s, "publishing this node's status to bucket " + bucket_);
  return Status();
}

Result<std::vector<nlohmann::json>> StatusBoard::ReadAll() {
  kvKeysList keys{};
  natsStatus s = kvStore_Keys(&keys, kv_.get(), nullptr);
  std::vector<std::string> names;
  if (s == NATS_OK) {
    for (int i = 0; i < keys.Count; ++i) names.emplace_back(keys.Keys[i]);
    kvKeysList_Destroy(&keys);
  } else if (s != NATS_NOT_FOUND) {  // not found: no keys
    return NatsStatus(s, "listing bucket " + bucket_);
  }
  std::sort(names.begin(), names.end());
  std::vector<nlohmann::json> out;
  for (const std::string& key : names) {
    kvEntry* raw = nullptr;
    s = kvStore_Get(&raw, kv_.get(), key.c_str());
    if (s == NATS_NOT_FOUND) continue;  // expired meanwhile
    if (s != NATS_OK) return NatsStatus(s, "reading key " + key + " of bucket " + bucket_);
    KvEntryPtr entry(raw);
    std::string_view value(static_cast<const char*>(kvEntry_Value(entry.get())),
                           static_cast<size_t>(kvEntry_ValueLen(entry.get())));
    nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

}  // namespace marmot
