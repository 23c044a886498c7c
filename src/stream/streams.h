// The JetStream layout marmot uses, identical to Marmot v0.8 so mixed tooling keeps working:
//
//   shard N (1-based) -> stream  <stream_prefix>-N    (<stream_prefix>-c-N when compressed)
//                        subject <subject_prefix>-N
//   file storage, limits retention, discard old, max messages = max_entries, direct get allowed,
//   message deletes denied, `replicas` copies, and a 2-minute duplicate window for Nats-Msg-Id.
//
// A row always goes to the same shard: ShardOf() takes the RowHash of the table name and the row's
// key (db/value.h, docs/PROTOCOL.md), so every change of one row is ordered by one stream on every
// node and platform.
#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <string>
#include <vector>

#include "db/value.h"
#include "util/status.h"

namespace marmot {

struct StreamLayout {
  std::string stream_prefix = "marmot-changes";
  std::string subject_prefix = "marmot-change-log";
  int shards = 1;
  int replicas = 1;
  int64_t max_entries = 1024;
  bool compress = true;
  bool update_existing = false;

  std::string StreamName(int shard) const;
  std::string Subject(int shard) const;
  // The schema stream (docs/SCHEMA.md): <stream_prefix>-schema on <subject_prefix>-schema, one for
  // the whole cluster, every message kept (schema changes are few and small).
  std::string SchemaStreamName() const { return stream_prefix + "-schema"; }
  std::string SchemaSubject() const { return subject_prefix + "-schema"; }
};

inline int ShardOf(uint64_t row_hash, int shards) { return static_cast<int>(row_hash % shards) + 1; }

// Creates the shard streams and the schema stream when missing. An existing stream whose settings differ is
// updated when update_existing is set, and otherwise reported (the error names the stream and
// the setting and says how to fix it).
Status EnsureStreams(jsCtx* js, const StreamLayout& layout);

}  // namespace marmot
