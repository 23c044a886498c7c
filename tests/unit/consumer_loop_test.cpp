// The consumer's loop against an in-memory stream (FakeStream, a MessageSource) and a real Applier
// on a temporary database: sequence jumps, positions outside the stream's range, a stream deleted
// and re-created, a stream that lost its tail, chunk groups that never complete or grow too large,
// compression bombs, the batch size caps and duplicates. Every missing message must show up in
// __marmot__gaps (or __marmot__dead_letter), and everything else must be applied exactly once.
#include <zstd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "codec/compression.h"
#include "codec/wire_format.h"
#include "db/applier.h"
#include "stream/consumer.h"
#include "stream/message_source.h"
#include "test_util.h"
#include "util/clock.h"

namespace marmot {
namespace {

using namespace std::chrono_literals;
using test::Exec;
using test::QueryInt;
using test::TempDir;

constexpr int64_t kMinuteNs = 60'000'000'000;

// Now() moves only when SleepFor is called.
class FakeClock : public Clock {
 public:
  TimePoint Now() override { return now_; }
  void SleepFor(std::chrono::microseconds duration) override { now_ += duration; }

 private:
  TimePoint now_{std::chrono::hours(1)};
};

// One stream in memory. Delivery follows a cursor (the next sequence to deliver), as an ordered
// consumer does: messages removed before they were delivered are simply not seen.
class FakeStream : public MessageSource {
 public:
  struct Msg {
    uint64_t seq = 0;
    int64_t timestamp_ns = 0;
    std::string payload;
    std::string chunk;
    std::string barrier;
  };

  explicit FakeStream(int64_t created_ns) : created_ns_(created_ns) {}

  // Stores a message with the next sequence; its timestamp is 1 ms per sequence unless given.
  uint64_t Append(std::string payload, std::string chunk = "",
                  std::optional<int64_t> timestamp_ns = std::nullopt) {
    Msg m;
    m.seq = ++last_seq_;
    m.timestamp_ns = timestamp_ns ? *timestamp_ns : kBaseTime + static_cast<int64_t>(m.seq) * 1'000'000;
    m.payload = std::move(payload);
    m.chunk = std::move(chunk);
    messages_.push_back(std::move(m));
    return last_seq_;
  }
  // Stores a verify barrier of `session` (a Marmot-Verify-Barrier header, no change).
  uint64_t AppendBarrier(const std::string& session) {
    uint64_t seq = Append("verify barrier " + session);
    messages_.back().barrier = session;
    return seq;
  }
  // Limits retention: the messages up to `seq` are discarded.
  void DiscardThrough(uint64_t seq) {
    while (!messages_.empty() && messages_.front().seq <= seq) messages_.pop_front();
  }
  // The store lost every message after `seq`: the next message gets seq + 1.
  void TruncateAfter(uint64_t seq) {
    while (!messages_.empty() && messages_.back().seq > seq) messages_.pop_back();
    last_seq_ = seq;
  }
  // Deleted and created again: empty, a new creation time, sequences from 1.
  void Recreate(int64_t created_ns) {
    messages_.clear();
    last_seq_ = 0;
    created_ns_ = created_ns;
  }
  // The same stream, reported with another creation time (nats-server 2.9 after a leader change).
  void SetCreated(int64_t created_ns) { created_ns_ = created_ns; }
  // Delivers message `seq` once more before anything else (a duplicate delivery).
  void Redeliver(uint64_t seq) {
    for (const Msg& m : messages_) {
      if (m.seq == seq) redeliver_.push_back(m);
    }
  }

  // The next `answers` State() calls come from a replica that knows no leader and holds the
  // messages up to `last_seq` only (a server cut off from its cluster).
  void AnswerFromReplicaWithoutLeader(uint64_t last_seq, int answers) {
    replica_last_seq_ = last_seq;
    replica_answers_ = answers;
  }
  int replica_answers_left() const { return replica_answers_; }

  int subscribes() const { return subscribes_; }
  uint64_t subscribed_at() const { return cursor_at_subscribe_; }

  Result<StreamState> State() override {
    StreamState s;
    s.first_seq = messages_.empty() ? last_seq_ + 1 : messages_.front().seq;
    s.last_seq = last_seq_;
    s.messages = messages_.size();
    s.created_ns = created_ns_;
    if (replica_answers_ > 0) {
      --replica_answers_;
      s.last_seq = std::min(last_seq_, replica_last_seq_);
      s.messages = s.last_seq >= s.first_seq ? s.last_seq - s.first_seq + 1 : 0;
      s.leader_known = false;
    }
    return s;
  }
  Status Subscribe(uint64_t start_seq) override {
    ++subscribes_;
    cursor_ = start_seq;
    cursor_at_subscribe_ = start_seq;
    redeliver_.clear();
    return Status();
  }
  Result<bool> Next(std::chrono::milliseconds, SourceMessage* out) override {
    if (!redeliver_.empty()) {
      current_ = redeliver_.front();
      redeliver_.pop_front();
    } else {
      const Msg* next = Pending();
      if (next == nullptr) return false;
      current_ = *next;
      cursor_ = current_.seq + 1;
    }
    out->seq = current_.seq;
    out->timestamp_ns = current_.timestamp_ns;
    out->payload = current_.payload;
    out->chunk_header = current_.chunk;
    out->barrier = current_.barrier;
    return true;
  }
  bool HasPending() override { return !redeliver_.empty() || Pending() != nullptr; }
  Result<int64_t> StoredHash(uint64_t seq) override {
    ++hash_lookups_;
    for (const Msg& m : messages_) {
      if (m.seq == seq) return PayloadHash(m.payload);
    }
    return Status::NotFound("no message " + std::to_string(seq));
  }
  int hash_lookups() const { return hash_lookups_; }
  // The stream now holds another message under `seq` (a server served one its history does not keep).
  void ReplacePayload(uint64_t seq, std::string payload) {
    for (Msg& m : messages_) {
      if (m.seq == seq) m.payload = std::move(payload);
    }
  }

  static constexpr int64_t kBaseTime = 1'700'000'000'000'000'000;

 private:
  const Msg* Pending() const {
    for (const Msg& m : messages_) {
      if (m.seq >= cursor_) return &m;
    }
    return nullptr;
  }

  std::deque<Msg> messages_;
  std::deque<Msg> redeliver_;
  Msg current_;  // what the last Next handed out (its views point here)
  uint64_t last_seq_ = 0;
  int64_t created_ns_;
  uint64_t cursor_ = 1;
  uint64_t cursor_at_subscribe_ = 0;
  int subscribes_ = 0;
  uint64_t replica_last_seq_ = 0;
  int replica_answers_ = 0;
  int hash_lookups_ = 0;
};

RowChange Row(int64_t id, std::string v) {
  RowChange c;
  c.table = "t";
  c.op = RowChange::Op::kUpsert;
  c.columns = std::make_shared<const std::vector<std::string>>(std::vector<std::string>{"id", "v"});
  c.values = {Value::Integer(id), Value::Text(std::move(v))};
  return c;
}

// A change message as the publisher encodes it (before compression).
std::string Encode(std::vector<RowChange> changes) {
  ChangeMessage m;
  m.node_id = 9;
  m.first_seq = 1;
  m.last_seq = 1;
  m.changes = std::move(changes);
  return EncodeChangeMessage(m);
}

std::string Compress(const std::string& raw) {
  Result<std::string> z = ZstdCompress(raw);
  EXPECT_TRUE(z.ok()) << z.status().message();
  return z.ok() ? *z : std::string();
}

// A zstd frame that does not record its content size (the decoder cannot refuse it up front).
std::string CompressWithoutContentSize(const std::string& raw) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  size_t n = ZSTD_compress2(cctx, out.data(), out.size(), raw.data(), raw.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(ZSTD_isError(n) ? 0 : n);
  EXPECT_EQ(ZSTD_getFrameContentSize(out.data(), out.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  return out;
}

// `payload` cut into `count` pieces at byte boundaries, as the publisher cuts a row.
std::vector<std::string> Split(const std::string& payload, size_t count) {
  size_t limit = (payload.size() + count - 1) / count;
  std::vector<std::string> parts;
  for (size_t i = 0; i < count; ++i) parts.push_back(payload.substr(i * limit, limit));
  return parts;
}

std::string ChunkHeader(const std::string& group, size_t index, size_t count) {
  return group + " " + std::to_string(index) + " " + std::to_string(count);
}

// Text that zstd cannot shrink much.
std::string Noise(size_t size, uint32_t seed) {
  std::string s(size, ' ');
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>('a' + x % 26);
  }
  return s;
}

class ConsumerLoopTest : public ::testing::Test {
 protected:
  // Creation times 1000 s and 2000 s (Position() prints them in seconds).
  static constexpr int64_t kCreatedA = 1000'000'000'000;
  static constexpr int64_t kCreatedB = 2000'000'000'000;

  void SetUp() override {
    Exec(db_, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    Result<std::unique_ptr<Applier>> applier = Applier::Open(path_);
    ASSERT_TRUE(applier.ok()) << applier.status().message();
    applier_ = std::move(*applier);
    options_.layout.max_entries = 1024;
    options_.node_id = 1;
  }

  const std::string& Stream() {
    stream_name_ = options_.layout.StreamName(options_.shard);
    return stream_name_;
  }

  // A message upserting row `id` with value `v`, compressed when the layout says so.
  std::string Message(int64_t id, const std::string& v) {
    std::string raw = Encode({Row(id, v)});
    return options_.layout.compress ? Compress(raw) : raw;
  }
  uint64_t AppendRow(int64_t id, const std::string& v = "",
                     std::optional<int64_t> timestamp_ns = std::nullopt) {
    return stream_->Append(Message(id, v.empty() ? "v" + std::to_string(id) : v), "", timestamp_ns);
  }

  void StorePosition(uint64_t seq, int64_t created_ns, int64_t msg_hash = 0) {
    ASSERT_TRUE(applier_->SavePosition(StreamPosition{Stream(), seq, created_ns, msg_hash}).ok());
  }

  // Hands the stream and the applier to a new consumer and starts it.
  void StartConsumer() {
    consumer_ =
        std::make_unique<ShardConsumer>(std::move(source_), std::move(applier_), clock_, options_, nullptr);
    Status s = consumer_->Start();
    ASSERT_TRUE(s.ok()) << s.message();
  }

  bool ApplyNext() {
    Result<bool> r = consumer_->ApplyNext(0ms, stop_);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() && *r;
  }
  // Applies until nothing is queued; returns the number of batches.
  int Drain() {
    int batches = 0;
    while (ApplyNext() && batches < 10000) ++batches;
    return batches;
  }

  std::vector<std::string> Strings(const std::string& sql) { return test::Texts(db_, sql); }
  // "seq created" from __marmot__positions.
  std::string Position() {
    std::vector<std::string> p = Strings(
        "SELECT seq || ' ' || ifnull(stream_created / 1000000000, 'NULL') FROM __marmot__positions WHERE "
        "stream = '" +
        Stream() + "'");
    return p.empty() ? "none" : p[0];
  }
  int64_t PositionSeq() {
    return QueryInt(
        db_, "SELECT ifnull((SELECT seq FROM __marmot__positions WHERE stream = '" + Stream() + "'), -1)");
  }
  // "first last" per gap row (last NULL when unknown), in order.
  std::vector<std::string> Gaps() {
    return Strings(
        "SELECT stream || ' ' || first_missing || ' ' || ifnull(last_missing, 'NULL') FROM __marmot__gaps "
        "ORDER BY id");
  }
  std::vector<std::string> GapReasons() { return Strings("SELECT reason FROM __marmot__gaps ORDER BY id"); }
  // "stream seq" per dead letter, in order.
  std::vector<std::string> DeadLetters() {
    return Strings("SELECT stream || ' ' || stream_seq FROM __marmot__dead_letter ORDER BY id");
  }
  std::vector<std::string> DeadLetterReasons() {
    return Strings("SELECT reason FROM __marmot__dead_letter ORDER BY id");
  }
  std::string Ids() {
    std::vector<std::string> ids = Strings("SELECT id FROM t ORDER BY id");
    std::string s;
    for (const std::string& id : ids) s += (s.empty() ? "" : ",") + id;
    return s;
  }
  std::string Gap(uint64_t first, std::optional<uint64_t> last) {
    return Stream() + " " + std::to_string(first) + " " + (last ? std::to_string(*last) : "NULL");
  }
  std::string Dead(uint64_t seq) { return Stream() + " " + std::to_string(seq); }

  TempDir dir_;
  std::string path_ = dir_.File("replica.db");
  Database db_ = test::OpenDb(path_);
  std::unique_ptr<Applier> applier_;
  std::unique_ptr<FakeStream> owned_stream_ = std::make_unique<FakeStream>(kCreatedA);
  FakeStream* stream_ = owned_stream_.get();
  std::unique_ptr<MessageSource> source_ = std::move(owned_stream_);
  FakeClock fake_clock_;
  Clock* clock_ = &fake_clock_;
  ConsumerOptions options_;
  std::unique_ptr<ShardConsumer> consumer_;
  std::atomic<bool> stop_{false};
  std::string stream_name_;
};

// 1.
TEST_F(ConsumerLoopTest, ContiguousMessagesApplyAndMoveThePosition) {
  for (int id = 1; id <= 5; ++id) AppendRow(id);
  StartConsumer();
  EXPECT_EQ(stream_->subscribed_at(), 1u);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Ids(), "1,2,3,4,5");
  EXPECT_EQ(Position(), "5 1000");
  EXPECT_EQ(consumer_->applied_messages(), 5u);
  EXPECT_EQ(consumer_->applied_changes(), 5u);
  EXPECT_FALSE(ApplyNext());  // nothing queued
  AppendRow(6);
  AppendRow(7);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Ids(), "1,2,3,4,5,6,7");
  EXPECT_EQ(Position(), "7 1000");
  EXPECT_EQ(Strings("SELECT v FROM t WHERE id = 7"), (std::vector<std::string>{"v7"}));
  EXPECT_TRUE(Gaps().empty());
  EXPECT_TRUE(DeadLetters().empty());
  EXPECT_EQ(consumer_->gaps_found(), 0u);
}

// 1b. A restart resumes after the stored position; nothing is replayed.
TEST_F(ConsumerLoopTest, StartResumesAfterTheStoredPosition) {
  for (int id = 1; id <= 5; ++id) AppendRow(id);
  StorePosition(3, kCreatedA);
  StartConsumer();
  EXPECT_EQ(stream_->subscribed_at(), 4u);
  Drain();
  EXPECT_EQ(Ids(), "4,5");
  EXPECT_EQ(Position(), "5 1000");
  EXPECT_TRUE(Gaps().empty());
  EXPECT_EQ(consumer_->gaps_found(), 0u);
}

// 2.
TEST_F(ConsumerLoopTest, AJumpInSequenceIsRecordedAndConsumingGoesOn) {
  for (int id = 1; id <= 3; ++id) AppendRow(id);
  StartConsumer();
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Position(), "3 1000");
  for (int id = 4; id <= 9; ++id) AppendRow(id);
  stream_->DiscardThrough(6);  // 4..6 go before this node reads them
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Gaps(), (std::vector<std::string>{Gap(4, 6)}));
  EXPECT_NE(GapReasons()[0].find("discarded"), std::string::npos) << GapReasons()[0];
  EXPECT_EQ(consumer_->gaps_found(), 1u);
  EXPECT_EQ(Ids(), "1,2,3,7,8,9");
  EXPECT_EQ(Position(), "9 1000");
  AppendRow(10);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Ids(), "1,2,3,7,8,9,10");
  EXPECT_EQ(Position(), "10 1000");
  EXPECT_EQ(Gaps().size(), 1u);
  EXPECT_EQ(consumer_->gaps_found(), 1u);
}

// 3.
TEST_F(ConsumerLoopTest, APositionOlderThanTheStreamsFirstMessageIsAGapAtStart) {
  for (int id = 1; id <= 10; ++id) AppendRow(id);
  stream_->DiscardThrough(5);
  StorePosition(2, kCreatedA);
  StartConsumer();
  EXPECT_EQ(Gaps(), (std::vector<std::string>{Gap(3, 5)}));
  EXPECT_NE(GapReasons()[0].find("no longer holds"), std::string::npos) << GapReasons()[0];
  EXPECT_EQ(consumer_->gaps_found(), 1u);
  EXPECT_EQ(stream_->subscribed_at(), 6u);
  Drain();
  EXPECT_EQ(Ids(), "6,7,8,9,10");
  EXPECT_EQ(Position(), "10 1000");
  // Consuming began at the first message: no second gap for 3..5 when it arrived.
  EXPECT_EQ(Gaps().size(), 1u);
  EXPECT_EQ(consumer_->gaps_found(), 1u);
}

// 3b. Every message gone (the stream is empty but has had messages).
TEST_F(ConsumerLoopTest, AnEmptiedStreamIsAGapUpToItsLastSequence) {
  for (int id = 1; id <= 10; ++id) AppendRow(id);
  stream_->DiscardThrough(10);
  StorePosition(4, kCreatedA);
  StartConsumer();
  EXPECT_EQ(Gaps(), (std::vector<std::string>{Gap(5, 10)}));
  AppendRow(11);
  Drain();
  EXPECT_EQ(Ids(), "11");
  EXPECT_EQ(Position(), "11 1000");
  EXPECT_EQ(consumer_->gaps_found(), 1u);
}

// 4a.
TEST_F(ConsumerLoopTest, AStreamRecreatedWhileTheNodeWasAwayIsAGapAtStart) {
  StorePosition(7, kCreatedA);
  stream_->Recreate(kCreatedB);
  for (int id = 1; id <= 3; ++id) AppendRow(100 + id);
  StartConsumer();
  EXPECT_EQ(Gaps(), (std::vector<std::string>{Gap(8, std::nullopt)}));
  EXPECT_NE(GapReasons()[0].find("deleted and created again"), std::string::npos) << GapReasons()[0];
  EXPECT_EQ(consumer_->gaps_found(), 1u);
  EXPECT_EQ(Position(), "0 2000");  // the new stream, nothing of it applied yet
  EXPECT_EQ(stream_->subscribed_at(), 1u);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Ids(), "101,102,103");
  EXPECT_EQ(Position(), "3 2000");
  EXPECT_EQ(Gaps().size(), 1u);
}

// 4a''. nats-server 2.9 reports a clustered stream's creation time as the replica answering
// recorded it: after its leader moved to a restarted server it was 161 us later. Same stream: no
// gap, consuming goes on (tests/e2e/fault_server_loss_test.sh found the false gap).
TEST_F(ConsumerLoopTest, ACreationTimeThatMovesByMicrosecondsIsTheSameStream) {
  StorePosition(2, kCreatedA);
  stream_->Recreate(kCreatedA + 161'000);
  for (int id = 1; id <= 4; ++id) AppendRow(id);
  StartConsumer();
  EXPECT_TRUE(Gaps().empty());
  EXPECT_EQ(stream_->subscribed_at(), 3u);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Ids(), "3,4");
  stream_->SetCreated(kCreatedA - 2'000'000);  // the leader moves again, to an earlier replica
  AppendRow(5);
  clock_->SleepFor(std::chrono::seconds(10));  // past the check interval: CheckStream runs
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Ids(), "3,4,5");
  EXPECT_TRUE(Gaps().empty());
  EXPECT_EQ(consumer_->gaps_found(), 0u);
}

// 4a'. A position stored without a creation time (older version) beyond the stream's end.
TEST_F(ConsumerLoopTest, APositionWithoutCreationTimeBeyondTheEndMeansARecreatedStream) {
  StorePosition(7, 0);
  for (int id = 1; id <= 3; ++id) AppendRow(id);
  StartConsumer();
  EXPECT_EQ(Gaps(), (std::vector<std::string>{Gap(8, std::nullopt)}));
  Drain();
  EXPECT_EQ(Ids(), "1,2,3");
  EXPECT_EQ(Position(), "3 1000");
}

// 4a''. A position stored without a creation time inside the stream's range: the creation time is
// filled in, nothing else changes.
TEST_F(ConsumerLoopTest, APositionWithoutCreationTimeInsideTheRangeGetsOne) {
  for (int id = 1; id <= 3; ++id) AppendRow(id);
  StorePosition(2, 0);
  StartConsumer();
  EXPECT_TRUE(Gaps().empty());
  EXPECT_EQ(Position(), "2 1000");
  Drain();
  EXPECT_EQ(Ids(), "3");
  EXPECT_EQ(Position(), "3 1000");
}

// 4b.
TEST_F(ConsumerLoopTest, AStreamRecreatedWhileRunningIsConsumedFromItsStart) {
  options_.check_interval = 0ms;
  for (int id = 1; id <= 5; ++id) AppendRow(id);
  StartConsumer();
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Position(), "5 1000");
  int subscribes = stream_->subscribes();
  // The new stream soon holds more messages than this node's position in the old one: all of them
  // (1..5 below the old position included) must be applied.
  stream_->Recreate(kCreatedB);
  for (int id = 1; id <= 8; ++id) AppendRow(100 + id);
  EXPECT_TRUE(ApplyNext());
  Drain();
  EXPECT_EQ(Gaps(), (std::vector<std::string>{Gap(6, std::nullopt)}));
  EXPECT_NE(GapReasons()[0].find("deleted and created again"), std::string::npos) << GapReasons()[0];
  EXPECT_EQ(consumer_->gaps_found(), 1u);
  EXPECT_EQ(stream_->subscribes(), subscribes + 1);
  EXPECT_EQ(stream_->subscribed_at(), 1u);
  EXPECT_EQ(Ids(), "1,2,3,4,5,101,102,103,104,105,106,107,108");
  EXPECT_EQ(Position(), "8 2000");
  // Checked again on every call: no new gap while the stream stays the same.
  AppendRow(109);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Position(), "9 2000");
  EXPECT_EQ(Gaps().size(), 1u);
}

// 4b'. Re-created with only messages below the old position, noticed before any arrives.
TEST_F(ConsumerLoopTest, AStreamRecreatedWhileRunningIsNoticedWithoutNewMessages) {
  options_.check_interval = 0ms;
  for (int id = 1; id <= 5; ++id) AppendRow(id);
  StartConsumer();
  EXPECT_TRUE(ApplyNext());
  stream_->Recreate(kCreatedB);
  EXPECT_FALSE(ApplyNext());
  EXPECT_EQ(Gaps(), (std::vector<std::string>{Gap(6, std::nullopt)}));
  EXPECT_EQ(Position(), "0 2000");
  AppendRow(101);
  AppendRow(102);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Ids(), "1,2,3,4,5,101,102");
  EXPECT_EQ(Position(), "2 2000");
  EXPECT_EQ(consumer_->gaps_found(), 1u);
}

// 5.
TEST_F(ConsumerLoopTest, AStreamEndingBeforeThePositionIsAGapAtStart) {
  for (int id = 1; id <= 6; ++id) AppendRow(id);
  StorePosition(10, kCreatedA);  // the store lost 7..10 after this node applied them
  StartConsumer();
  EXPECT_EQ(Gaps(), (std::vector<std::string>{Gap(7, 10)}));
  EXPECT_NE(GapReasons()[0].find("ends at 6"), std::string::npos) << GapReasons()[0];
  EXPECT_EQ(consumer_->gaps_found(), 1u);
  EXPECT_EQ(Position(), "6 1000");
  EXPECT_EQ(stream_->subscribed_at(), 7u);
  for (int id = 107; id <= 109; ++id) EXPECT_EQ(AppendRow(id), static_cast<uint64_t>(id - 100));
  Drain();
  EXPECT_EQ(Ids(), "107,108,109");
  EXPECT_EQ(Position(), "9 1000");
  EXPECT_EQ(Gaps().size(), 1u);
}

// 5b.
TEST_F(ConsumerLoopTest, AStreamLosingItsTailWhileRunningIsAGap) {
  options_.check_interval = 0ms;
  for (int id = 1; id <= 10; ++id) AppendRow(id);
  StartConsumer();
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Position(), "10 1000");
  stream_->TruncateAfter(6);
  EXPECT_FALSE(ApplyNext());
  EXPECT_EQ(Gaps(), (std::vector<std::string>{Gap(7, 10)}));
  EXPECT_EQ(consumer_->gaps_found(), 1u);
  EXPECT_EQ(Position(), "6 1000");
  EXPECT_EQ(stream_->subscribed_at(), 7u);
  for (int id = 107; id <= 109; ++id) AppendRow(id);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Strings("SELECT id FROM t WHERE id > 100 ORDER BY id"),
            (std::vector<std::string>{"107", "108", "109"}));
  EXPECT_EQ(Position(), "9 1000");
  EXPECT_EQ(Gaps().size(), 1u);
}

// A server cut off from its cluster answers with its own copy while it knows no leader: a range
// that lags what this node applied through the leader is no gap (fault_partition_test found it).
TEST_F(ConsumerLoopTest, AShorterRangeFromAReplicaWithoutLeaderIsNoGapWhileRunning) {
  options_.check_interval = 0ms;
  for (int id = 1; id <= 10; ++id) AppendRow(id);
  StartConsumer();
  EXPECT_TRUE(ApplyNext());
  stream_->AnswerFromReplicaWithoutLeader(6, 3);
  for (int id = 11; id <= 12; ++id) AppendRow(id);
  EXPECT_TRUE(ApplyNext());
  EXPECT_FALSE(ApplyNext());
  EXPECT_FALSE(ApplyNext());
  EXPECT_EQ(stream_->replica_answers_left(), 0);
  EXPECT_TRUE(Gaps().empty());
  EXPECT_EQ(Position(), "12 1000");
  EXPECT_EQ(stream_->subscribes(), 1);
  // The leader's own answer still counts.
  stream_->TruncateAfter(8);
  EXPECT_FALSE(ApplyNext());
  EXPECT_EQ(Gaps(), (std::vector<std::string>{Gap(9, 12)}));
}

TEST_F(ConsumerLoopTest, AStreamWithoutLeaderForAMinuteIsReportedUntilItHasOneAgain) {
  NodeMetrics metrics("", "");
  options_.metrics = &metrics;
  options_.check_interval = 5000ms;
  AppendRow(1);
  StartConsumer();
  EXPECT_TRUE(ApplyNext());
  auto error = [&] {
    std::vector<StreamHealth> streams = metrics.Streams();
    return streams.empty() ? std::string("no stream") : streams[0].error;
  };
  stream_->AnswerFromReplicaWithoutLeader(1, 1000);
  for (int check = 0; check < 12; ++check) {  // 55 s without a leader: not yet an error
    clock_->SleepFor(5000ms);
    EXPECT_FALSE(ApplyNext());
  }
  EXPECT_EQ(error(), "");
  for (int check = 0; check < 2; ++check) {
    clock_->SleepFor(5000ms);
    EXPECT_FALSE(ApplyNext());
  }
  EXPECT_NE(error().find("has had no leader for"), std::string::npos) << error();
  AppendRow(2);  // a batch applied meanwhile does not hide it
  EXPECT_TRUE(ApplyNext());
  EXPECT_NE(error().find("has had no leader for"), std::string::npos) << error();
  stream_->AnswerFromReplicaWithoutLeader(2, 0);  // the leader answers again
  clock_->SleepFor(5000ms);
  EXPECT_FALSE(ApplyNext());
  EXPECT_EQ(error(), "");
  EXPECT_TRUE(Gaps().empty());
}

TEST_F(ConsumerLoopTest, AtStartAReplicaWithoutLeaderIsAskedAgainUntilTheLeaderAnswers) {
  for (int id = 1; id <= 10; ++id) AppendRow(id);
  StorePosition(10, kCreatedA);
  stream_->AnswerFromReplicaWithoutLeader(6, 5);
  StartConsumer();
  EXPECT_EQ(stream_->replica_answers_left(), 0);
  EXPECT_TRUE(Gaps().empty());
  EXPECT_EQ(Position(), "10 1000");
  EXPECT_EQ(stream_->subscribed_at(), 11u);
}

TEST_F(ConsumerLoopTest, AtStartAStreamThatNeverGetsALeaderIsJudgedByTheReplica) {
  for (int id = 1; id <= 10; ++id) AppendRow(id);
  StorePosition(10, kCreatedA);
  stream_->AnswerFromReplicaWithoutLeader(6, 1000);
  StartConsumer();
  EXPECT_EQ(stream_->replica_answers_left(), 1000 - ShardConsumer::kLeaderWaitAttempts);
  EXPECT_EQ(Gaps(), (std::vector<std::string>{Gap(7, 10)}));  // loud rather than silent
}

// Servers that lost messages they had acknowledged, then stored new ones under the same sequences
// (or a store restored from a backup that grew again): the range alone looks fine.
TEST_F(ConsumerLoopTest, AReplacedHistoryIsAGapAndWhatTheStreamHoldsIsAppliedAgain) {
  options_.check_interval = 0ms;
  for (int id = 1; id <= 10; ++id) AppendRow(id);
  StartConsumer();
  EXPECT_TRUE(ApplyNext());
  EXPECT_FALSE(ApplyNext());  // checked: still the same messages
  EXPECT_TRUE(Gaps().empty());
  EXPECT_GT(stream_->hash_lookups(), 0);
  stream_->TruncateAfter(6);
  for (int id = 107; id <= 110; ++id) AppendRow(id);
  EXPECT_TRUE(ApplyNext());  // found, and the stream applied again from its first message
  ASSERT_EQ(Gaps(), (std::vector<std::string>{Gap(1, 10)}));
  EXPECT_NE(GapReasons()[0].find("not the one this node applied"), std::string::npos) << GapReasons()[0];
  EXPECT_EQ(stream_->subscribed_at(), 1u);
  Drain();
  EXPECT_EQ(Strings("SELECT id FROM t WHERE id > 100 ORDER BY id"),
            (std::vector<std::string>{"107", "108", "109", "110"}));
  EXPECT_EQ(Position(), "10 1000");
  EXPECT_FALSE(ApplyNext());
  EXPECT_EQ(Gaps().size(), 1u);  // the new history is now the one applied
}

// Not only the position: messages applied between two checks are compared too (batch ends, up to
// ShardConsumer::kMaxMarks of them, spread over the interval).
TEST_F(ConsumerLoopTest, AMessageReplacedBelowThePositionIsFoundAtTheNextCheck) {
  options_.check_interval = 1h;
  StartConsumer();
  for (int id = 1; id <= 6; ++id) {
    AppendRow(id);
    EXPECT_TRUE(ApplyNext());  // one batch each
  }
  stream_->ReplacePayload(3, Message(3, "another message 3"));
  fake_clock_.SleepFor(2h);
  EXPECT_TRUE(ApplyNext());  // found, and the stream applied again from its first message
  ASSERT_EQ(Gaps(), (std::vector<std::string>{Gap(1, 6)}));
  EXPECT_NE(GapReasons()[0].find("message 3 of the stream is not the one"), std::string::npos)
      << GapReasons()[0];
  EXPECT_EQ(stream_->subscribed_at(), 1u);
  Drain();
  EXPECT_EQ(Strings("SELECT v FROM t WHERE id = 3"), (std::vector<std::string>{"another message 3"}));
}

TEST_F(ConsumerLoopTest, AReplacedHistoryIsAGapAtStart) {
  for (int id = 1; id <= 10; ++id) AppendRow(id);
  StorePosition(8, kCreatedA, PayloadHash(Message(8, "another message 8")));
  StartConsumer();
  EXPECT_EQ(Gaps(), (std::vector<std::string>{Gap(1, 8)}));
  EXPECT_EQ(stream_->subscribed_at(), 1u);
}

TEST_F(ConsumerLoopTest, TheSameMessageAtThePositionIsNoGapAtStart) {
  for (int id = 1; id <= 10; ++id) AppendRow(id);
  StorePosition(8, kCreatedA, PayloadHash(Message(8, "v8")));
  StartConsumer();
  EXPECT_TRUE(Gaps().empty());
  EXPECT_EQ(stream_->subscribed_at(), 9u);
  EXPECT_EQ(stream_->hash_lookups(), 1);
}

// 6. Distance bound: max(max_entries, count + 16) messages.
TEST_F(ConsumerLoopTest, AnOrphanChunkIsDeadLetteredAfterMaxEntriesMessages) {
  options_.layout.max_entries = 16;  // the bound is then count + 16 = 19 for a group of 3
  StartConsumer();
  AppendRow(1);
  std::string raw = Encode({Row(2, Noise(3000, 2))});
  uint64_t chunk_seq = stream_->Append(Split(Compress(raw), 3)[0], ChunkHeader("orphan", 0, 3));
  ASSERT_EQ(chunk_seq, 2u);
  for (int id = 3; id <= 21; ++id) AppendRow(id);  // 21 - 2 = 19: not more than 19 behind yet
  EXPECT_TRUE(ApplyNext());
  EXPECT_TRUE(DeadLetters().empty());
  EXPECT_EQ(Position(), "1 1000");  // held before the chunk: a restart reads it again
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM t"), 20);
  AppendRow(22);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(DeadLetters(), (std::vector<std::string>{Dead(2)}));
  EXPECT_NE(DeadLetterReasons()[0].find("never completed"), std::string::npos) << DeadLetterReasons()[0];
  EXPECT_EQ(Position(), "22 1000");
  EXPECT_EQ(QueryInt(db_, "SELECT count(*) FROM t WHERE id = 2"), 0);
  AppendRow(23);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Position(), "23 1000");
  EXPECT_EQ(DeadLetters().size(), 1u);
  EXPECT_TRUE(Gaps().empty());
}

// 6b. The same across batches, one message per ApplyNext.
TEST_F(ConsumerLoopTest, AnOrphanChunkHoldsThePositionAcrossBatchesUntilDeadLettered) {
  options_.layout.max_entries = 16;
  options_.max_batch_changes = 1;
  StartConsumer();
  AppendRow(1);
  stream_->Append(Split(Compress(Encode({Row(2, Noise(3000, 2))})), 3)[0], ChunkHeader("orphan", 0, 3));
  for (int id = 3; id <= 21; ++id) AppendRow(id);
  Drain();
  EXPECT_EQ(Position(), "1 1000");
  EXPECT_TRUE(DeadLetters().empty());
  AppendRow(22);
  Drain();
  EXPECT_EQ(DeadLetters(), (std::vector<std::string>{Dead(2)}));
  EXPECT_EQ(Position(), "22 1000");
}

// 6c. Time bound: 5 minutes of stream time.
TEST_F(ConsumerLoopTest, AnOrphanChunkIsDeadLetteredAfterFiveMinutesOfStreamTime) {
  StartConsumer();
  int64_t t0 = FakeStream::kBaseTime;
  AppendRow(1, "", t0);
  stream_->Append(Split(Compress(Encode({Row(2, Noise(3000, 2))})), 3)[0], ChunkHeader("late", 0, 3), t0);
  AppendRow(3, "", t0 + 4 * kMinuteNs);
  EXPECT_TRUE(ApplyNext());
  EXPECT_TRUE(DeadLetters().empty());
  EXPECT_EQ(Position(), "1 1000");
  AppendRow(4, "", t0 + 6 * kMinuteNs);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(DeadLetters(), (std::vector<std::string>{Dead(2)}));
  EXPECT_EQ(Position(), "4 1000");
  EXPECT_EQ(Ids(), "1,3,4");
}

// 6d. At most kMaxChunkGroups incomplete groups: the oldest goes first.
TEST_F(ConsumerLoopTest, TooManyIncompleteChunkGroupsDeadLetterTheOldest) {
  StartConsumer();
  std::string part = Split(Compress(Encode({Row(1, Noise(3000, 1))})), 2)[0];
  for (size_t g = 0; g <= ShardConsumer::kMaxChunkGroups; ++g) {
    stream_->Append(part, ChunkHeader("g" + std::to_string(g), 0, 2));
  }
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(DeadLetters(), (std::vector<std::string>{Dead(1)}));
  EXPECT_EQ(Position(), "1 1000");  // held before the oldest group still waiting (sequence 2)
}

// 7.
TEST_F(ConsumerLoopTest, ACompleteChunkGroupIsApplied) {
  StartConsumer();
  std::string big = Noise(30000, 7);
  std::vector<std::string> parts = Split(Compress(Encode({Row(2, big)})), 3);
  ASSERT_GT(parts[2].size(), 0u);
  AppendRow(1);
  stream_->Append(parts[0], ChunkHeader("sess-1-1-1-0", 0, 3));
  stream_->Append(parts[1], ChunkHeader("sess-1-1-1-0", 1, 3));
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Ids(), "1");
  EXPECT_EQ(Position(), "1 1000");  // before the first chunk until the group is complete
  stream_->Append(parts[2], ChunkHeader("sess-1-1-1-0", 2, 3));
  AppendRow(5);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Ids(), "1,2,5");
  EXPECT_EQ(Strings("SELECT v FROM t WHERE id = 2"), (std::vector<std::string>{big}));
  EXPECT_EQ(Position(), "5 1000");
  EXPECT_TRUE(DeadLetters().empty());
  EXPECT_TRUE(Gaps().empty());
}

// 7b. Chunks of one group interleaved with other messages, in one batch, uncompressed.
TEST_F(ConsumerLoopTest, AChunkGroupInterleavedWithOtherMessagesIsApplied) {
  options_.layout.compress = false;
  StartConsumer();
  std::string big = Noise(9000, 8);
  std::vector<std::string> parts = Split(Encode({Row(2, big)}), 3);
  stream_->Append(parts[0], ChunkHeader("x", 0, 3));
  AppendRow(3);
  stream_->Append(parts[1], ChunkHeader("x", 1, 3));
  AppendRow(4);
  stream_->Append(parts[2], ChunkHeader("x", 2, 3));
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Ids(), "2,3,4");
  EXPECT_EQ(Strings("SELECT length(v) FROM t WHERE id = 2"), (std::vector<std::string>{"9000"}));
  EXPECT_EQ(Position(), "5 1000");
  EXPECT_TRUE(DeadLetters().empty());
}

// 8.
TEST_F(ConsumerLoopTest, ACompressionBombIsDeadLetteredAndTheBatchGoesOn) {
  options_.max_message_bytes = 1 << 20;
  StartConsumer();
  // A valid change message of 8 MiB: without the cap it would be applied.
  std::string raw = Encode({Row(2, std::string(8 << 20, '0'))});
  std::string bomb = Compress(raw);
  ASSERT_LT(bomb.size(), 64u << 10);
  std::string unsized = CompressWithoutContentSize(raw);
  AppendRow(1);
  uint64_t bomb_seq = stream_->Append(bomb);
  AppendRow(3);
  uint64_t unsized_seq = stream_->Append(unsized);
  AppendRow(5);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(DeadLetters(), (std::vector<std::string>{Dead(bomb_seq), Dead(unsized_seq)}));
  EXPECT_EQ(Ids(), "1,3,5");
  EXPECT_EQ(Position(), "5 1000");
  EXPECT_EQ(consumer_->applied_messages(), 5u);
}

// 8b. Uncompressed streams cap the message itself.
TEST_F(ConsumerLoopTest, AnUncompressedMessageLargerThanMaxMessageBytesIsDeadLettered) {
  options_.layout.compress = false;
  options_.max_message_bytes = 64 << 10;
  StartConsumer();
  AppendRow(1);
  stream_->Append(Encode({Row(2, std::string(100 << 10, 'x'))}));
  AppendRow(3);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(DeadLetters(), (std::vector<std::string>{Dead(2)}));
  EXPECT_NE(DeadLetterReasons()[0].find("max_message_bytes"), std::string::npos) << DeadLetterReasons()[0];
  EXPECT_EQ(Ids(), "1,3");
  EXPECT_EQ(Position(), "3 1000");
}

// 8c. A batch of nothing but undecodable messages still moves the position past them.
TEST_F(ConsumerLoopTest, UndecodableMessagesAloneStillMoveThePosition) {
  StartConsumer();
  AppendRow(1);
  EXPECT_TRUE(ApplyNext());
  stream_->Append("not zstd at all");
  stream_->Append(Compress("not cbor either"));
  stream_->Append(Compress(Encode({Row(9, "x")})), "bad-header");
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(DeadLetters(), (std::vector<std::string>{Dead(2), Dead(3), Dead(4)}));
  EXPECT_EQ(Position(), "4 1000");
  EXPECT_EQ(Ids(), "1");
}

// 9. The group grows beyond max_message_bytes with its last chunk.
TEST_F(ConsumerLoopTest, AChunkGroupLargerThanMaxMessageBytesIsDeadLettered) {
  options_.layout.compress = false;
  options_.max_message_bytes = 80 << 10;
  StartConsumer();
  std::vector<std::string> parts = Split(Encode({Row(2, std::string(100 << 10, 'x'))}), 3);
  ASSERT_LT(parts[0].size() + parts[1].size(), options_.max_message_bytes);
  AppendRow(1);
  uint64_t first_chunk = stream_->Append(parts[0], ChunkHeader("big", 0, 3));
  stream_->Append(parts[1], ChunkHeader("big", 1, 3));
  stream_->Append(parts[2], ChunkHeader("big", 2, 3));
  AppendRow(5);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(DeadLetters(), (std::vector<std::string>{Dead(first_chunk)}));
  EXPECT_NE(DeadLetterReasons()[0].find("max_message_bytes"), std::string::npos) << DeadLetterReasons()[0];
  EXPECT_EQ(Ids(), "1,5");
  EXPECT_EQ(Position(), "5 1000");
}

// 9b. The group grows beyond max_message_bytes before its last chunk: the chunks still to come
// belong to the dead-lettered row; they must neither pin the position nor be dead-lettered again.
TEST_F(ConsumerLoopTest, ChunksAfterAnOversizedGroupWasDeadLetteredDoNotPinThePosition) {
  options_.layout.compress = false;
  options_.layout.max_entries = 16;  // so that a wrongly held leftover chunk expires within the test
  options_.max_message_bytes = 64 << 10;
  StartConsumer();
  std::vector<std::string> parts = Split(Encode({Row(2, std::string(100 << 10, 'x'))}), 3);
  ASSERT_GT(parts[0].size() + parts[1].size(), options_.max_message_bytes);
  AppendRow(1);
  uint64_t first_chunk = stream_->Append(parts[0], ChunkHeader("big", 0, 3));
  stream_->Append(parts[1], ChunkHeader("big", 1, 3));
  stream_->Append(parts[2], ChunkHeader("big", 2, 3));
  AppendRow(5);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(DeadLetters(), (std::vector<std::string>{Dead(first_chunk)}));
  EXPECT_EQ(Ids(), "1,5");
  EXPECT_EQ(Position(), "5 1000");
  for (int id = 6; id <= 40; ++id) AppendRow(id);
  Drain();
  EXPECT_EQ(Position(), "40 1000");
  EXPECT_EQ(DeadLetters(), (std::vector<std::string>{Dead(first_chunk)}));
}

// 10.
TEST_F(ConsumerLoopTest, MaxBatchBytesSplitsTheQueueIntoSeveralBatches) {
  // Every message decodes to the same size; two of them reach the cap.
  size_t decoded = Encode({Row(1, "v1")}).size();
  ASSERT_EQ(Encode({Row(6, "v6")}).size(), decoded);
  options_.max_batch_bytes = 2 * decoded;
  StartConsumer();
  for (int id = 1; id <= 6; ++id) AppendRow(id);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Position(), "2 1000");
  EXPECT_EQ(Ids(), "1,2");
  EXPECT_EQ(consumer_->applied_messages(), 2u);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Position(), "4 1000");
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Position(), "6 1000");
  EXPECT_FALSE(ApplyNext());
  EXPECT_EQ(Ids(), "1,2,3,4,5,6");
  EXPECT_TRUE(Gaps().empty());
}

// 10b.
TEST_F(ConsumerLoopTest, MaxBatchChangesSplitsTheQueueIntoSeveralBatches) {
  options_.max_batch_changes = 3;
  StartConsumer();
  for (int id = 1; id <= 7; ++id) AppendRow(id);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Position(), "3 1000");
  EXPECT_EQ(Drain(), 2);
  EXPECT_EQ(Position(), "7 1000");
  EXPECT_EQ(Ids(), "1,2,3,4,5,6,7");
}

// 11.
TEST_F(ConsumerLoopTest, AVerifyBarrierEndsTheBatchAndIsReportedOnceEverythingBeforeItIsApplied) {
  AppendRow(1);
  AppendRow(2);
  uint64_t barrier = stream_->AppendBarrier("s1");
  AppendRow(3);
  std::vector<std::string> seen;  // what the barrier callback saw
  options_.on_barrier = [&](const std::string& session, const std::string& stream, uint64_t seq,
                            const std::atomic<bool>&) {
    seen.push_back(session + " " + stream + " " + std::to_string(seq) + " rows " + Ids() + " position " +
                   std::to_string(PositionSeq()));
  };
  StartConsumer();
  EXPECT_TRUE(ApplyNext());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "s1 " + Stream() + " " + std::to_string(barrier) + " rows 1,2 position 3");
  EXPECT_EQ(Ids(), "1,2");  // the batch ended at the barrier
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Ids(), "1,2,3");
  EXPECT_EQ(PositionSeq(), 4);
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_TRUE(DeadLetters().empty());  // a barrier is no undecodable change
  EXPECT_TRUE(Gaps().empty());
}

TEST_F(ConsumerLoopTest, AMessageAlreadyAppliedIsSkipped) {
  StartConsumer();
  AppendRow(1, "first");
  AppendRow(1, "second");
  AppendRow(1, "third");
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Strings("SELECT v FROM t"), (std::vector<std::string>{"third"}));
  // Message 2 comes again, alone and then ahead of a new one: applying it would bring "second" back.
  stream_->Redeliver(2);
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Strings("SELECT v FROM t"), (std::vector<std::string>{"third"}));
  EXPECT_EQ(Position(), "3 1000");
  stream_->Redeliver(2);
  AppendRow(4, "four");
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Strings("SELECT v FROM t ORDER BY id"), (std::vector<std::string>{"third", "four"}));
  EXPECT_EQ(Position(), "4 1000");
  EXPECT_EQ(consumer_->applied_messages(), 4u);
  EXPECT_TRUE(Gaps().empty());
  EXPECT_EQ(consumer_->gaps_found(), 0u);
  EXPECT_TRUE(DeadLetters().empty());
}

// Own changes are marked as echoes (node_id matches) and still applied when the row differs.
TEST_F(ConsumerLoopTest, OwnMessagesAreAppliedWhenTheRowDiffers) {
  options_.node_id = 9;  // Encode() writes node 9
  StartConsumer();
  AppendRow(1, "mine");
  EXPECT_TRUE(ApplyNext());
  EXPECT_EQ(Strings("SELECT v FROM t"), (std::vector<std::string>{"mine"}));
  EXPECT_EQ(Position(), "1 1000");
}

}  // namespace
}  // namespace marmot
