// NodeMetrics: names, HELP text, what each report moves, and the /health view of streams.
#include "telemetry/metrics.h"

#include <gtest/gtest.h>

#include <string>

#include "db/applier.h"

namespace marmot {
namespace {

// The value of the sample `name` (with its labels, as serialized), or -1 when absent.
double Sample(const std::string& text, const std::string& name) {
  size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

TEST(MetricsTest, NamesCarryNamespaceAndSubsystemAndEveryFamilyHasHelp) {
  NodeMetrics metrics("acme", "db");
  std::string text = metrics.Serialize();
  EXPECT_NE(text.find("# HELP acme_db_changes_applied_total "), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE acme_db_apply_seconds histogram"), std::string::npos);
  int families = 0;
  for (size_t at = text.find("# TYPE "); at != std::string::npos; at = text.find("# TYPE ", at + 1)) {
    size_t start = at + 7;
    std::string name = text.substr(start, text.find(' ', start) - start);
    ++families;
    EXPECT_EQ(name.rfind("acme_db_", 0), 0u) << name;
    EXPECT_NE(text.find("# HELP " + name + " "), std::string::npos) << "no HELP for " << name;
  }
  EXPECT_GE(families, 20);  // the per-stream families appear with their first stream

  NodeMetrics plain("marmot", "");
  EXPECT_NE(plain.Serialize().find("\nmarmot_changes_applied_total 0"), std::string::npos);
}

TEST(MetricsTest, ReportsMoveTheirCounters) {
  NodeMetrics metrics("marmot", "");
  metrics.ChangesCaptured(7);
  metrics.ChangesPublished(7, 2, 0.003);
  metrics.BatchPublished(7);
  ApplyStats stats;
  stats.applied = 5;
  stats.unchanged = 2;
  stats.superseded = 1;
  stats.dead_lettered = 1;
  metrics.BatchApplied(stats, 3, 9, 0.01);
  metrics.MessageDeadLettered();
  std::string text = metrics.Serialize();
  EXPECT_EQ(Sample(text, "marmot_changes_captured_total"), 7);
  EXPECT_EQ(Sample(text, "marmot_changes_published_total"), 7);
  EXPECT_EQ(Sample(text, "marmot_messages_published_total"), 2);
  EXPECT_EQ(Sample(text, "marmot_changes_applied_total"), 5);
  EXPECT_EQ(Sample(text, "marmot_messages_applied_total"), 3);
  EXPECT_EQ(Sample(text, "marmot_changes_skipped_total{reason=\"echo\"}"), 2);
  EXPECT_EQ(Sample(text, "marmot_changes_skipped_total{reason=\"superseded\"}"), 1);
  EXPECT_EQ(Sample(text, "marmot_changes_dead_lettered_total"), 2);  // one change, one whole message
  EXPECT_EQ(Sample(text, "marmot_apply_batch_changes_sum"), 9);
  EXPECT_EQ(Sample(text, "marmot_publish_ack_seconds_count"), 1);
}

TEST(MetricsTest, StreamProgressAndErrorsAreWhatHealthSees) {
  NodeMetrics metrics("marmot", "");
  metrics.StreamProgress("s-1", 10, 25);
  metrics.StreamProgress("s-2", 4, 4);
  metrics.StreamError("s-2", "checking stream s-2: timeout");
  std::vector<StreamHealth> streams = metrics.Streams();
  ASSERT_EQ(streams.size(), 2u);
  EXPECT_EQ(streams[0].lag(), 15u);
  EXPECT_TRUE(streams[0].ok);
  EXPECT_FALSE(streams[1].ok);
  EXPECT_EQ(streams[1].error, "checking stream s-2: timeout");
  std::string text = metrics.Serialize();
  EXPECT_EQ(Sample(text, "marmot_stream_lag_messages{stream=\"s-1\"}"), 15);
  EXPECT_EQ(Sample(text, "marmot_stream_healthy{stream=\"s-2\"}"), 0);

  // A batch applied with an unchanged end (0) keeps the last known end; applying past it moves it.
  metrics.StreamProgress("s-1", 25, 0);
  EXPECT_EQ(metrics.Streams()[0].lag(), 0u);
  metrics.StreamProgress("s-1", 30, 0);
  EXPECT_EQ(metrics.Streams()[0].last_seq, 30u);
  metrics.StreamError("s-2", "");
  EXPECT_TRUE(metrics.Streams()[1].ok);
}

TEST(MetricsTest, NodeStateTotalsBecomeCountersThatNeverGoDown) {
  NodeMetrics metrics("marmot", "");
  NodeState state;
  state.nats_connected = true;
  state.nats_reconnects = 3;
  state.change_log_pending = 12;
  metrics.SetNodeState(state);
  state.nats_reconnects = 2;  // a new connection counts from 0 again: the counter stays
  metrics.SetNodeState(state);
  std::string text = metrics.Serialize();
  EXPECT_EQ(Sample(text, "marmot_nats_reconnects_total"), 3);
  EXPECT_EQ(Sample(text, "marmot_nats_connected"), 1);
  EXPECT_EQ(Sample(text, "marmot_change_log_pending_rows"), 12);
}

}  // namespace
}  // namespace marmot
