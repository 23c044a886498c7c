// SnapshotLease: makes sure that at most one node of the cluster saves a snapshot at a time.
//
// The lease is key "snapshot" in the KV bucket "<stream_prefix>-snapshot-lease" (created when
// missing, with the snapshot store's replica count). Taking it is an atomic create of the key
// (it fails while another node holds it); the holder renews it every few seconds while it saves,
// and deletes it when done. The bucket's entries expire kTtl after their last write, so a holder
// that died frees the lease by itself within kTtl.
//
//   Result<std::unique_ptr<SnapshotLease::Hold>> hold = lease->TryTake(node_id);
//   if (hold.ok() && *hold) { ...save...; }  // the Hold's destructor stops renewing and deletes
//
// Thread safety: TryTake from one thread; a Hold renews on its own thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "stream/nats_handles.h"
#include "util/status.h"

namespace marmot {

class NatsClient;

class SnapshotLease {
 public:
  static constexpr std::chrono::seconds kTtl{30};
  static constexpr std::chrono::seconds kRenewEvery{5};

  // Opens the bucket, creating it when missing.
  static Result<std::unique_ptr<SnapshotLease>> Open(NatsClient* client, const std::string& bucket,
                                                     int replicas);

  class Hold {
   public:
    Hold(kvStore* kv, uint64_t revision, std::string value);
    ~Hold();
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    void RenewLoop();
    kvStore* kv_;
    uint64_t revision_;
    std::string value_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread renewer_;
  };

  // Takes the lease for `node_id`: a Hold when taken, null when another node holds it (its
  // holder is logged at debug level), an error when NATS could not be asked.
  Result<std::unique_ptr<Hold>> TryTake(uint64_t node_id);

  const std::string& bucket() const { return bucket_; }

 private:
  SnapshotLease(KvStorePtr kv, std::string bucket) : kv_(std::move(kv)), bucket_(std::move(bucket)) {}
  KvStorePtr kv_;
  std::string bucket_;
};

}  // namespace marmot
