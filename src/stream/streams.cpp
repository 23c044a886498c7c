#include "stream/streams.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "stream/nats_client.h"
#include "stream/nats_handles.h"

namespace marmot {

std::string StreamLayout::StreamName(int shard) const {
  return stream_prefix + (compress ? "-c-" : "-") + std::to_string(shard);
}

std::string StreamLayout::Subject(int shard) const { return subject_prefix + "-" + std::to_string(shard); }

namespace {

constexpr int64_t kDuplicateWindowNanos = 120LL * 1000 * 1000 * 1000;

// Fills `cfg` with marmot's settings for one shard. The strings must outlive the config.
void Configure(jsStreamConfig* cfg, const StreamLayout& layout, const std::string& name,
               const char** subject) {
  jsStreamConfig_Init(cfg);
  cfg->Name = name.c_str();
  cfg->Subjects = subject;
  cfg->SubjectsLen = 1;
  cfg->Storage = js_FileStorage;
  cfg->Retention = js_LimitsPolicy;
  cfg->Discard = js_DiscardOld;
  cfg->MaxMsgs = layout.max_entries;
  cfg->Replicas = layout.replicas;
  cfg->AllowDirect = true;
  cfg->DenyDelete = true;
  cfg->Duplicates = kDuplicateWindowNanos;
}

// Names of the settings of `have` that differ from `want`, empty when they match.
std::string Differences(const jsStreamConfig* have, const jsStreamConfig* want) {
  std::string diff;
  auto add = [&](const std::string& what) { diff += (diff.empty() ? "" : ", ") + what; };
  if (have->SubjectsLen != 1 || std::strcmp(have->Subjects[0], want->Subjects[0]) != 0) add("subjects");
  if (have->MaxMsgs != want->MaxMsgs)
    add("max messages " + std::to_string(have->MaxMsgs) + " (want " + std::to_string(want->MaxMsgs) + ")");
  if (have->Replicas != want->Replicas)
    add("replicas " + std::to_string(have->Replicas) + " (want " + std::to_string(want->Replicas) + ")");
  if (have->Storage != want->Storage) add("storage");
  if (have->Retention != want->Retention) add("retention");
  if (have->Discard != want->Discard) add("discard policy");
  return diff;
}

}  // namespace

Status EnsureStreams(jsCtx* js, const StreamLayout& layout) {
  for (int shard = 1; shard <= layout.shards + 1; ++shard) {
    bool schema = shard > layout.shards;
    std::string name = schema ? layout.SchemaStreamName() : layout.StreamName(shard);
    std::string subject = schema ? layout.SchemaSubject() : layout.Subject(shard);
    const char* subjects[] = {subject.c_str()};
    jsStreamConfig want;
    Configure(&want, layout, name, subjects);
    if (schema) want.MaxMsgs = -1;

    jsStreamInfo* raw = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&raw, js, name.c_str(), nullptr, &jerr);
    JsStreamInfoPtr info(raw);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
      raw = nullptr;
      s = js_AddStream(&raw, js, &want, nullptr, &jerr);
      JsStreamInfoPtr created(raw);
      if (s != NATS_OK) return NatsStatus(s, "creating stream " + name);
      spdlog::info("created stream {} (subject {}, {} replica(s), max {} messages)", name, subject,
                   layout.replicas, want.MaxMsgs);
      continue;
    }
    if (s != NATS_OK) return NatsStatus(s, "looking up stream " + name);
    std::string diff = Differences(info->Config, &want);
    if (diff.empty()) continue;
    if (!layout.update_existing) {
      return Status::InvalidArgument("stream " + name + " exists with different settings: " + diff +
                                     "; set [replication_log] update_existing = true to reconfigure it");
    }
    raw = nullptr;
    s = js_UpdateStream(&raw, js, &want, nullptr, &jerr);
    JsStreamInfoPtr updated(raw);
    if (s != NATS_OK) return NatsStatus(s, "updating stream " + name + " (" + diff + ")");
    spdlog::info("updated stream {}: {}", name, diff);
  }
  return Status();
}

}  // namespace marmot
