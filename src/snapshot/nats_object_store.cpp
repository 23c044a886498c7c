#include "snapshot/nats_object_store.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <vector>

#include "snapshot/nats_object_info.h"
#include "stream/nats_client.h"
#include "stream/nats_handles.h"
#include "telemetry/logging.h"
#include "util/local_file.h"
#include "util/sha256.h"

namespace marmot {
namespace {

constexpr size_t kChunkSize = size_t{128} * 1024;  // the official clients' default chunk size
constexpr int64_t kChunksInFlight = 16;            // unacknowledged chunks during an upload: 2 MiB
constexpr int64_t kRequestWaitMs = 5000;           // one JetStream API request or publish acknowledgment
constexpr int64_t kChunkWaitMs = 30000;            // the next chunk of a download
constexpr jsErrCode kNoJsError = static_cast<jsErrCode>(0);

// A fresh NUID from nats.c, whose only public NUID source is a new inbox "_INBOX.<nuid>".
std::string NewNuid() {
  natsInbox* inbox = nullptr;
  if (natsInbox_Create(&inbox) != NATS_OK)
    return std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  std::string text(inbox);
  natsInbox_Destroy(inbox);
  return text.substr(text.rfind('.') + 1);
}

// Records the first failed acknowledgment of an asynchronous chunk publish; nats.c calls OnError
// from its own thread.
struct ChunkAckErrors {
  std::mutex mu;
  natsStatus status = NATS_OK;
  jsErrCode code = kNoJsError;
  std::string text;

  static void OnError(jsCtx*, jsPubAckErr* pae, void* closure) {
    auto* self = static_cast<ChunkAckErrors*>(closure);
    std::lock_guard<std::mutex> lock(self->mu);
    if (self->status != NATS_OK) return;
    self->status = pae->Err != NATS_OK ? pae->Err : NATS_ERR;
    self->code = pae->ErrCode;
    self->text = pae->ErrText ? pae->ErrText : natsStatus_GetText(self->status);
  }
  bool Failed() {
    std::lock_guard<std::mutex> lock(mu);
    return status != NATS_OK;
  }
};

// Subjects of a stream with the number of messages on each.
using SubjectCounts = std::vector<std::pair<std::string, uint64_t>>;

class NatsObjectStore final : public SnapshotStore {
 public:
  NatsObjectStore(natsConnection* nc, JsCtxPtr js, const std::string& bucket)
      : nc_(nc), js_(std::move(js)), bucket_(bucket), stream_("OBJ_" + bucket) {
    char url[256] = {0};
    natsConnection_GetConnectedUrl(nc_, url, sizeof url);
    describe_ = "nats object store bucket \"" + bucket_ + "\"" + (*url ? " at " + RedactUrl(url) : "");
  }

  std::string Describe() const override { return describe_; }
  Status Put(const std::string& name, const std::string& local_path, ProgressSink* progress) override;
  Status Get(const std::string& name, const std::string& local_path, ProgressSink* progress) override;
  Result<std::vector<StoredObject>> List() override;
  Status Remove(const std::string& name) override;

  // Creates the bucket's stream when missing; checks that an existing one is an object store.
  Status EnsureStream(int replicas);

 private:
  std::string MetaSubject(const std::string& name) const {
    return "$O." + bucket_ + ".M." + Base64UrlPadded(name);
  }
  std::string ChunkSubject(const std::string& nuid) const { return "$O." + bucket_ + ".C." + nuid; }

  // The newest meta on `subject`; nullopt when there is none.
  Result<std::optional<ObjectInfo>> ReadInfo(const std::string& subject, const std::string& what);
  // Stored subjects matching `filter`, with their message counts.
  Result<SubjectCounts> Subjects(const std::string& filter, const std::string& what);
  Status SendChunks(std::FILE* file, ObjectInfo* info, ProgressSink* progress, const std::string& what);
  Status ReceiveChunks(const ObjectInfo& info, std::FILE* file, Sha256* sha, ProgressSink* progress,
                       const std::string& what);
  Status PublishMeta(const ObjectInfo& info, const std::string& what);
  Status PurgeChunks(const std::string& nuid, const std::string& what);
  // A failed Status "<what>: <cause in plain words>" for a nats.c or JetStream error.
  Status Failure(natsStatus s, jsErrCode code, const std::string& what, std::string detail = "") const;

  natsConnection* nc_;  // owned by the NatsClient
  JsCtxPtr js_;         // API requests wait kRequestWaitMs
  std::string bucket_, stream_, describe_;
};

Status NatsObjectStore::Failure(natsStatus s, jsErrCode code, const std::string& what,
                                std::string detail) const {
  if (detail.empty()) detail = NatsError(s);
  switch (code) {
    case JSStreamNotFoundErr:
      return Status::NotFound(what + ": no such bucket (stream " + stream_ + " does not exist)");
    case JSInsufficientResourcesErr:
    case JSStorageResourcesExceededErr:
    case JSStreamStoreFailedErr:
    case JSStreamLimitsErr:
      return Status::Error(
          what + ": the NATS server cannot store it (disk full or JetStream storage limit): " + detail);
    case JSStreamReplicasNotSupportedErr:
    case JSClusterNoPeersErr:
      return Status::InvalidArgument(what +
                                     ": not enough NATS servers for the replicas asked for: " + detail);
    default:
      break;
  }
  Status mapped = NatsStatus(s, what);
  if (mapped.Is(StatusCode::kUnavailable)) {
    return Status::Unavailable(what + ": NATS JetStream unreachable or not answering (" + detail + ")");
  }
  return Status::Error(mapped.code(), what + ": " + detail);
}

Status NatsObjectStore::EnsureStream(int replicas) {
  const std::string what = Describe() + ": opening the bucket";
  jsStreamInfo* raw = nullptr;
  jsErrCode code = kNoJsError;
  natsStatus s = js_GetStreamInfo(&raw, js_.get(), stream_.c_str(), nullptr, &code);
  JsStreamInfoPtr info(raw);
  const std::string chunks = "$O." + bucket_ + ".C.>", metas = "$O." + bucket_ + ".M.>";
  if (s == NATS_OK) {
    bool has_chunks = false, has_metas = false;
    for (int i = 0; i < info->Config->SubjectsLen; ++i) {
      has_chunks |= chunks == info->Config->Subjects[i];
      has_metas |= metas == info->Config->Subjects[i];
    }
    if (has_chunks && has_metas && info->Config->AllowRollup) return Status();
    return Status::InvalidArgument(what + ": stream " + stream_ +
                                   " exists but is not an object store bucket (" + "it needs subjects " +
                                   chunks + " and " + metas + " and rollup headers allowed)");
  }
  if (s != NATS_NOT_FOUND && code != JSStreamNotFoundErr) return Failure(s, code, what);

  const char* subjects[] = {chunks.c_str(), metas.c_str()};
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = stream_.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 2;
  cfg.Storage = js_FileStorage;
  cfg.Retention = js_LimitsPolicy;
  cfg.Discard = js_DiscardNew;  // a full bucket refuses new chunks rather than dropping old ones
  cfg.AllowRollup = true;
  cfg.AllowDirect = true;
  cfg.Replicas = replicas;
  raw = nullptr;
  s = js_AddStream(&raw, js_.get(), &cfg, nullptr, &code);
  JsStreamInfoPtr created(raw);
  if (s != NATS_OK && code != JSStreamNameExistErr) {
    return Failure(
        s, code, what + ": creating stream " + stream_ + " with " + std::to_string(replicas) + " replica(s)");
  }
  spdlog::info("created {} (stream {}, {} replica(s))", Describe(), stream_, replicas);
  return Status();
}

Result<std::optional<ObjectInfo>> NatsObjectStore::ReadInfo(const std::string& subject,
                                                            const std::string& what) {
  natsMsg* raw = nullptr;
  jsErrCode code = kNoJsError;
  natsStatus s = js_GetLastMsg(&raw, js_.get(), stream_.c_str(), subject.c_str(), nullptr, &code);
  NatsMsgPtr msg(raw);
  if (s == NATS_NOT_FOUND && code != JSStreamNotFoundErr) return std::optional<ObjectInfo>();
  if (s != NATS_OK) return Failure(s, code, what + ": reading the object's meta (" + subject + ")");
  std::optional<ObjectInfo> info = ParseObjectInfo(
      std::string_view(natsMsg_GetData(msg.get()), static_cast<size_t>(natsMsg_GetDataLength(msg.get()))));
  if (!info) return Status::Corruption(what + ": the meta on " + subject + " is not object store JSON");
  return info;
}

Result<SubjectCounts> NatsObjectStore::Subjects(const std::string& filter, const std::string& what) {
  jsOptions o;
  jsOptions_Init(&o);
  o.Stream.Info.SubjectsFilter = filter.c_str();
  jsStreamInfo* raw = nullptr;
  jsErrCode code = kNoJsError;
  natsStatus s = js_GetStreamInfo(&raw, js_.get(), stream_.c_str(), &o, &code);
  JsStreamInfoPtr info(raw);
  if (s != NATS_OK) return Failure(s, code, what + ": listing subjects " + filter);
  SubjectCounts subjects;
  if (const jsStreamStateSubjects* list = info->State.Subjects) {
    for (int i = 0; i < list->Count; ++i) subjects.emplace_back(list->List[i].Subject, list->List[i].Msgs);
  }
  return subjects;
}

Status NatsObjectStore::Put(const std::string& name, const std::string& local_path, ProgressSink* progress) {
  const std::string what = Describe() + ": uploading object \"" + name + "\" from " + local_path;
  Result<FilePtr> opened = OpenLocalFile(local_path, what);
  if (!opened.ok()) return opened.status();
  FilePtr file = std::move(*opened);
  Result<std::optional<ObjectInfo>> previous = ReadInfo(MetaSubject(name), what);
  if (previous.status().Is(StatusCode::kCorruption)) {  // replaced below; its chunks are unknown
    spdlog::warn("{}", previous.status().message());
    previous = std::optional<ObjectInfo>();
  }
  MARMOT_RETURN_IF_ERROR(previous.status());

  ObjectInfo info;
  info.name = name;
  info.bucket = bucket_;
  info.nuid = NewNuid();
  info.max_chunk_size = kChunkSize;
  Status stored = SendChunks(file.get(), &info, progress, what);
  if (stored.ok()) stored = PublishMeta(info, what);
  if (!stored.ok()) {
    Status purged = PurgeChunks(info.nuid, what + ": removing the chunks of the failed upload");
    if (!purged.ok()) spdlog::warn("{}", purged.message());
    return stored;
  }
  if (*previous && !(*previous)->deleted && (*previous)->nuid != info.nuid) {
    Status purged = PurgeChunks((*previous)->nuid, what + ": removing the replaced object's chunks");
    if (!purged.ok())
      spdlog::warn("{} (the new object is stored; the old chunks take space until purged)", purged.message());
  }
  return Status();
}

Status NatsObjectStore::SendChunks(std::FILE* file, ObjectInfo* info, ProgressSink* progress,
                                   const std::string& what) {
  // Our own JetStream context: its error handler and in-flight limit belong to this upload.
  auto errors = std::make_unique<ChunkAckErrors>();
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = kRequestWaitMs;
  o.PublishAsync.MaxPending = kChunksInFlight;  // js_PublishAsync blocks while this many wait
  o.PublishAsync.StallWait = kRequestWaitMs;
  o.PublishAsync.ErrHandler = &ChunkAckErrors::OnError;
  o.PublishAsync.ErrHandlerClosure = errors.get();
  jsCtx* raw = nullptr;
  natsStatus s = natsConnection_JetStream(&raw, nc_, &o);
  JsCtxPtr js(raw);
  if (s != NATS_OK) return Failure(s, kNoJsError, what + ": JetStream context");

  const std::string subject = ChunkSubject(info->nuid);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = kRequestWaitMs;  // an acknowledgment that does not come reports a timeout
  po.ExpectStream = stream_.c_str();
  std::vector<char> chunk(kChunkSize);
  Sha256 sha;
  Status result;
  while (result.ok() && !errors->Failed()) {
    size_t n = std::fread(chunk.data(), 1, chunk.size(), file);
    if (n == 0) {
      if (std::ferror(file)) result = Status::IoError(what + ": reading the file: " + std::strerror(errno));
      break;
    }
    sha.Update(chunk.data(), n);
    s = js_PublishAsync(js.get(), subject.c_str(), chunk.data(), static_cast<int>(n), &po);
    if (s != NATS_OK) {
      result = Failure(s, kNoJsError, what + ": sending chunk " + std::to_string(info->chunks + 1));
      break;
    }
    info->chunks++;
    info->size += n;
    if (progress) progress->Advance(n);
  }

  jsPubOptions wait;
  jsPubOptions_Init(&wait);
  wait.MaxWait = 2 * kRequestWaitMs;
  s = js_PublishAsyncComplete(js.get(), &wait);
  if (s != NATS_OK) {
    // Acknowledgments may still arrive: drop the pending messages, and keep `errors` alive (a few
    // bytes leaked on this rare path) since a late callback may still write to it.
    natsMsgList pending{};
    if (js_PublishAsyncGetPendingList(&pending, js.get()) == NATS_OK) natsMsgList_Destroy(&pending);
    (void)errors.release();
    return result.ok() ? Failure(s, kNoJsError, what + ": waiting for the chunks to be stored") : result;
  }
  if (!result.ok()) return result;
  if (errors->Failed())
    return Failure(errors->status, errors->code, what + ": storing a chunk", errors->text);
  info->digest = "SHA-256=" + Base64UrlPadded(sha.Digest());
  return Status();
}

Status NatsObjectStore::PublishMeta(const ObjectInfo& info, const std::string& what) {
  const std::string subject = MetaSubject(info.name);
  const std::string json = ObjectInfoJson(info);
  natsMsg* raw = nullptr;
  natsStatus s = natsMsg_Create(&raw, subject.c_str(), nullptr, json.data(), static_cast<int>(json.size()));
  NatsMsgPtr msg(raw);
  // Rollup: the stream keeps only this newest meta of the name.
  if (s == NATS_OK) s = natsMsgHeader_Set(msg.get(), "Nats-Rollup", "sub");
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.ExpectStream = stream_.c_str();
  jsPubAck* ack = nullptr;
  jsErrCode code = kNoJsError;
  if (s == NATS_OK) s = js_PublishMsg(&ack, js_.get(), msg.get(), &po, &code);
  JsPubAckPtr ack_owner(ack);
  if (s != NATS_OK) return Failure(s, code, what + ": storing the object's meta");
  return Status();
}

Status NatsObjectStore::PurgeChunks(const std::string& nuid, const std::string& what) {
  const std::string subject = ChunkSubject(nuid);
  jsOptions o;
  jsOptions_Init(&o);
  o.Stream.Purge.Subject = subject.c_str();
  jsErrCode code = kNoJsError;
  natsStatus s = js_PurgeStream(js_.get(), stream_.c_str(), &o, &code);
  return s == NATS_OK ? Status() : Failure(s, code, what + " (" + subject + ")");
}

Status NatsObjectStore::Get(const std::string& name, const std::string& local_path, ProgressSink* progress) {
  const std::string what = Describe() + ": downloading object \"" + name + "\" to " + local_path;
  Result<std::optional<ObjectInfo>> info = ReadInfo(MetaSubject(name), what);
  MARMOT_RETURN_IF_ERROR(info.status());
  if (!*info || (*info)->deleted) return Status::NotFound(what + ": no such object");
  std::optional<std::string> expected = DecodeSha256Digest((*info)->digest);
  if (!expected)
    return Status::Corruption(what + ": the meta has no valid SHA-256 digest (\"" + (*info)->digest + "\")");

  Result<FilePtr> file = CreateLocalFile(local_path, what);
  if (!file.ok()) return file.status();
  Sha256 sha;
  MARMOT_RETURN_IF_ERROR(ReceiveChunks(**info, file->get(), &sha, progress, what));
  MARMOT_RETURN_IF_ERROR(CloseLocalFile(std::move(*file), local_path, what));
  if (sha.Digest() != *expected) {
    return Status::Corruption(what + ": SHA-256 digest mismatch: the object is damaged (meta says " +
                              (*info)->digest + ")");
  }
  return Status();
}

Status NatsObjectStore::ReceiveChunks(const ObjectInfo& info, std::FILE* file, Sha256* sha,
                                      ProgressSink* progress, const std::string& what) {
  const std::string subject = ChunkSubject(info.nuid);
  uint64_t received = 0;
  if (info.chunks > 0) {
    // Count first: a consumer on missing chunks would wait for them instead of failing.
    Result<SubjectCounts> stored = Subjects(subject, what);
    MARMOT_RETURN_IF_ERROR(stored.status());
    uint64_t have = stored->empty() ? 0 : stored->front().second;
    if (have < info.chunks) {
      return Status::Corruption(what + ": only " + std::to_string(have) + " of the object's " +
                                std::to_string(info.chunks) + " chunks are stored");
    }
    // An ordered consumer: flow-controlled by the server, so only a window of chunks is buffered.
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream_.c_str();
    so.Ordered = true;
    natsSubscription* raw = nullptr;
    jsErrCode code = kNoJsError;
    natsStatus s = js_SubscribeSync(&raw, js_.get(), subject.c_str(), nullptr, &so, &code);
    if (s != NATS_OK) return Failure(s, code, what + ": subscribing to " + subject);
    ClosingSubscription sub(nc_, raw);  // closed safely after the last chunk (nats_client.h)
    Status result;
    for (uint64_t i = 1; i <= info.chunks && result.ok(); ++i) {
      natsMsg* m = nullptr;
      s = natsSubscription_NextMsg(&m, sub.get(), kChunkWaitMs);
      NatsMsgPtr msg(m);
      if (s != NATS_OK) {
        result =
            Failure(s, kNoJsError,
                    what + ": receiving chunk " + std::to_string(i) + " of " + std::to_string(info.chunks));
        break;
      }
      size_t len = static_cast<size_t>(natsMsg_GetDataLength(msg.get()));
      received += len;
      if (received > info.size) {
        result = Status::Corruption(what + ": the chunks hold more than the " + std::to_string(info.size) +
                                    " bytes the meta says");
      } else if (std::fwrite(natsMsg_GetData(msg.get()), 1, len, file) != len) {
        result = Status::IoError(what + ": writing the file: " + std::strerror(errno));
      } else {
        sha->Update(natsMsg_GetData(msg.get()), len);
        if (progress) progress->Advance(len);
      }
    }
    sub.Close();
    MARMOT_RETURN_IF_ERROR(result);
  }
  if (received != info.size) {
    return Status::Corruption(what + ": got " + std::to_string(received) + " bytes, the meta says " +
                              std::to_string(info.size));
  }
  return Status();
}

Result<std::vector<StoredObject>> NatsObjectStore::List() {
  const std::string what = Describe() + ": listing objects";
  Result<SubjectCounts> subjects = Subjects("$O." + bucket_ + ".M.>", what);
  MARMOT_RETURN_IF_ERROR(subjects.status());
  std::vector<StoredObject> objects;
  for (const auto& [subject, count] : *subjects) {
    Result<std::optional<ObjectInfo>> info = ReadInfo(subject, what);
    if (!info.ok() && info.status().Is(StatusCode::kCorruption)) {
      spdlog::warn("{} (skipped)", info.status().message());  // not ours to judge; list the rest
      continue;
    }
    MARMOT_RETURN_IF_ERROR(info.status());
    if (*info && !(*info)->deleted) objects.push_back(StoredObject{(*info)->name, (*info)->size});
  }
  return objects;
}

Status NatsObjectStore::Remove(const std::string& name) {
  const std::string what = Describe() + ": removing object \"" + name + "\"";
  Result<std::optional<ObjectInfo>> info = ReadInfo(MetaSubject(name), what);
  ObjectInfo gone;
  if (info.status().Is(StatusCode::kCorruption)) {  // an unreadable meta: replace it, chunks unknown
    spdlog::warn("{}", info.status().message());
    gone.name = name;
    gone.bucket = bucket_;
  } else {
    MARMOT_RETURN_IF_ERROR(info.status());
    if (!*info || (*info)->deleted) return Status();
    gone = **info;
  }
  // The deleted meta first: from then on the object is gone for every reader, chunks or not.
  gone.deleted = true;
  gone.size = 0;
  gone.chunks = 0;
  gone.digest.clear();
  MARMOT_RETURN_IF_ERROR(PublishMeta(gone, what));
  return gone.nuid.empty() ? Status() : PurgeChunks(gone.nuid, what + ": purging its chunks");
}

}  // namespace

Result<std::unique_ptr<SnapshotStore>> OpenNatsObjectStore(NatsClient* client, const std::string& bucket,
                                                           int replicas) {
  const std::string what = "nats object store bucket \"" + bucket + "\": opening";
  static const char kBucketChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
  if (bucket.empty() || bucket.find_first_not_of(kBucketChars) != std::string::npos) {
    return Status::InvalidArgument(what + ": a bucket name may hold only letters, digits, '-' and '_'");
  }
  if (replicas < 1 || replicas > 5) {
    return Status::InvalidArgument(what + ": replicas must be 1 to 5, not " + std::to_string(replicas));
  }
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = kRequestWaitMs;
  jsCtx* raw = nullptr;
  natsStatus s = natsConnection_JetStream(&raw, client->connection(), &o);
  JsCtxPtr js(raw);
  if (s != NATS_OK) return NatsStatus(s, what + ": JetStream context");
  auto store = std::make_unique<NatsObjectStore>(client->connection(), std::move(js), bucket);
  MARMOT_RETURN_IF_ERROR(store->EnsureStream(replicas));
  return std::unique_ptr<SnapshotStore>(std::move(store));
}

}  // namespace marmot
