// PublishState: what this database has handed to the streams, persisted in __marmot__state.
//
// The publisher confirms change-log entries in memory as soon as JetStream acknowledged them, and
// persists this record every cleanup_interval (and at a clean stop), in the transaction that
// deletes the confirmed entries. A crash can therefore lose the newest confirmations; the record
// says where to look in the streams to recover them (ChangePublisher::Recover):
//
//   confirmed_seq    every change-log entry up to here is in the streams.
//   acked_seq        per stream: the sequence of the newest acknowledged message of ours at the
//                    time confirmed_seq was reached. Messages sent after it have higher sequences,
//                    so the messages of ours that are not confirmed yet all lie after it.
//   sessions         the publisher sessions (one random id per process start) whose messages may
//                    lie after those positions. A message's Nats-Msg-Id starts with its session,
//                    so recovery tells this database's messages from everyone else's, also from a
//                    copy of this database running elsewhere under another session.
//
// REQUIRES: external synchronization; Load/Save run on the caller's connection (Save inside the
// caller's write transaction).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "util/status.h"

namespace marmot {

class Database;

struct PublishState {
  uint64_t confirmed_seq = 0;
  std::map<std::string, uint64_t> acked_seq;  // stream name -> stream sequence
  std::vector<std::string> sessions;

  bool operator==(const PublishState&) const = default;
};

// Reads the record; all zero and empty when none was saved yet (a new database).
Result<PublishState> LoadPublishState(Database& db);

// Writes the record. Call inside a write transaction.
Status SavePublishState(Database& db, const PublishState& state);

// A new random session id: 16 lowercase hex digits.
std::string NewPublishSession();

}  // namespace marmot
