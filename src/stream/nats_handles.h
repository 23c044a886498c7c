// Owning handles for nats.c objects: std::unique_ptr with the library's own destroy function as
// deleter, so a handle is freed exactly once on every path and cannot be copied by accident.
//
//   natsMsg* raw = nullptr;
//   if (natsMsg_Create(&raw, subject, nullptr, data, len) != NATS_OK) return ...;
//   NatsMsgPtr msg(raw);
//
// nats.c functions return objects through an out-parameter (T**): receive into a raw pointer,
// then wrap it at once, before anything can return early. Ownership rules are nats.c's: a natsMsg
// handed to a call that takes ownership of it must be release()d, not destroyed.
//
// natsMsgList is a struct held by value (an array of natsMsg* and a count) that nats.c fills
// (js_Fetch): NatsMsgList owns one and calls natsMsgList_Destroy, which destroys every message
// still in it.
//
// natsConnection is not here on purpose: closing it must wait for nats.c's closed callback before
// the memory the callbacks use goes away (NatsClient does that).
//
// Thread safety: as the wrapped objects (see nats.c); the wrappers add no state.
#pragma once

#include <nats/nats.h>

#include <memory>
#include <utility>

namespace marmot {

// Calls `Destroy` on a non-null pointer (std::unique_ptr never calls a deleter with null).
template <auto Destroy>
struct NatsDeleter {
  template <typename T>
  void operator()(T* p) const {
    Destroy(p);
  }
};

using NatsOptionsPtr = std::unique_ptr<natsOptions, NatsDeleter<natsOptions_Destroy>>;
using NatsMsgPtr = std::unique_ptr<natsMsg, NatsDeleter<natsMsg_Destroy>>;
using NatsSubscriptionPtr = std::unique_ptr<natsSubscription, NatsDeleter<natsSubscription_Destroy>>;
using JsCtxPtr = std::unique_ptr<jsCtx, NatsDeleter<jsCtx_Destroy>>;
using JsStreamInfoPtr = std::unique_ptr<jsStreamInfo, NatsDeleter<jsStreamInfo_Destroy>>;
using JsConsumerInfoPtr = std::unique_ptr<jsConsumerInfo, NatsDeleter<jsConsumerInfo_Destroy>>;
using JsAccountInfoPtr = std::unique_ptr<jsAccountInfo, NatsDeleter<jsAccountInfo_Destroy>>;
using JsPubAckPtr = std::unique_ptr<jsPubAck, NatsDeleter<jsPubAck_Destroy>>;
using JsMsgMetaDataPtr = std::unique_ptr<jsMsgMetaData, NatsDeleter<jsMsgMetaData_Destroy>>;
using KvStorePtr = std::unique_ptr<kvStore, NatsDeleter<kvStore_Destroy>>;
using KvEntryPtr = std::unique_ptr<kvEntry, NatsDeleter<kvEntry_Destroy>>;
using NatsStatisticsPtr = std::unique_ptr<natsStatistics, NatsDeleter<natsStatistics_Destroy>>;

// Owns a natsMsgList and the messages in it. Move-only.
class NatsMsgList {
 public:
  NatsMsgList() = default;
  ~NatsMsgList() { Clear(); }
  NatsMsgList(NatsMsgList&& other) noexcept : list_(std::exchange(other.list_, natsMsgList{})) {}
  NatsMsgList& operator=(NatsMsgList&& other) noexcept {
    if (this != &other) {
      Clear();
      list_ = std::exchange(other.list_, natsMsgList{});
    }
    return *this;
  }
  NatsMsgList(const NatsMsgList&) = delete;
  NatsMsgList& operator=(const NatsMsgList&) = delete;

  // Destroys the messages still held and empties the list.
  void Clear() {
    natsMsgList_Destroy(&list_);
    list_ = natsMsgList{};
  }

  // Empties the list and returns it for a nats.c call to fill (js_Fetch(list.ResetForFill(), ...));
  // filling a non-empty list would leak its messages.
  natsMsgList* ResetForFill() {
    Clear();
    return &list_;
  }

  int size() const { return list_.Count; }
  bool empty() const { return list_.Count == 0; }
  // Message `i` (0 <= i < size()), still owned by the list; null once released.
  natsMsg* operator[](int i) const { return list_.Msgs[i]; }
  // Takes message `i` out of the list: the caller owns it, the list keeps a null in its place
  // (natsMsgList_Destroy skips nulls).
  NatsMsgPtr Release(int i) { return NatsMsgPtr(std::exchange(list_.Msgs[i], nullptr)); }

 private:
  natsMsgList list_{};
};

}  // namespace marmot
