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
// message_id.h); payloads are fetched only for batches that arrived in part. A row is never
// published again when a later stored message of this database already carries it (a stale copy
// must not land after a newer one).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <unordered_set>

#include "codec/wire_format.h"
#include "stream/message_id.h"
#include "stream/publisher.h"

namespace marmot {
namespace {

// What the streams hold of one batch of one earlier session.
struct FoundBatch {
  uint64_t first = 0, last = 0;
  int groups = 0;
  struct ShardMessages {
    int count = 0;
    std::set<int> indexes;
    std::vector<uint64_t> seqs;
  };
  std::map<int, ShardMessages> shards;

  bool ShardComplete(int shard) const {
    auto s = shards.find(shard);
    return s != shards.end() && static_cast<int>(s->second.indexes.size()) == s->second.count;
  }
  bool Complete() const {
    if (static_cast<int>(shards.size()) != groups) return false;
    for (const auto& [shard, m] : shards) {
      if (!ShardComplete(shard)) return false;
    }
    return true;
  }
};

// Every found batch of one change-log range (several sessions may have published the same range:
// a recovery republishes the missing part of a batch under the range's bounds).
struct FoundRange {
  uint64_t first = 0, last = 0;
  std::vector<FoundBatch> batches;

  bool Complete() const {
    return std::any_of(batches.begin(), batches.end(), [](const FoundBatch& b) { return b.Complete(); });
  }
  bool ShardComplete(int shard) const {
    return std::any_of(batches.begin(), batches.end(),
                       [shard](const FoundBatch& b) { return b.ShardComplete(shard); });
  }
};

}  // namespace

// The recovery proper (see the file comment); `previous` are the sessions to look for, `newest` the
// newest change-log entry.
class PublishRecovery {
 public:
  PublishRecovery(ChangePublisher* publisher, const std::vector<std::string>& previous, uint64_t newest)
      : p_(publisher), previous_(previous.begin(), previous.end()), newest_(newest) {}

  Status Run(const std::atomic<bool>& stop) {
    MARMOT_RETURN_IF_ERROR(Scan());
    uint64_t cursor = p_->source_->publish_state().confirmed_seq;
    uint64_t confirmed = cursor;
    for (size_t r = 0; r < ranges_.size(); ++r) {
      FoundRange& range = ranges_[r];
      if (range.last <= cursor) continue;  // confirmed already (the acked position is a lower bound)
      uint64_t first = std::max(range.first, cursor + 1);
      uint64_t last = std::min(range.last, newest_);
      if (first > cursor + 1) {
        spdlog::warn("change-log entries {}..{} were not published before the restart; publishing them",
                     cursor + 1, first - 1);
        MARMOT_RETURN_IF_ERROR(Republish(cursor + 1, first - 1, nullptr, r, stop));
      }
      if (first <= last) {
        if (range.Complete()) {
          p_->source_->SkipTo(last);
          p_->source_->Confirm(last, {});
        } else {
          spdlog::warn(
              "change-log entries {}..{} were published in part before the restart; publishing the rest",
              first, last);
          MARMOT_RETURN_IF_ERROR(Republish(first, last, &range, r + 1, stop));
        }
      }
      cursor = std::max(cursor, last);
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
    const PublishState& state = p_->source_->publish_state();
    std::map<std::pair<uint64_t, uint64_t>, std::map<std::string, FoundBatch>> by_range;
    for (int shard = 1; shard <= std::max(p_->options_.layout.shards, 1); ++shard) {
      std::string stream = p_->options_.layout.StreamName(shard);
      auto known = state.acked_seq.find(stream);
      uint64_t after = known == state.acked_seq.end() ? 0 : known->second;
      Result<MessageSink::StoredRange> range =
          p_->sink_->ScanStored(shard, after, [&](std::string_view text, uint64_t seq) {
            std::optional<MessageId> id = MessageId::Parse(text);
            if (!id || !previous_.count(id->session)) return;
            FoundBatch& batch = by_range[{id->first, id->last}][id->session];
            batch.first = id->first;
            batch.last = id->last;
            batch.groups = id->groups;
            FoundBatch::ShardMessages& m = batch.shards[id->shard];
            m.count = id->count;
            m.indexes.insert(id->index);
            m.seqs.push_back(seq);
            uint64_t& acked = acked_[stream];
            acked = std::max(acked, seq);
          });
      if (!range.ok()) return range.status().WithContext("reading back stream " + stream);
      if (range->first > after + 1 || range->last < after) {
        // Messages after the newest acknowledged one were discarded (more than max_entries were
        // published since), or the stream lost them (re-created): some of ours may have been among
        // them.
        spdlog::error(
            "stream {} no longer holds the messages after {} (it holds {}..{}): whether this node published "
            "its change-log entries after {} before the restart cannot be told; those not found are "
            "published "
            "(again), and rows written elsewhere since may be overwritten by these older values",
            stream, after, range->first, range->last, state.confirmed_seq);
      }
    }
    for (auto& [bounds, sessions] : by_range) {
      FoundRange range{bounds.first, bounds.second, {}};
      for (auto& [session, batch] : sessions) range.batches.push_back(std::move(batch));
      if (range.last > newest_) {
        spdlog::error(
            "stream messages of this database cover change-log entries up to {}, but its change log ends at "
            "{}: "
            "the database is older than what it published (restored from an older copy?); entries from {} "
            "on are new writes and are published as such",
            range.last, newest_, newest_ + 1);
        if (range.first > newest_) continue;
      }
      ranges_.push_back(std::move(range));
    }
    return Status();
  }

  // The identities of the rows in the found messages of `range`, in shards not complete there.
  Status AddFoundRows(const FoundRange& range, std::unordered_set<std::string>* rows) {
    for (const FoundBatch& batch : range.batches) {
      for (const auto& [shard, m] : batch.shards) {
        for (uint64_t seq : m.seqs) MARMOT_RETURN_IF_ERROR(AddRowsOf(shard, seq, rows));
      }
    }
    return Status();
  }

  Status AddRowsOf(int shard, uint64_t seq, std::unordered_set<std::string>* rows) {
    Result<std::string> payload = p_->sink_->Fetch(shard, seq);
    if (!payload.ok()) return payload.status();
    std::string_view bytes = *payload;
    std::string inflated;
    if (p_->options_.layout.compress) {
      // A chunk of a row split over several messages does not decompress alone: its row is
      // published again, which only repeats values the stream already has.
      if (!ZstdCodec().Decompress(bytes, p_->options_.max_message_bytes, &inflated).ok()) return Status();
      bytes = inflated;
    }
    Result<ChangeMessage> message = DecodeChangeMessage(bytes);
    if (!message.ok()) return Status();
    for (const RowChange& change : message->changes) {
      Result<std::optional<std::string>> id = p_->source_->RowIdentity(change);
      if (!id.ok()) return id.status();
      if (*id) rows->insert(std::move(**id));
    }
    return Status();
  }

  // Publishes the entries first..last, except rows found in `range`'s stored messages (shards
  // complete there are left out whole) and rows of every found range from `later` on.
  Status Republish(uint64_t first, uint64_t last, const FoundRange* range, size_t later,
                   const std::atomic<bool>& stop) {
    std::unordered_set<std::string> skip;
    if (range) MARMOT_RETURN_IF_ERROR(AddFoundRows(*range, &skip));
    for (size_t r = later; r < ranges_.size(); ++r) MARMOT_RETURN_IF_ERROR(AddFoundRows(ranges_[r], &skip));
    ChangeBatch read;
    MARMOT_RETURN_IF_ERROR(p_->source_->ReadRange(first, last, &read));
    ChangeBatch keep;
    keep.first_seq = first;
    keep.last_seq = last;
    keep.entries = read.entries;
    int shards = std::max(p_->options_.layout.shards, 1);
    for (const RowChange& change : read.changes) {
      if (range && range->ShardComplete(ShardOf(change.row_hash, shards))) continue;
      Result<std::optional<std::string>> id = p_->source_->RowIdentity(change);
      if (!id.ok()) return id.status();
      if (*id && skip.count(**id)) continue;
      keep.changes.push_back(change);
    }
    p_->source_->SkipTo(last);
    MARMOT_RETURN_IF_ERROR(p_->SendBatch(std::move(keep)));
    return p_->Settle(stop);
  }

  ChangePublisher* p_;
  std::set<std::string> previous_;
  uint64_t newest_;
  std::vector<FoundRange> ranges_;         // sorted by first
  std::map<std::string, uint64_t> acked_;  // per stream: the newest message of ours found
};

Status ChangePublisher::Recover(const std::atomic<bool>& stop) {
  std::vector<std::string> previous = source_->publish_state().sessions;
  // From now on this session's messages must be recognisable after a crash.
  std::vector<std::string> sessions = previous;
  sessions.push_back(session_);
  source_->SetSessions(sessions);
  MARMOT_RETURN_IF_ERROR(source_->PersistPublishState().WithContext("recording publisher session"));
  Result<uint64_t> newest = source_->LastLoggedSeq();
  if (!newest.ok()) return newest.status();
  if (*newest > source_->publish_state().confirmed_seq && !previous.empty()) {
    auto backoff = std::chrono::milliseconds(250);
    while (true) {
      Status s = PublishRecovery(this, previous, *newest).Run(stop);
      if (s.ok()) break;
      if (stop.load()) return s.WithContext("recovering the publish state");
      spdlog::warn("recovering the publish state: {}; trying again in {} ms", s.message(), backoff.count());
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
