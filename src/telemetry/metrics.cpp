#include "telemetry/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "db/applier.h"

namespace marmot {
namespace {

using prometheus::Histogram;

// Seconds: 0.5 ms .. 16 s, doubling.
Histogram::BucketBoundaries LatencyBuckets() {
  Histogram::BucketBoundaries b;
  for (double s = 0.0005; s <= 16.5; s *= 2) b.push_back(s);
  return b;
}

// Rows per batch: 1 .. 65,536, times 4.
Histogram::BucketBoundaries SizeBuckets() {
  Histogram::BucketBoundaries b;
  for (double n = 1; n <= 65536; n *= 4) b.push_back(n);
  return b;
}

}  // namespace

struct NodeMetrics::Instruments {
  explicit Instruments(prometheus::Registry& r, const std::string& p)
      : captured(
            MakeCounter(r, p + "changes_captured_total",
                        "Row changes the publisher read from the change log (written there by the capture "
                        "triggers).")),
        published(
            MakeCounter(r, p + "changes_published_total", "Row changes JetStream stored in a shard stream.")),
        messages_published(
            MakeCounter(r, p + "messages_published_total",
                        "Messages JetStream stored in a shard stream (one carries many row changes).")),
        applied(MakeCounter(r, p + "changes_applied_total",
                            "Row changes from the streams applied to the database.")),
        messages_applied(
            MakeCounter(r, p + "messages_applied_total", "Stream messages applied to the database.")),
        skipped_family(
            prometheus::BuildCounter()
                .Name(p + "changes_skipped_total")
                .Help("Row changes from the streams not applied: reason=\"echo\" (this node's own "
                      "change, already in place) or \"superseded\" (a newer local write to the row "
                      "will be published).")
                .Register(r)),
        skipped_echo(skipped_family.Add({{"reason", "echo"}})),
        skipped_superseded(skipped_family.Add({{"reason", "superseded"}})),
        dead_lettered(
            MakeCounter(r, p + "changes_dead_lettered_total",
                        "Row changes and messages that could not be applied and went to the dead-letter "
                        "table.")),
        schema_waits(MakeCounter(r, p + "schema_waits_total",
                                 "Batches of row changes that waited for the schema stream (a row named a "
                                 "table or column this node did not have yet).")),
        schema_changes(MakeCounter(r, p + "schema_messages_applied_total",
                                   "Schema stream messages applied (docs/SCHEMA.md).")),
        schema_settled(MakeGauge(r, p + "schema_settled",
                                 "1 while this node's schema equals the cluster's (the schema stream's), 0 "
                                 "while it waits for its own schema change to come back or differs.")),
        schema_differences(
            MakeGauge(r, p + "schema_differences",
                      "Tables whose definitions (with indexes and triggers) differ from another "
                      "node's while neither has a schema change in flight.")),
        pending(
            MakeGauge(r, p + "change_log_pending_rows",
                      "Captured row changes not yet confirmed by JetStream (waiting in the change log).")),
        dead_letter_rows(
            MakeGauge(r, p + "dead_letter_rows", "Rows in the dead-letter table __marmot__dead_letters.")),
        gap_rows(
            MakeGauge(r, p + "gap_rows",
                      "Rows in __marmot__gaps: stream messages this node will never apply; its copy may be "
                      "incomplete until a snapshot is restored.")),
        nats_connected(MakeGauge(r, p + "nats_connected", "1 while the NATS connection is up, else 0.")),
        nats_reconnects(MakeCounter(r, p + "nats_reconnects_total", "Reconnections of the NATS connection.")),
        server_restarts(MakeCounter(r, p + "embedded_server_restarts_total",
                                    "Restarts of the embedded nats-server after it exited.")),
        publish_ack(MakeHistogram(r, p + "publish_ack_seconds",
                                  "Time from sending a group of batches to JetStream until all were stored.",
                                  LatencyBuckets())),
        publish_batch(
            MakeHistogram(r, p + "publish_batch_rows", "Row changes per published batch.", SizeBuckets())),
        apply_seconds(
            MakeHistogram(r, p + "apply_seconds", "Duration of one apply transaction.", LatencyBuckets())),
        apply_batch(
            MakeHistogram(r, p + "apply_batch_changes", "Row changes per apply transaction.", SizeBuckets())),
        lock_hold(
            MakeHistogram(r, p + "apply_lock_hold_seconds",
                          "How long an apply transaction held the database's write lock (the application's "
                          "writers wait meanwhile).",
                          LatencyBuckets())),
        lock_hold_max(
            MakeGauge(r, p + "apply_lock_hold_max_seconds",
                      "The longest an apply transaction held the write lock since marmot started.")),
        last_seq_family(prometheus::BuildGauge()
                            .Name(p + "stream_last_sequence")
                            .Help("The last sequence of the shard stream, as last seen by its consumer.")
                            .Register(r)),
        applied_seq_family(prometheus::BuildGauge()
                               .Name(p + "stream_applied_sequence")
                               .Help("The last sequence of the shard stream applied to this database.")
                               .Register(r)),
        lag_family(prometheus::BuildGauge()
                       .Name(p + "stream_lag_messages")
                       .Help("Messages of the shard stream not yet applied here.")
                       .Register(r)),
        healthy_family(prometheus::BuildGauge()
                           .Name(p + "stream_healthy")
                           .Help("1 while the shard stream is read and applied, 0 while that fails.")
                           .Register(r)),
        gaps_family(prometheus::BuildCounter()
                        .Name(p + "stream_gaps_total")
                        .Help("Times messages of the shard stream were found missing (discarded before this "
                              "node read them, or the stream was re-created).")
                        .Register(r)),
        snapshots_saved(
            MakeCounter(r, p + "snapshots_saved_total", "Snapshots this node saved and uploaded.")),
        snapshots_restored(MakeCounter(r, p + "snapshots_restored_total", "Snapshots this node restored.")),
        snapshot_time(MakeGauge(r, p + "snapshot_last_save_timestamp_seconds",
                                "Unix time of this node's last saved snapshot (age: time() minus this).")),
        snapshot_duration(MakeGauge(r, p + "snapshot_last_save_duration_seconds",
                                    "How long this node's last snapshot took to save and upload.")),
        snapshot_size(
            MakeGauge(r, p + "snapshot_last_size_bytes", "Compressed size of this node's last snapshot.")),
        restore_duration(
            MakeGauge(r, p + "snapshot_last_restore_duration_seconds",
                      "How long this node's last snapshot restore took (download and restore).")) {
    prometheus::BuildGauge()
        .Name(p + "build_info")
        .Help("Always 1; the label carries marmot's version.")
        .Register(r)
        .Add({{"version", MARMOT_VERSION}})
        .Set(1);
  }

  static prometheus::Counter& MakeCounter(prometheus::Registry& r, const std::string& name,
                                          const std::string& help) {
    return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
  }
  static prometheus::Gauge& MakeGauge(prometheus::Registry& r, const std::string& name,
                                      const std::string& help) {
    return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
  }
  static prometheus::Histogram& MakeHistogram(prometheus::Registry& r, const std::string& name,
                                              const std::string& help,
                                              const prometheus::Histogram::BucketBoundaries& buckets) {
    return prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add({}, buckets);
  }

  prometheus::Counter& captured;
  prometheus::Counter& published;
  prometheus::Counter& messages_published;
  prometheus::Counter& applied;
  prometheus::Counter& messages_applied;
  prometheus::Family<prometheus::Counter>& skipped_family;
  prometheus::Counter& skipped_echo;
  prometheus::Counter& skipped_superseded;
  prometheus::Counter& dead_lettered;
  prometheus::Counter& schema_waits;
  prometheus::Counter& schema_changes;
  prometheus::Gauge& schema_settled;
  prometheus::Gauge& schema_differences;
  prometheus::Gauge& pending;
  prometheus::Gauge& dead_letter_rows;
  prometheus::Gauge& gap_rows;
  prometheus::Gauge& nats_connected;
  prometheus::Counter& nats_reconnects;
  prometheus::Counter& server_restarts;
  prometheus::Histogram& publish_ack;
  prometheus::Histogram& publish_batch;
  prometheus::Histogram& apply_seconds;
  prometheus::Histogram& apply_batch;
  prometheus::Histogram& lock_hold;
  prometheus::Gauge& lock_hold_max;
  prometheus::Family<prometheus::Gauge>& last_seq_family;
  prometheus::Family<prometheus::Gauge>& applied_seq_family;
  prometheus::Family<prometheus::Gauge>& lag_family;
  prometheus::Family<prometheus::Gauge>& healthy_family;
  prometheus::Family<prometheus::Counter>& gaps_family;
  prometheus::Counter& snapshots_saved;
  prometheus::Counter& snapshots_restored;
  prometheus::Gauge& snapshot_time;
  prometheus::Gauge& snapshot_duration;
  prometheus::Gauge& snapshot_size;
  prometheus::Gauge& restore_duration;
};

struct NodeMetrics::StreamInstruments {
  StreamHealth health;
  prometheus::Gauge* last_seq = nullptr;
  prometheus::Gauge* applied_seq = nullptr;
  prometheus::Gauge* lag = nullptr;
  prometheus::Gauge* healthy = nullptr;
  prometheus::Counter* gaps = nullptr;
};

namespace {

std::string Prefix(const std::string& name_space, const std::string& subsystem) {
  std::string p;
  if (!name_space.empty()) p += name_space + "_";
  if (!subsystem.empty()) p += subsystem + "_";
  return p;
}

}  // namespace

NodeMetrics::NodeMetrics(const std::string& name_space, const std::string& subsystem)
    : registry_(std::make_shared<prometheus::Registry>()),
      m_(std::make_unique<Instruments>(*registry_, Prefix(name_space, subsystem))) {}

NodeMetrics::~NodeMetrics() = default;

void NodeMetrics::ChangesCaptured(size_t rows) { m_->captured.Increment(static_cast<double>(rows)); }

void NodeMetrics::ChangesPublished(size_t rows, size_t messages, double ack_seconds) {
  m_->published.Increment(static_cast<double>(rows));
  m_->messages_published.Increment(static_cast<double>(messages));
  m_->publish_ack.Observe(ack_seconds);
}

void NodeMetrics::BatchPublished(size_t rows) { m_->publish_batch.Observe(static_cast<double>(rows)); }

void NodeMetrics::BatchApplied(const ApplyStats& stats, size_t messages, size_t changes, double seconds) {
  m_->applied.Increment(static_cast<double>(stats.applied));
  m_->messages_applied.Increment(static_cast<double>(messages));
  if (stats.unchanged) m_->skipped_echo.Increment(static_cast<double>(stats.unchanged));
  if (stats.superseded) m_->skipped_superseded.Increment(static_cast<double>(stats.superseded));
  if (stats.dead_lettered) m_->dead_lettered.Increment(static_cast<double>(stats.dead_lettered));
  m_->apply_seconds.Observe(seconds);
  m_->apply_batch.Observe(static_cast<double>(changes));
  m_->lock_hold.Observe(stats.max_hold_seconds);
  std::lock_guard<std::mutex> lock(mu_);  // consumers of several shards report at once
  if (stats.max_hold_seconds > m_->lock_hold_max.Value()) m_->lock_hold_max.Set(stats.max_hold_seconds);
}

void NodeMetrics::MessageDeadLettered() { m_->dead_lettered.Increment(); }

void NodeMetrics::SchemaWaited() { m_->schema_waits.Increment(); }

void NodeMetrics::SchemaDifferences(size_t tables) {
  m_->schema_differences.Set(static_cast<double>(tables));
}

void NodeMetrics::SchemaApplied(bool message, bool settled) {
  if (message) m_->schema_changes.Increment();
  m_->schema_settled.Set(settled ? 1 : 0);
}

NodeMetrics::StreamInstruments& NodeMetrics::StreamLocked(const std::string& stream) {
  std::unique_ptr<StreamInstruments>& s = streams_[stream];
  if (!s) {
    s = std::make_unique<StreamInstruments>();
    s->health.stream = stream;
    prometheus::Labels labels{{"stream", stream}};
    s->last_seq = &m_->last_seq_family.Add(labels);
    s->applied_seq = &m_->applied_seq_family.Add(labels);
    s->lag = &m_->lag_family.Add(labels);
    s->healthy = &m_->healthy_family.Add(labels);
    s->gaps = &m_->gaps_family.Add(labels);
    s->healthy->Set(1);
  }
  return *s;
}

void NodeMetrics::StreamProgress(const std::string& stream, uint64_t applied_seq, uint64_t last_seq) {
  std::lock_guard<std::mutex> lock(mu_);
  StreamInstruments& s = StreamLocked(stream);
  s.health.applied_seq = applied_seq;
  if (last_seq != 0) s.health.last_seq = last_seq;
  s.health.last_seq = std::max(s.health.last_seq, applied_seq);
  s.applied_seq->Set(static_cast<double>(s.health.applied_seq));
  s.last_seq->Set(static_cast<double>(s.health.last_seq));
  s.lag->Set(static_cast<double>(s.health.lag()));
}

void NodeMetrics::StreamError(const std::string& stream, const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  StreamInstruments& s = StreamLocked(stream);
  s.health.ok = error.empty();
  s.health.error = error;
  s.healthy->Set(error.empty() ? 1 : 0);
}

void NodeMetrics::GapRecorded(const std::string& stream) {
  std::lock_guard<std::mutex> lock(mu_);
  StreamLocked(stream).gaps->Increment();
}

void NodeMetrics::SnapshotSaved(uint64_t bytes, double seconds, double unix_time) {
  m_->snapshots_saved.Increment();
  m_->snapshot_size.Set(static_cast<double>(bytes));
  m_->snapshot_duration.Set(seconds);
  m_->snapshot_time.Set(unix_time);
}

void NodeMetrics::SnapshotRestored(double seconds) {
  m_->snapshots_restored.Increment();
  m_->restore_duration.Set(seconds);
}

void NodeMetrics::SetNodeState(const NodeState& state) {
  std::lock_guard<std::mutex> lock(mu_);
  m_->nats_connected.Set(state.nats_connected ? 1 : 0);
  m_->pending.Set(static_cast<double>(state.change_log_pending));
  m_->dead_letter_rows.Set(static_cast<double>(state.dead_letters));
  m_->gap_rows.Set(static_cast<double>(state.recorded_gaps));
  // Counters only go up: the node reports totals, the counters take the difference.
  if (state.nats_reconnects > reconnects_seen_) {
    m_->nats_reconnects.Increment(static_cast<double>(state.nats_reconnects - reconnects_seen_));
    reconnects_seen_ = state.nats_reconnects;
  }
  if (state.server_restarts > restarts_seen_) {
    m_->server_restarts.Increment(static_cast<double>(state.server_restarts - restarts_seen_));
    restarts_seen_ = state.server_restarts;
  }
}

std::vector<StreamHealth> NodeMetrics::Streams() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<StreamHealth> out;
  for (const auto& [name, s] : streams_) out.push_back(s->health);
  return out;
}

std::string NodeMetrics::Serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace marmot
