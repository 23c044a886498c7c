// MessageId: the Nats-Msg-Id of every message marmot publishes, and what it tells recovery.
//
//   <session>-<first>-<last>-<groups>-<shard>-<index>-<count>
//
//   session      16 hex digits, random per publisher start (db/publish_state.h)
//   first, last  the change-log range of the batch the message belongs to
//   groups       how many shards the batch has changes for
//   shard        this message's shard
//   index/count  this message's place among the batch's messages for that shard (several when
//                the shard's changes did not fit one message, or a row was split into chunks)
//
// Unique per message ever published (the session differs for every process start, also on a
// copy of the database), so JetStream's duplicate window drops only true resends. Complete enough
// that a restarted publisher can tell, from ids read back from the streams, which batches of its
// earlier sessions arrived whole, in part, or not at all (ChangePublisher::Recover).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace marmot {

struct MessageId {
  std::string session;
  uint64_t first = 0;
  uint64_t last = 0;
  int groups = 0;
  int shard = 0;
  int index = 0;
  int count = 0;

  std::string ToString() const;
  // nullopt for ids that are not marmot's (other publishers on the subject, older versions).
  static std::optional<MessageId> Parse(std::string_view text);
};

}  // namespace marmot
