// The snapshot half of Node (node.h explains when snapshots are saved and restored; the policy
// with its races is in docs/SNAPSHOTS.md).
#include <spdlog/spdlog.h>

#include <filesystem>

#include "db/applier.h"
#include "db/capture.h"
#include "db/change_reader.h"
#include "db/change_watcher.h"
#include "db/marmot_tables.h"
#include "db/schema.h"
#include "db/sqlite.h"
#include "node/node.h"
#include "snapshot/lease.h"
#include "snapshot/live_restore.h"
#include "snapshot/manifest.h"
#include "snapshot/open_store.h"
#include "snapshot/progress_log.h"
#include "snapshot/snapshot_keeper.h"
#include "stream/consumer.h"
#include "stream/jetstream_sink.h"
#include "stream/publisher.h"
#include "telemetry/retried_failure.h"
#include "util/clock.h"

namespace marmot {
namespace {

// How often the supervisor looks at gaps, timers and activity.
constexpr auto kSupervisorTick = std::chrono::seconds(1);
// The log-size trigger saves at most this often on one node.
constexpr auto kMinLogSizeSaveEvery = std::chrono::seconds(60);

// Gaps recorded in __marmot__gaps: stream -> first missing sequence.
Result<std::map<std::string, uint64_t>> RecordedGaps(const std::string& db_path) {
  Result<Database> db = Database::Open(db_path);
  if (!db.ok()) return db.status();
  std::map<std::string, uint64_t> gaps;
  Result<bool> exists = db->HasTable(kGapsTable);
  if (!exists.ok()) return exists.status();
  if (!*exists) return gaps;
  Result<Statement> q =
      db->Prepare("SELECT stream, min(first_missing) FROM " + QuoteIdent(kGapsTable) + " GROUP BY stream");
  if (!q.ok()) return q.status();
  while (true) {
    Result<bool> row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    gaps[q->ColumnText(0)] = static_cast<uint64_t>(q->ColumnInt(1));
  }
  return gaps;
}

// True when the database has no stream positions and no rows in any application table.
Result<bool> IsNewDatabase(const std::string& db_path) {
  Result<Database> db = Database::Open(db_path);
  if (!db.ok()) return db.status();
  Result<int64_t> positions = db->QueryInt("SELECT count(*) FROM " + QuoteIdent(kPositionsTable));
  if (!positions.ok()) return positions.status();
  if (*positions > 0) return false;
  Result<std::vector<TableSchema>> tables = ReadSchema(*db);
  if (!tables.ok()) return tables.status();
  for (const TableSchema& table : *tables) {
    Result<int64_t> any = db->QueryInt("SELECT EXISTS (SELECT 1 FROM " + QuoteIdent(table.name) + ")");
    if (!any.ok()) return any.status();
    if (*any != 0) return false;
  }
  return true;
}

}  // namespace

Status Node::OpenSnapshots() {
  if (!options_.snapshot.enabled) return Status();
  // Like the streams (ConnectNats): a clustered JetStream that is still forming answers late.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (true) {
    Status s = OpenSnapshotsOnce();
    if (s.ok() || !s.Is(StatusCode::kUnavailable) || std::chrono::steady_clock::now() > deadline) return s;
    spdlog::info("{}; retrying", s.message());
    for (int i = 0; i < 10 && !Cancelled(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (Cancelled()) return Status::Unavailable("cancelled while " + s.message());
  }
}

Status Node::OpenSnapshotsOnce() {
  Result<std::unique_ptr<SnapshotStore>> store =
      OpenSnapshotStore(options_.snapshot, options_.snapshot_bucket, client_.get());
  if (!store.ok()) return store.status().WithContext("opening the snapshot store");
  Result<std::unique_ptr<SnapshotLease>> lease = SnapshotLease::Open(
      client_.get(), options_.lease_bucket, static_cast<int>(options_.snapshot.nats.replicas));
  if (!lease.ok()) return lease.status();
  SnapshotKeeperOptions ko;
  ko.db_path = options_.db_path;
  ko.work_dir = options_.db_path + "-marmot-snapshot.tmp";
  ko.node_id = options_.node_id;
  ko.keep = static_cast<int>(options_.snapshot.keep);
  snapshots_ = std::make_unique<SnapshotKeeper>(std::move(*store), std::move(*lease), ko);
  snapshots_->Discard();  // what a killed run left
  return Status();
}

Status Node::BootstrapFromSnapshot() {
  if (!snapshots_ || !options_.replicate) return Status();
  Result<bool> is_new = IsNewDatabase(options_.db_path);
  if (!is_new.ok()) return is_new.status();
  if (!*is_new) return Status();
  Result<std::optional<SnapshotManifest>> newest = snapshots_->Newest();
  if (!newest.ok()) {
    spdlog::error("a new node would start from a snapshot, but {}; replaying the streams instead",
                  newest.status().message());
    return Status();
  }
  if (!*newest) {
    spdlog::info("new node: {} has no snapshot yet; replaying the streams from their start",
                 snapshots_->Describe());
    return Status();
  }
  spdlog::info("new node: restoring snapshot {} from {} before replicating", (*newest)->id,
               snapshots_->Describe());
  Status s = RestoreSnapshot(**newest, /*pipeline_running=*/false);
  if (!s.ok())
    spdlog::error("restoring snapshot {}: {}; replaying the streams instead", (*newest)->id, s.message());
  return Status();
}

Status Node::RestoreSnapshot(const SnapshotManifest& m, bool pipeline_running) {
  auto start = std::chrono::steady_clock::now();
  Result<std::string> fetched = snapshots_->Fetch(m);
  if (!fetched.ok()) return fetched.status();
  struct Discard {
    SnapshotKeeper* keeper;
    ~Discard() { keeper->Discard(); }
  } discard{snapshots_.get()};
  if (pipeline_running) StopPipeline();
  // Once, with the consumers stopped: no dead letter can be recorded after it.
  Status restored = PrepareSnapshotForRestore(*fetched, options_.db_path);
  RetriedFailure retries(SystemClock::Get());  // a retry that never ends turns into error lines
  while (restored.ok()) {
    if (publisher_) {
      // Local writes are never lost to a restore: they go out first, and the restore happens only
      // if nothing was captured after that (checked under the database's write lock).
      Status published = publisher_->PublishAvailable(shutdown_);
      if (!published.ok()) {
        if (shutdown_.load()) return published;
        retries.Log("before restoring snapshot " + m.id +
                    ": publishing what this node captured: " + published.message() + "; retrying");
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
    }
    // Entries after this are not in the streams (all of them, when nothing was published here).
    uint64_t published_up_to = publisher_ ? publisher_->cursor() : 0;
    LoggedProgress progress("restoring snapshot " + m.id + " into " + options_.db_path, m.db_bytes);
    restored = RestoreDatabase(
        options_.db_path, *fetched,
        [this, published_up_to]() -> Status {
          if (!options_.publish) return Status();  // captured writes are never published anyway
          Result<Database> db = Database::Open(options_.db_path);
          if (!db.ok()) return db.status();
          Result<int64_t> pending = db->QueryInt("SELECT count(*) FROM " + QuoteIdent(kChangeLogTable) +
                                                 " WHERE seq > " + std::to_string(published_up_to));
          if (!pending.ok()) return pending.status();
          if (*pending > 0)
            return Status::Busy(std::to_string(*pending) + " captured change(s) are not published yet");
          return Status();
        },
        &progress, shutdown_);
    // Publish those first (with no publisher yet, at a new node's start, give up: they go out
    // through the streams as usual).
    if (restored.Is(StatusCode::kBusy) && publisher_ && !shutdown_.load()) {
      retries.Log("restoring snapshot " + m.id + ": " + restored.message() + "; publishing them first");
      restored = Status();
      continue;
    }
    if (restored.ok()) progress.Finish();
    break;
  }
  if (restored.ok()) {
    last_restored_id_ = m.id;
    metrics_->SnapshotRestored(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    spdlog::info("restored snapshot {} (saved by node {}); replicating from its positions", m.id, m.node_id);
    gap_note_.clear();
  } else {
    spdlog::error("restoring snapshot {} failed, the database is as it was: {}", m.id, restored.message());
  }
  // Capture objects and the pipeline's connections start over on the restored content.
  publisher_.reset();
  sink_.reset();
  watcher_.reset();
  reader_.reset();
  if (!pipeline_running) {
    MARMOT_RETURN_IF_ERROR(PrepareDatabase());
    return restored;
  }
  // A running node must not stay without replication: keep trying (the database may be locked by
  // the application for a while, NATS may be away) until it works or the node stops.
  while (true) {
    Status restarted = PrepareDatabase();
    if (restarted.ok()) restarted = StartPipeline();
    if (restarted.ok() || shutdown_.load()) break;
    spdlog::error("restarting replication after the restore: {}; retrying in 5 s", restarted.message());
    StopPipeline();
    publisher_.reset();
    sink_.reset();
    watcher_.reset();
    reader_.reset();
    std::unique_lock<std::mutex> lock(supervisor_mu_);
    supervisor_cv_.wait_for(lock, std::chrono::seconds(5), [this] { return shutdown_.load(); });
  }
  return restored;
}

void Node::RestoreIfGaps() {
  Result<std::map<std::string, uint64_t>> gaps = RecordedGaps(options_.db_path);
  if (!gaps.ok() || gaps->empty()) return;
  Result<std::optional<SnapshotManifest>> newest = snapshots_->Newest();
  std::string note;
  if (!newest.ok()) {
    note = "cannot look for a snapshot to heal the recorded gaps: " + newest.status().message();
  } else if (!*newest) {
    note = "gaps are recorded in __marmot__gaps and " + snapshots_->Describe() +
           " has no snapshot to heal them; this node's copy may be incomplete until one is saved";
  } else if ((*newest)->id == last_restored_id_) {
    note = "gaps remain after restoring snapshot " + last_restored_id_ +
           " (it is older than what the streams still hold); waiting for a newer snapshot";
  } else {
    bool heals = false;
    for (const auto& [stream, first_missing] : *gaps) {
      if ((*newest)->PositionOf(stream) >= first_missing) heals = true;
    }
    if (heals) {
      Status s = RestoreSnapshot(**newest, /*pipeline_running=*/true);
      if (!s.ok() && !shutdown_.load()) spdlog::error("{}", s.message());
      return;
    }
    note =
        "the newest snapshot " + (*newest)->id + " is older than the recorded gaps; waiting for a newer one";
  }
  if (note != gap_note_) spdlog::error("{}", note);
  gap_note_ = note;
}

Result<bool> Node::SaveSnapshotOnce() {
  auto start = std::chrono::steady_clock::now();
  SnapshotManifest manifest;
  Result<SnapshotKeeper::SaveOutcome> saved = snapshots_->Save(&manifest);
  if (!saved.ok()) return saved.status();
  if (*saved != SnapshotKeeper::SaveOutcome::kSaved) return false;
  metrics_->SnapshotSaved(
      manifest.object_bytes, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  return true;
}

Status Node::SaveSnapshot(std::chrono::seconds lease_wait) {
  if (!snapshots_) return Status::InvalidArgument("snapshots are disabled ([snapshot] enabled = false)");
  std::lock_guard<std::mutex> lock(snapshot_mu_);  // the supervisor uses the keeper too
  return SaveSnapshotWithin(lease_wait);
}

Status Node::SaveSnapshotWithin(std::chrono::seconds lease_wait) {
  auto deadline = std::chrono::steady_clock::now() + lease_wait;
  while (true) {
    Result<bool> saved = SaveSnapshotOnce();
    if (!saved.ok()) return saved.status();
    if (*saved) return Status();
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Busy("another node held the snapshot lease for " + std::to_string(lease_wait.count()) +
                          " s");
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

uint64_t Node::ActivityCount() const {
  uint64_t n = publisher_ ? publisher_->published_rows() : 0;
  for (const auto& c : consumers_) n += c->applied_messages();
  return n;
}

void Node::SupervisorLoop() {
  using Clock = std::chrono::steady_clock;
  const auto interval = options_.snapshot.interval;
  Clock::time_point next_interval_save = Clock::now() + interval;
  Clock::time_point last_log_size_save{};
  uint64_t every =
      static_cast<uint64_t>(std::max<int64_t>(1, options_.layout.max_entries / options_.layout.shards));
  uint64_t seen_shard1 = consumers_.empty() ? 0 : consumers_.front()->last_applied_seq();
  uint64_t last_activity_count = ActivityCount();
  Clock::time_point last_activity = Clock::now();
  while (true) {
    {
      std::unique_lock<std::mutex> lock(supervisor_mu_);
      supervisor_cv_.wait_for(lock, kSupervisorTick, [this] { return shutdown_.load(); });
    }
    if (shutdown_.load()) return;
    std::lock_guard<std::mutex> lock(snapshot_mu_);  // SaveSnapshot (-save-snapshot) uses the keeper too
    if (options_.replicate) RestoreIfGaps();
    if (shutdown_.load()) return;

    bool save = false;
    if (interval.count() > 0 && Clock::now() >= next_interval_save) {
      save = true;
      next_interval_save = Clock::now() + interval;
    }
    uint64_t shard1 = consumers_.empty() ? 0 : consumers_.front()->last_applied_seq();
    if (shard1 / every > seen_shard1 / every && Clock::now() - last_log_size_save >= kMinLogSizeSaveEvery) {
      save = true;
      last_log_size_save = Clock::now();
    }
    if (shard1 != 0) seen_shard1 = shard1;
    Result<std::map<std::string, uint64_t>> gaps = RecordedGaps(options_.db_path);
    if (save && gaps.ok() && !gaps->empty()) {
      spdlog::debug("not saving a snapshot: this node recorded gaps");  // RestoreIfGaps said why
      save = false;
    }
    if (save) {
      Result<bool> saved = SaveSnapshotOnce();
      if (!saved.ok()) {
        // A gap recorded since the check above: the refusal is expected, RestoreIfGaps says why.
        Result<std::map<std::string, uint64_t>> now = RecordedGaps(options_.db_path);
        bool gap_since = now.ok() && !now->empty();
        spdlog::log(gap_since ? spdlog::level::debug : spdlog::level::err, "saving a snapshot: {}",
                    saved.status().message());
      }
    }

    uint64_t activity = ActivityCount();
    if (activity != last_activity_count) {
      last_activity_count = activity;
      last_activity = Clock::now();
    } else if (options_.sleep_timeout.count() > 0 && Clock::now() - last_activity >= options_.sleep_timeout) {
      spdlog::info("no change in either direction for {} ms (sleep_timeout)", options_.sleep_timeout.count());
      if (options_.publish) {
        Status s = SaveSnapshotWithin(std::chrono::seconds(30));
        if (!s.ok()) spdlog::error("saving a snapshot before sleeping: {}", s.message());
      }
      if (options_.on_sleep_timeout) options_.on_sleep_timeout();
      return;
    }
  }
}

}  // namespace marmot
