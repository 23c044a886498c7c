// ChangePublisher::Recover: settling what earlier sessions published but did not confirm durably.
//
// Confirmations are persisted every cleanup_interval; a crash loses the newest. The entries after
// the persisted confirmation are in one of three states, and only the streams know which:
//   - in a batch that arrived whole: published; confirm it, never publish it again;
//   - in a batch that arrived in part (a crash between its messages): publish only the rows of
//     the missing messages;
//   - not in any stored message: publish them.
// The earlier sessions' messages are found by reading each stream back from the newest
// acknowledged position recorded with the confirmation (message ids name their session and batch,
// message_id.h). Their payloads are fetched and checked against the change log: the rows a batch
// carries must be rows its change-log range logged. When they are not, this database is not the
// one that published them (it was put back to an older copy and written to since); from there on
// its entries are published as new. A row is never published again when a later stored message of
// this database already carries it (a stale copy must not land after a newer one).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <unordered_set>

#include "codec/wire_format.h"
#include "stream/message_id.h"
#include "stream/publisher.h"
#include "telemetry/retried_failure.h"

namespace marmot {
namespace {

using RowSet = std::unordered_set<std::string>;

// Recovery decodes this node's own messages, which may hold rows up to SQLite's limit.
constexpr size_t kMaxRecoveredMessageBytes = size_t{1} << 30;

// One stored message of an earlier session.
struct FoundMessage {
  MessageId id;
  uint64_t seq = 0;  // its stream sequence
};

// Every found message of one change-log range (several sessions may have published the same range:
// a recovery republishes the missing part of a batch under the range's bounds).
struct FoundRange {
  uint64_t first = 0, last = 0;
  std::vector<FoundMessage> messages;
  RowSet rows;               // rows carried by the messages (see AddRows)
  bool rows_read = false;    // `rows` is filled
  bool undecodable = false;  // a message's rows could not be read
  std::set<int> complete_shards;
  bool complete = false;  // some session's batch arrived whole

  void Summarize() {
    std::map<std::string, std::map<int, std::set<int>>> parts;  // session -> shard -> indexes
    std::map<std::string, std::map<int, int>> counts;
    std::map<std::string, int> groups;
    for (const FoundMessage& m : messages) {
      parts[m.id.session][m.id.shard].insert(m.id.index);
      counts[m.id.session][m.id.shard] = m.id.count;
      groups[m.id.session] = m.id.groups;
    }
    for (auto& [session, shards] : parts) {
      int whole = 0;
      for (auto& [shard, indexes] : shards) {
        if (static_cast<int>(indexes.size()) == counts[session][shard]) {
          complete_shards.insert(shard);
          ++whole;
        }
      }
      if (whole == groups[session] && static_cast<int>(shards.size()) == groups[session]) complete = true;
    }
  }
};

}  // namespace

// The recovery proper (see the file comment).
class PublishRecovery {
 public:
  // `sessions`: whose messages to look for; `state`: the publish state as loaded at start (not as
  // this recovery changes it, so a retry looks from the same positions); `newest`: the newest
  // change-log entry.
  PublishRecovery(ChangePublisher* publisher, const std::vector<std::string>& sessions, PublishState state,
                  uint64_t newest)
      : p_(publisher),
        sessions_(sessions.begin(), sessions.end()),
        state_(std::move(state)),
        newest_(newest) {}

  Status Run(const std::atomic<bool>& stop) {
    MARMOT_RETURN_IF_ERROR(Scan());
    uint64_t cursor = p_->source_->cursor();
    uint64_t confirmed = cursor;
    // Every range is checked first: one that is not this database's ends the list (it and what
    // follows are not its messages), before any rows are left out because of them.
    for (size_t r = 0; r < ranges_.size(); ++r) {
      if (ranges_[r].last <= cursor) continue;
      Result<bool> ours = Verify(ranges_[r], std::max(ranges_[r].first, cursor + 1));
      if (!ours.ok()) return ours.status();
      if (!*ours) {
        ranges_.resize(r);
        break;
      }
    }
    for (size_t r = 0; r < ranges_.size(); ++r) {
      FoundRange& range = ranges_[r];
      if (range.last <= cursor) continue;  // settled already (the acked position is a lower bound)
      uint64_t first = std::max(range.first, cursor + 1);
      uint64_t last = range.last;
      if (first > cursor + 1) {
        spdlog::warn("change-log entries {}..{} were not published before the restart; publishing them",
                     cursor + 1, first - 1);
        MARMOT_RETURN_IF_ERROR(Republish(cursor + 1, first - 1, nullptr, r, stop));
        cursor = first - 1;
      }
      if (range.complete) {
        p_->source_->SkipTo(last);
        p_->source_->Confirm(last, {});
      } else {
        spdlog::warn(
            "change-log entries {}..{} were published in part before the restart; publishing the rest", first,
            last);
        MARMOT_RETURN_IF_ERROR(Republish(first, last, &range, r + 1, stop));
      }
      cursor = last;
    }
    if (cursor > confirmed) {
      spdlog::info("recovered the publish state: change-log entries {}..{} were published before the restart",
                   confirmed + 1, cursor);
    }
    p_->source_->SkipTo(cursor);
    p_->source_->Confirm(cursor, acked_);
    return Status();
  }

 private:
  Status Scan() {
    std::map<std::pair<uint64_t, uint64_t>, FoundRange> by_range;
    for (int shard = 1; shard <= std::max(p_->options_.layout.shards, 1); ++shard) {
      std::string stream = p_->options_.layout.StreamName(shard);
      auto known = state_.acked_seq.find(stream);
      uint64_t after = known == state_.acked_seq.end() ? 0 : known->second;
      auto visit = [&](std::string_view text, uint64_t seq) {
        std::optional<MessageId> id = MessageId::Parse(text);
        if (!id || !sessions_.count(id->session)) return;
        FoundRange& range = by_range[{id->first, id->last}];
        range.first = id->first;
        range.last = id->last;
        range.messages.push_back(FoundMessage{*id, seq});
        uint64_t& acked = acked_[stream];
        acked = std::max(acked, seq);
      };
      Result<MessageSink::StoredRange> range = p_->sink_->ScanStored(shard, after, visit);
      if (!range.ok()) return range.status().WithContext("reading back stream " + stream);
      if (range->last < after) {
        // The stream ends before the recorded position: it was created again (its NATS store was
        // lost). The recorded position means nothing in it: read all of it.
        range = p_->sink_->ScanStored(shard, 0, visit);
        if (!range.ok()) return range.status().WithContext("reading back stream " + stream);
      }
      if (range->first > after + 1 || range->last < after) {
        // Messages after the newest acknowledged one were discarded (more than max_entries were
        // published since), or lost with the stream: some of ours may have been among them.
        spdlog::error(
            "stream {} no longer holds the messages after {} (it holds {}..{}): whether this node published "
            "its change-log entries after {} before the restart cannot be told; those not found are "
            "published "
            "(again), and rows written elsewhere since may be overwritten by these older values",
            stream, after, range->first, range->last, state_.confirmed_seq);
      }
    }
    for (auto& [bounds, range] : by_range) {
      range.Summarize();
      ranges_.push_back(std::move(range));
    }
    return Status();
  }

  // Fills range.rows with the rows its messages carry. A row split in chunks counts when all of
  // its chunks are among them.
  Status AddRows(FoundRange& range) {
    if (range.rows_read) return Status();
    std::map<std::string, std::map<size_t, std::string>> chunks;  // group -> index -> bytes
    std::map<std::string, size_t> chunk_counts;
    for (const FoundMessage& m : range.messages) {
      Result<StoredMessage> stored = p_->sink_->Fetch(m.id.shard, m.seq);
      if (!stored.ok()) return stored.status();
      if (stored->chunk_header.empty()) {
        MARMOT_RETURN_IF_ERROR(AddRowsOfPayload(stored->payload, &range));
        continue;
      }
      // "group index count"
      const std::string& h = stored->chunk_header;
      size_t a = h.find(' '), b = h.rfind(' ');
      if (a == std::string::npos || a == b) continue;
      std::string group = h.substr(0, a);
      size_t index = 0, count = 0;
      std::string_view i(h.data() + a + 1, b - a - 1), n(h.data() + b + 1, h.size() - b - 1);
      if (std::from_chars(i.data(), i.data() + i.size(), index).ptr != i.data() + i.size() ||
          std::from_chars(n.data(), n.data() + n.size(), count).ptr != n.data() + n.size()) {
        continue;
      }
      chunks[group][index] = std::move(stored->payload);
      chunk_counts[group] = count;
    }
    for (auto& [group, parts] : chunks) {
      if (parts.size() != chunk_counts[group]) continue;  // not stored whole: not published
      std::string whole;
      for (auto& [index, part] : parts) whole += part;
      MARMOT_RETURN_IF_ERROR(AddRowsOfPayload(whole, &range));
    }
    range.rows_read = true;
    return Status();
  }

  // A message that cannot be decoded here (a row over the size this node decodes, another wire
  // format version) leaves its rows unknown: said, not retried.
  Status AddRowsOfPayload(std::string_view bytes, FoundRange* range) {
    std::string inflated;
    if (p_->options_.layout.compress) {
      Status s = ZstdCodec().Decompress(bytes, kMaxRecoveredMessageBytes, &inflated);
      if (!s.ok()) {
        spdlog::warn("a stored message of this node does not decompress ({}); its rows are left unknown",
                     s.message());
        range->undecodable = true;
        return Status();
      }
      bytes = inflated;
    }
    Result<ChangeMessage> message = DecodeChangeMessage(bytes);
    if (!message.ok()) {
      spdlog::warn("a stored message of this node does not decode ({}); its rows are left unknown",
                   message.status().message());
      range->undecodable = true;
      return Status();
    }
    for (const RowChange& change : message->changes) {
      Result<std::optional<std::string>> id = p_->source_->RowIdentity(change);
      if (!id.ok()) return id.status();
      if (*id) range->rows.insert(std::move(**id));
    }
    return Status();
  }

  // True when the range's messages are this database's: the range lies within its change log, and
  // the rows they carry are rows its entries first..last logged here (all of them when the batch
  // arrived whole; a table that is gone or renamed since is not compared). False when they are
  // not: the database was put back to an older copy (and written to since); it is said, and its
  // entries from `first` on are published as new.
  Result<bool> Verify(FoundRange& range, uint64_t first) {
    bool ours = range.last <= newest_;
    if (ours) {
      MARMOT_RETURN_IF_ERROR(AddRows(range));
      ChangeBatch read;
      MARMOT_RETURN_IF_ERROR(p_->source_->ReadRange(first, range.last, &read));
      RowSet logged;
      for (const RowChange& change : read.changes) {
        Result<std::optional<std::string>> id = p_->source_->RowIdentity(change);
        if (!id.ok()) return id.status();
        if (*id) logged.insert(std::move(**id));
      }
      for (const std::string& row : range.rows) ours = ours && logged.count(row) > 0;
      if (range.complete && first == range.first && !range.undecodable) {
        ours = ours && logged.size() == range.rows.size();
      }
    }
    if (ours) return true;
    spdlog::error(
        "stream messages of this database's earlier sessions cover change-log entries {}..{}, but this "
        "change "
        "log {}: the database is older than what it published (put back to an older copy?); its entries from "
        "{} "
        "on are published as new writes",
        range.first, range.last,
        range.last > newest_ ? "ends at " + std::to_string(newest_) : std::string("logged other rows there"),
        first);
    return false;
  }

  // Publishes the entries first..last, except rows found in `range`'s stored messages (shards
  // complete there are left out whole) and rows of every found range from `later` on.
  Status Republish(uint64_t first, uint64_t last, const FoundRange* range, size_t later,
                   const std::atomic<bool>& stop) {
    RowSet skip;
    if (range) skip = range->rows;
    for (size_t r = later; r < ranges_.size(); ++r) {
      MARMOT_RETURN_IF_ERROR(AddRows(ranges_[r]));
      skip.insert(ranges_[r].rows.begin(), ranges_[r].rows.end());
    }
    ChangeBatch read;
    MARMOT_RETURN_IF_ERROR(p_->source_->ReadRange(first, last, &read));
    ChangeBatch keep;
    keep.first_seq = first;
    keep.last_seq = last;
    keep.entries = read.entries;
    int shards = std::max(p_->options_.layout.shards, 1);
    for (const RowChange& change : read.changes) {
      if (range && range->complete_shards.count(ShardOf(change.row_hash, shards))) continue;
      Result<std::optional<std::string>> id = p_->source_->RowIdentity(change);
      if (!id.ok()) return id.status();
      if (*id && skip.count(**id)) continue;
      keep.changes.push_back(change);
    }
    p_->source_->SkipTo(last);
    // A failed send is sent again by Settle, which gives up only when stopping.
    (void)p_->SendBatch(std::move(keep));
    return p_->Settle(stop);
  }

  ChangePublisher* p_;
  std::set<std::string> sessions_;
  PublishState state_;
  uint64_t newest_;
  std::vector<FoundRange> ranges_;         // sorted by first
  std::map<std::string, uint64_t> acked_;  // per stream: the newest message of ours found
};

Status ChangePublisher::Recover(const std::atomic<bool>& stop) {
  PublishState loaded = source_->publish_state();
  // From now on this session's messages must be recognisable after a crash.
  std::vector<std::string> sessions = loaded.sessions;
  sessions.push_back(session_);
  source_->SetSessions(sessions);
  MARMOT_RETURN_IF_ERROR(source_->PersistPublishState().WithContext("recording publisher session"));
  session_recorded_ = true;
  Result<uint64_t> newest = source_->LastLoggedSeq();
  if (!newest.ok()) return newest.status();
  if (*newest > loaded.confirmed_seq && !loaded.sessions.empty()) {
    auto backoff = std::chrono::milliseconds(250);
    RetriedFailure failure(clock_);
    while (true) {
      // A retry looks from the same positions, and also for what this session republished before
      // the attempt failed.
      in_flight_.clear();
      Status s = PublishRecovery(this, sessions, loaded, *newest).Run(stop);
      if (s.ok()) break;
      if (stop.load()) return s.WithContext("recovering the publish state");
      failure.Log("recovering the publish state (nothing is published or applied until it is done): " +
                  s.message() + "; trying again in " + std::to_string(backoff.count()) + " ms");
      clock_->SleepFor(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
  }
  source_->SetSessions({session_});
  MARMOT_RETURN_IF_ERROR(source_->PersistPublishState().WithContext("saving the recovered publish state"));
  cursor_.store(source_->cursor());
  return Status();
}

}  // namespace marmot
