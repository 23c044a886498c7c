#include "stream/consumer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "codec/wire_format.h"
#include "telemetry/retried_failure.h"

namespace marmot {
namespace {

// Creation times that name one stream. nats-server 2.9 reports a clustered stream's creation time
// as the replica answering recorded it, so it moves by micro- to milliseconds when the stream's
// leader moves to a restarted server (a false "re-created" found by
// tests/e2e/fault_server_loss_test.sh: 161 us). A stream deleted and created again differs by far
// more than this tolerance: it has been written to and read in between.
bool SameIncarnation(int64_t a_ns, int64_t b_ns) {
  constexpr int64_t kToleranceNs = 1'000'000'000;
  return a_ns >= b_ns ? a_ns - b_ns <= kToleranceNs : b_ns - a_ns <= kToleranceNs;
}

std::string Range(uint64_t first, uint64_t last) {
  if (last == 0) return std::to_string(first) + " and after";
  if (first == last) return std::to_string(first);
  return std::to_string(first) + ".." + std::to_string(last);
}

// Parses a Marmot-Chunk header "group index count".
bool ParseChunkHeader(std::string_view header, std::string* group, size_t* index, size_t* count) {
  size_t a = header.find(' '), b = header.rfind(' ');
  if (a == std::string_view::npos || a == b || a == 0) return false;
  *group = std::string(header.substr(0, a));
  std::string_view i = header.substr(a + 1, b - a - 1), n = header.substr(b + 1);
  if (std::from_chars(i.data(), i.data() + i.size(), *index).ptr != i.data() + i.size()) return false;
  if (std::from_chars(n.data(), n.data() + n.size(), *count).ptr != n.data() + n.size()) return false;
  return *count >= 1 && *index < *count;
}

}  // namespace

ShardConsumer::ShardConsumer(std::unique_ptr<MessageSource> source, std::unique_ptr<Applier> applier,
                             Clock* clock, ConsumerOptions options,
                             std::function<std::optional<uint64_t>()> local_cursor)
    : source_(std::move(source)),
      applier_(std::move(applier)),
      clock_(clock),
      options_(std::move(options)),
      local_cursor_(std::move(local_cursor)),
      stream_(options_.layout.StreamName(options_.shard)) {}

void ShardConsumer::RecordGap(uint64_t first, uint64_t last, const std::string& why) {
  gaps_found_.fetch_add(1);
  spdlog::error(
      "stream {}: message(s) {} will not be applied on this node ({}); its copy of the database may lack "
      "changes until it restores a snapshot (recorded in __marmot__gaps)",
      stream_, Range(first, last), why);
  applier_->RecordGap(stream_, first, last, why);
  if (options_.metrics) options_.metrics->GapRecorded(stream_);
}

void ShardConsumer::ReportError(const std::string& error) {
  if (!options_.metrics || (error.empty() && !reported_error_)) return;
  options_.metrics->StreamError(stream_, error);
  reported_error_ = !error.empty();
}

void ShardConsumer::ReportProgress(uint64_t last_seq) {
  if (options_.metrics) options_.metrics->StreamProgress(stream_, expected_ - 1, last_seq);
}

Result<StreamState> ShardConsumer::StateFromLeader(uint64_t applied) {
  for (int attempt = 1;; ++attempt) {
    Result<StreamState> state = source_->State();
    if (!state.ok() || state->leader_known) return state;
    // A replica without a leader answered from its own copy, which may lag what this node applied
    // (through the leader) before: only a position inside its range is safe to go on from.
    bool inside = applied <= state->last_seq && (state->messages == 0 || applied + 1 >= state->first_seq);
    if (inside || attempt >= kLeaderWaitAttempts) {
      if (!inside)
        spdlog::warn("stream {} has no leader after {} s; going by the range a replica reports ({}..{})",
                     stream_, kLeaderWaitAttempts, state->first_seq, state->last_seq);
      return state;
    }
    if (attempt == 1)
      spdlog::info(
          "stream {} has no leader yet (a replica reports {}..{}, this node applied up to {}); waiting",
          stream_, state->first_seq, state->last_seq, applied);
    clock_->SleepFor(std::chrono::seconds(1));
  }
}

Status ShardConsumer::Start() {
  Result<StreamPosition> stored = applier_->LoadStreamPosition(stream_);
  if (!stored.ok()) return stored.status().WithContext("reading position of stream " + stream_);
  Result<StreamState> state = StateFromLeader(stored->seq);
  if (!state.ok()) return state.status();
  uint64_t applied = stored->seq;
  created_ns_ = state->created_ns;
  bool recreated = stored->created_ns != 0 && !SameIncarnation(stored->created_ns, state->created_ns);
  // A position from a version that did not store creation times, beyond the stream's end: the
  // stream was most likely re-created as well.
  if (stored->created_ns == 0 && applied > state->last_seq) recreated = true;
  if (recreated) {
    RecordGap(applied + 1, 0,
              "the stream was deleted and created again since this node applied message " +
                  std::to_string(applied) +
                  " of it; changes in the old stream that this node had not applied are lost to it");
    applied = 0;
  } else if (applied > state->last_seq) {
    RecordGap(
        state->last_seq + 1, applied,
        "the stream ends at " + std::to_string(state->last_seq) + " but this node applied up to " +
            std::to_string(applied) +
            ": the stream lost messages (a damaged or restored NATS store); nodes that did not apply them "
            "may lack those changes");
    applied = state->last_seq;
  }
  int64_t hash = applied == stored->seq ? stored->msg_hash : 0;
  marks_.clear();
  if (hash != 0) marks_.push_back(Mark{applied, hash});
  if (applied != stored->seq || stored->created_ns != state->created_ns) {
    MARMOT_RETURN_IF_ERROR(applier_->SavePosition(StreamPosition{stream_, applied, state->created_ns, hash}));
  }
  expected_ = applied + 1;
  Result<uint64_t> replay = CheckHistory(*state);
  if (!replay.ok()) {
    spdlog::warn("stream {}: {}; compared at the next check", stream_, replay.status().message());
  } else if (*replay != 0) {
    expected_ = *replay;
    MARMOT_RETURN_IF_ERROR(applier_->SavePosition(StreamPosition{stream_, expected_ - 1, created_ns_}));
  }
  if (expected_ < state->first_seq) {
    RecordGap(expected_, state->first_seq - 1,
              "the stream no longer holds them: more than [replication_log] max_entries (" +
                  std::to_string(options_.layout.max_entries) + ") messages were published since");
    expected_ = state->first_seq;
    // Recorded once: a restart before the next batch does not find the same gap again.
    MARMOT_RETURN_IF_ERROR(applier_->SavePosition(StreamPosition{stream_, expected_ - 1, created_ns_}));
  }
  MARMOT_RETURN_IF_ERROR(source_->Subscribe(expected_));
  next_check_ = clock_->Now() + options_.check_interval;
  ReportProgress(state->last_seq);
  spdlog::info("consuming {} from sequence {}", stream_, expected_);
  return Status();
}

Status ShardConsumer::CheckStream() {
  Result<StreamState> state = source_->State();
  if (!state.ok() && state.status().Is(StatusCode::kNotFound) && options_.ensure_streams) {
    spdlog::error("stream {} is gone (its NATS store was lost?); creating it again", stream_);
    MARMOT_RETURN_IF_ERROR(options_.ensure_streams());
    state = source_->State();
  }
  if (!state.ok()) return state.status();
  if (!state->leader_known) {
    // Its range may lag what this node applied through the leader before (a partitioned server):
    // not a reason to record a gap. Checked again at the next interval.
    if (!leaderless_since_) leaderless_since_ = clock_->Now();
    auto without = std::chrono::duration_cast<std::chrono::seconds>(clock_->Now() - *leaderless_since_);
    if (without >= kLeaderlessReportAfter) {
      return Status::Unavailable("stream " + stream_ + " has had no leader for " +
                                 std::to_string(without.count()) +
                                 " s (is this node's NATS server cut off from its cluster?): nothing new is "
                                 "applied, and lost messages cannot be checked, until it has one");
    }
    spdlog::debug("stream {} has no leader; a replica reports {}..{}; not compared", stream_,
                  state->first_seq, state->last_seq);
    return Status();
  }
  if (leaderless_since_) {
    spdlog::info("stream {} has a leader again", stream_);
    leaderless_since_.reset();
  }
  ReportProgress(state->last_seq);
  uint64_t restart = 0;
  if (!SameIncarnation(state->created_ns, created_ns_)) {
    uint64_t lost = expected_;  // a row in chunks not complete yet is lost with the old stream too
    for (const auto& [group, g] : chunks_) lost = std::min(lost, g.first_seq);
    RecordGap(
        lost, 0,
        "the stream was deleted and created again while this node consumed it; changes in the old stream "
        "that this node had not applied are lost to it");
    created_ns_ = state->created_ns;
    restart = 1;
  } else if (state->last_seq + 1 < expected_) {
    RecordGap(state->last_seq + 1, expected_ - 1,
              "the stream now ends at " + std::to_string(state->last_seq) +
                  ": it lost messages this node applied (a damaged or restored NATS store, or servers that "
                  "lost messages they had delivered); nodes that did not "
                  "apply them may lack those changes");
    restart = state->last_seq + 1;
  } else {
    Result<uint64_t> replay = CheckHistory(*state);
    if (!replay.ok()) return replay.status();
    restart = *replay;
  }
  if (restart == 0) return Status();
  if (restart < state->first_seq) {
    RecordGap(restart, state->first_seq - 1, "the stream no longer holds them");
    restart = state->first_seq;
  }
  pending_restart_ = restart;
  return FinishRestart();
}

Result<uint64_t> ShardConsumer::CheckHistory(const StreamState& state) {
  for (const Mark& mark : marks_) {
    if (mark.seq < state.first_seq || mark.seq > state.last_seq) continue;
    Result<int64_t> stored = source_->StoredHash(mark.seq);
    if (!stored.ok() && stored.status().Is(StatusCode::kNotFound)) {
      spdlog::debug("stream {}: message {} is no longer stored (removed by hand?); not compared", stream_,
                    mark.seq);
      continue;
    }
    if (!stored.ok()) return stored.status();
    if (*stored == mark.hash) continue;
    RecordGap(
        state.first_seq, expected_ - 1,
        "message " + std::to_string(mark.seq) +
            " of the stream is not the one this node applied (its content differs): the stream's history "
            "was replaced (a NATS store restored from a backup, or servers that lost or never kept "
            "messages they delivered). This node applies the stream again from message " +
            std::to_string(state.first_seq) +
            "; changes of the replaced messages may remain on this node only");
    marks_.clear();
    return state.first_seq;
  }
  // The position stays a mark: compared again at the next check.
  if (marks_.size() > 1) marks_.erase(marks_.begin(), marks_.end() - 1);
  return uint64_t{0};
}

void ShardConsumer::AddMark(uint64_t seq, int64_t hash) {
  marks_.push_back(Mark{seq, hash});
  if (marks_.size() <= kMaxMarks) return;
  // Thinned to every other one, oldest first, so that the newest stays and the rest spread over
  // the time since the last check.
  std::vector<Mark> kept;
  for (size_t i = 0; i < marks_.size(); i += 2) kept.push_back(marks_[i]);
  if (kept.back().seq != marks_.back().seq) kept.push_back(marks_.back());
  marks_ = std::move(kept);
}

Status ShardConsumer::FinishRestart() {
  // Nothing of the old subscription is applied any more; until the new position is stored (with
  // the gaps recorded above) and the new subscription made, this is tried again every check.
  chunks_.clear();
  expected_ = *pending_restart_;
  marks_.clear();
  MARMOT_RETURN_IF_ERROR(applier_->SavePosition(StreamPosition{stream_, expected_ - 1, created_ns_}));
  MARMOT_RETURN_IF_ERROR(source_->Subscribe(expected_));
  pending_restart_.reset();
  return Status();
}

void ShardConsumer::DropChunkGroup(std::map<std::string, ChunkGroup>::iterator group,
                                   const std::string& reason) {
  DeadLetterMessage(group->second.first_seq, reason);
  // Chunks of it that come later must not start a new group (which would pin the position again).
  dropped_groups_.push_back(group->first);
  if (dropped_groups_.size() > kMaxChunkGroups) dropped_groups_.pop_front();
  chunks_.erase(group);
}

void ShardConsumer::DeadLetterMessage(uint64_t seq, const std::string& reason) {
  if (options_.metrics) options_.metrics->MessageDeadLettered();
  spdlog::error("stream {} message {} cannot be applied ({}); recorded in __marmot__dead_letter, continuing",
                stream_, seq, reason);
  applier_->DeadLetterMessage(StreamPosition{stream_, seq, created_ns_}, reason);
}

Status ShardConsumer::DecodeInto(std::string_view payload, uint64_t seq, RowChangeList* changes,
                                 size_t* decoded) {
  if (options_.layout.compress) {
    MARMOT_RETURN_IF_ERROR(zstd_.Decompress(payload, options_.max_message_bytes, &inflated_)
                               .WithContext("decompressing (at most [replication_log] max_message_bytes = " +
                                            std::to_string(options_.max_message_bytes) + ")"));
    payload = inflated_;
  } else if (payload.size() > options_.max_message_bytes) {
    return Status::InvalidArgument("message of " + std::to_string(payload.size()) +
                                   " bytes exceeds [replication_log] max_message_bytes (" +
                                   std::to_string(options_.max_message_bytes) + ")");
  }
  *decoded = payload.size();
  size_t first = changes->size();
  MessageOrigin origin;
  MARMOT_RETURN_IF_ERROR(DecodeChangeMessage(payload, &origin, changes));
  bool echo = origin.node_id == options_.node_id;
  for (size_t i = first; i < changes->size(); ++i) {
    (*changes)[i].echo = echo;
    (*changes)[i].stream_seq = seq;
  }
  return Status();
}

void ShardConsumer::ExpireChunkGroups(const SourceMessage& msg) {
  uint64_t max_distance = static_cast<uint64_t>(std::max<int64_t>(options_.layout.max_entries, 16));
  int64_t timeout_ns = std::chrono::nanoseconds(kChunkGroupTimeout).count();
  for (auto it = chunks_.begin(); it != chunks_.end();) {
    const ChunkGroup& g = it->second;
    bool too_far = msg.seq - g.first_seq > std::max<uint64_t>(max_distance, g.count + 16);
    bool too_old = msg.timestamp_ns - g.first_timestamp_ns > timeout_ns;
    if (!too_far && !too_old) {
      ++it;
      continue;
    }
    auto expired = it++;
    DropChunkGroup(expired, "row in chunks never completed: group " + expired->first + " has " +
                                std::to_string(g.parts.size()) + " of " + std::to_string(g.count) +
                                " chunks, the first at sequence " + std::to_string(g.first_seq));
  }
}

size_t ShardConsumer::Take(const SourceMessage& msg, RowChangeList* changes) {
  size_t decoded = 0;
  if (msg.chunk_header.empty()) {
    Status s = DecodeInto(msg.payload, msg.seq, changes, &decoded);
    if (!s.ok()) DeadLetterMessage(msg.seq, s.message());
    return decoded;
  }
  std::string group;
  size_t index = 0, count = 0;
  if (!ParseChunkHeader(msg.chunk_header, &group, &index, &count)) {
    DeadLetterMessage(msg.seq, "bad Marmot-Chunk header '" + std::string(msg.chunk_header) + "'");
    return 0;
  }
  if (std::find(dropped_groups_.begin(), dropped_groups_.end(), group) != dropped_groups_.end()) {
    spdlog::debug("stream {} message {}: a chunk of group {}, which was dead-lettered; skipped", stream_,
                  msg.seq, group);
    return 0;
  }
  auto found = chunks_.find(group);
  if (found == chunks_.end()) {
    if (chunks_.size() >= kMaxChunkGroups) {
      auto oldest = std::min_element(chunks_.begin(), chunks_.end(), [](const auto& a, const auto& b) {
        return a.second.first_seq < b.second.first_seq;
      });
      DropChunkGroup(oldest, "row in chunks never completed: more than " + std::to_string(kMaxChunkGroups) +
                                 " incomplete groups at once");
    }
    found = chunks_.emplace(group, ChunkGroup{msg.seq, msg.timestamp_ns, count, 0, {}}).first;
  }
  ChunkGroup& g = found->second;
  if (g.count != count) {
    DropChunkGroup(found, "chunk group " + group + " changed its chunk count");
    return 0;
  }
  if (!g.parts.count(index)) g.bytes += msg.payload.size();
  if (g.bytes > options_.max_message_bytes) {
    DropChunkGroup(found, "row in chunks exceeds [replication_log] max_message_bytes (" +
                              std::to_string(options_.max_message_bytes) + ")");
    return 0;
  }
  g.parts[index] = std::string(msg.payload);
  if (g.parts.size() < g.count) return 0;
  std::string whole;
  whole.reserve(g.bytes);
  for (auto& [i, part] : g.parts) whole += part;
  uint64_t first_seq = g.first_seq;
  chunks_.erase(found);
  Status s = DecodeInto(whole, first_seq, changes, &decoded);
  if (!s.ok()) DeadLetterMessage(first_seq, s.message());
  return decoded;
}

uint64_t ShardConsumer::SafePosition(uint64_t last_seq) const {
  uint64_t safe = last_seq;
  for (const auto& [group, g] : chunks_) safe = std::min(safe, g.first_seq - 1);
  return safe;
}

Status ShardConsumer::ApplyBatch(RowChangeList& changes, uint64_t messages, uint64_t last_seq,
                                 int64_t last_hash, uint64_t pending, const std::atomic<bool>& stop) {
  StreamPosition position{stream_, SafePosition(last_seq), created_ns_, 0};
  // The hash of the message at the position, when that is the batch's last message.
  if (position.seq == last_seq) position.msg_hash = last_hash;
  auto apply_start = clock_->Now();
  auto backoff = std::chrono::milliseconds(100);
  RetriedFailure failure(clock_);  // a lock held for a moment is a warning; a lasting failure an error
  while (true) {
    Result<ApplyStats> stats =
        applier_->Apply(changes, position, local_cursor_ ? local_cursor_() : std::nullopt);
    if (stats.ok()) {
      applied_messages_.fetch_add(messages);
      applied_changes_.fetch_add(stats->applied);
      last_applied_seq_.store(last_seq);
      if (position.msg_hash != 0) AddMark(position.seq, position.msg_hash);
      if (options_.metrics) {
        options_.metrics->BatchApplied(*stats, messages, changes.size(),
                                       std::chrono::duration<double>(clock_->Now() - apply_start).count());
        options_.metrics->StreamProgress(stream_, last_seq, last_seq + pending);
        ReportError(check_error_);  // a failing stream check still stands
      }
      spdlog::debug(
          "applied {} change(s) ({} own already in place) from {} message(s) of {} up to {} in {:.1f} ms",
          stats->applied, stats->unchanged, messages, stream_, last_seq,
          std::chrono::duration<double, std::milli>(clock_->Now() - apply_start).count());
      return Status();
    }
    // The transaction failed (disk full, lock timeout, ...): nothing was applied; retry the
    // same batch so no change is skipped. A stop request still ends the loop: the position was
    // not advanced, so the next start re-reads these messages.
    failure.Log(stats.status().message() + "; retrying in " + std::to_string(backoff.count()) + " ms");
    ReportError(stats.status().message());
    if (stop.load()) return stats.status();
    clock_->SleepFor(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

Result<bool> ShardConsumer::ApplyNext(std::chrono::milliseconds wait, const std::atomic<bool>& stop) {
  if (clock_->Now() >= next_check_ || pending_restart_) {
    Status checked = pending_restart_ ? FinishRestart() : CheckStream();
    if (checked.ok()) {
      check_failure_.Clear();
      check_error_.clear();
      ReportError("");
    } else {
      check_error_ = "checking stream " + stream_ + ": " + checked.message();
      check_failure_.Log(check_error_);
      ReportError(check_error_);
    }
    next_check_ = clock_->Now() + options_.check_interval;
    if (pending_restart_) {
      clock_->SleepFor(std::min<std::chrono::milliseconds>(wait, std::chrono::milliseconds(200)));
      return false;
    }
  }
  SourceMessage msg;
  Result<bool> got = source_->Next(wait, &msg);
  if (!got.ok()) return got.status();
  if (!*got) return false;
  RowChangeList& changes = changes_;
  // Let go of buffers that a batch of huge rows left behind; keep ordinary ones for reuse.
  if (changes.BufferBytes() > kMaxKeptBufferBytes) changes = RowChangeList();
  if (inflated_.capacity() > kMaxKeptBufferBytes) std::string().swap(inflated_);
  changes.clear();
  uint64_t messages = 0, last_seq = 0, pending = 0;
  int64_t last_hash = 0;
  size_t bytes = 0;
  std::string barrier;  // the verify session whose barrier ended this batch
  while (true) {
    if (msg.seq < expected_) {
      spdlog::debug("stream {}: message {} was applied already; skipped", stream_, msg.seq);
    } else {
      if (msg.seq > expected_) {
        RecordGap(expected_, msg.seq - 1,
                  "the stream discarded them before this node read them: it fell more than [replication_log] "
                  "max_entries (" +
                      std::to_string(options_.layout.max_entries) + ") messages behind");
      }
      expected_ = msg.seq + 1;
      ExpireChunkGroups(msg);
      if (msg.barrier.empty()) bytes += Take(msg, &changes);
      ++messages;
      last_seq = msg.seq;
      last_hash = PayloadHash(msg.payload);
      pending = msg.pending;
      if (!msg.barrier.empty()) {
        barrier.assign(msg.barrier);
        break;  // the batch ends at the barrier
      }
    }
    if (changes.size() >= options_.max_batch_changes || bytes >= options_.max_batch_bytes) break;
    if (!source_->HasPending()) break;
    got = source_->Next(std::chrono::milliseconds(1000), &msg);
    if (!got.ok() || !*got) break;
  }
  if (messages > 0) MARMOT_RETURN_IF_ERROR(ApplyBatch(changes, messages, last_seq, last_hash, pending, stop));
  if (!barrier.empty() && options_.on_barrier) options_.on_barrier(barrier, stream_, last_seq, stop);
  return true;
}

void ShardConsumer::Run(const std::atomic<bool>& stop) {
  RetriedFailure failure(clock_);
  while (!stop.load()) {
    Result<bool> applied = ApplyNext(std::chrono::milliseconds(200), stop);
    if (applied.ok()) {
      failure.Clear();
    } else if (!stop.load()) {
      failure.Log(applied.status().message() + " (stream " + stream_ + " is not being applied)");
      ReportError(applied.status().message());
      clock_->SleepFor(std::chrono::milliseconds(200));
    }
  }
}

}  // namespace marmot
