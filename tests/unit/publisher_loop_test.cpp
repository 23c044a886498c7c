// The publisher's loop against an in-memory JetStream (FakeJetStream, behind the MessageSink seam)
// and a real change log: acks lost, acks late, rejected sends, resends, the duplicate window, and
// crashes between any two steps, followed by ChangePublisher::Recover. The property checked every
// time: every row change ends up in the stream exactly once, in read order, and nothing that was
// stored is published again after a restart.
#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include "codec/compression.h"
#include "codec/wire_format.h"
#include "db/capture.h"
#include "db/change_reader.h"
#include "stream/message_id.h"
#include "stream/publisher.h"
#include "test_util.h"

namespace marmot {
namespace {

using test::Exec;
using test::OpenDb;
using test::TempDir;

// Time moves only when someone sleeps.
class FakeClock final : public Clock {
 public:
  TimePoint Now() override { return now_; }
  void SleepFor(std::chrono::microseconds d) override { now_ += d; }

 private:
  TimePoint now_{};
};

// JetStream as the publisher sees it: one stream per shard, a duplicate window on Nats-Msg-Id,
// and a hook deciding what happens to each send.
class FakeJetStream final : public MessageSink {
 public:
  enum class Fate {
    kStore,         // stored, acknowledged
    kStoreLoseAck,  // stored, the ack never arrives
    kReject,        // not stored, negative ack
    kDrop,          // not stored, no answer (connection gone)
    kAckDuplicate,  // not stored, yet acknowledged as a duplicate (another publisher used the id)
  };
  struct Stored {
    std::string id;
    std::string chunk;
    std::string payload;
    uint64_t seq = 0;
  };

  explicit FakeJetStream(Clock* clock) : clock_(clock) {}

  // Decides the fate of every send: (message, how many times this id was sent before).
  std::function<Fate(const OutgoingMessage&, int)> fate = [](const OutgoingMessage&, int) {
    return Fate::kStore;
  };
  std::chrono::seconds duplicate_window{120};

  size_t payload_limit = 1 << 20;
  size_t max_payload() const override { return payload_limit; }

  Status Send(const OutgoingMessage& m, size_t token) override {
    int before = sends_[m.msg_id]++;
    Fate f = fate(m, before);
    pending_[token] = true;
    if (f == Fate::kDrop) return Status();
    if (f == Fate::kReject) {
      outcomes_.emplace_back(token, PublishOutcome{false, false, 0, "rejected"});
      return Status();
    }
    if (f == Fate::kAckDuplicate) {
      outcomes_.emplace_back(token, PublishOutcome{true, true, 1, ""});
      return Status();
    }
    PublishOutcome outcome{true, false, 0, ""};
    auto seen = window_.find(m.msg_id);
    if (seen != window_.end() && clock_->Now() - seen->second.second < duplicate_window) {
      outcome.duplicate = true;
      outcome.stream_seq = seen->second.first;
    } else {
      std::vector<Stored>& stream = streams_[m.shard];
      uint64_t seq = ++last_seq_[m.shard];
      stream.push_back(Stored{m.msg_id, m.chunk_header, m.payload, seq});
      window_[m.msg_id] = {seq, clock_->Now()};
      outcome.stream_seq = seq;
    }
    if (f == Fate::kStore) outcomes_.emplace_back(token, outcome);
    return Status();
  }

  void AwaitOutcomes(std::chrono::milliseconds,
                     const std::function<void(size_t, const PublishOutcome&)>& done) override {
    std::vector<std::pair<size_t, PublishOutcome>> outcomes;
    outcomes.swap(outcomes_);
    for (const auto& [token, outcome] : outcomes) {
      done(token, outcome);
      pending_.erase(token);
    }
    for (const auto& [token, unused] : pending_)
      done(token, PublishOutcome{false, false, 0, "no acknowledgment"});
    pending_.clear();
  }

  Result<StoredRange> ScanStored(int shard, uint64_t after,
                                 const std::function<void(std::string_view, uint64_t)>& visit) override {
    ++scans;
    for (const Stored& s : streams_[shard]) {
      if (s.seq > after) visit(s.id, s.seq);
    }
    std::vector<Stored>& stream = streams_[shard];
    return StoredRange{stream.empty() ? last_seq_[shard] + 1 : stream.front().seq, last_seq_[shard]};
  }

  Result<StoredMessage> Fetch(int shard, uint64_t seq) override {
    if (++fetches == fail_fetch_at) return Status::Unavailable("fetch failed (injected)");
    for (const Stored& s : streams_[shard]) {
      if (s.seq == seq) return StoredMessage{s.payload, s.chunk};
    }
    return Status::NotFound("no message " + std::to_string(seq));
  }

  // Every row change in the streams, as "table:key=value" (values over 40 bytes as their size),
  // in stream order per shard; a row in chunks counts once all its chunks are stored.
  std::vector<std::string> StoredChanges() {
    std::vector<std::string> out;
    ZstdCodec zstd;
    for (auto& [shard, stream] : streams_) {
      std::map<std::string, std::map<std::string, std::string>> groups;  // group -> "index" -> bytes
      for (const Stored& s : stream) {
        std::string payload = s.payload;
        if (!s.chunk.empty()) {
          std::istringstream header(s.chunk);
          std::string group, index;
          size_t count = 0;
          header >> group >> index >> count;
          groups[group][index] = s.payload;
          if (groups[group].size() < count) continue;
          payload.clear();
          for (size_t i = 0; i < count; ++i) payload += groups[group][std::to_string(i)];
        }
        std::string raw;
        EXPECT_TRUE(zstd.Decompress(payload, 64 << 20, &raw).ok());
        Result<ChangeMessage> m = DecodeChangeMessage(raw);
        EXPECT_TRUE(m.ok()) << m.status().message();
        if (!m.ok()) continue;
        for (const RowChange& c : m->changes) {
          std::string value = c.op == RowChange::Op::kUpsert ? c.values.back().ToDebugString() : "deleted";
          if (value.size() > 40) value = std::to_string(value.size()) + " bytes";
          out.push_back(c.table + ":" + c.values[0].ToDebugString() + "=" + value);
        }
      }
    }
    return out;
  }
  // Forgets a stream's messages and numbers them from 1 again (its NATS store was lost).
  void Recreate(int shard) {
    streams_[shard].clear();
    last_seq_[shard] = 0;
    window_.clear();
  }
  std::vector<std::string> ids() {
    std::vector<std::string> out;
    for (auto& [shard, stream] : streams_) {
      for (const Stored& s : stream) out.push_back(s.id);
    }
    return out;
  }
  size_t messages() {
    size_t n = 0;
    for (auto& [shard, stream] : streams_) n += stream.size();
    return n;
  }
  int scans = 0;
  int fetches = 0;
  int fail_fetch_at = -1;  // the Fetch call (counting from 1) that fails

 private:
  Clock* clock_;
  std::map<int, std::vector<Stored>> streams_;
  std::map<int, uint64_t> last_seq_;
  std::map<std::string, std::pair<uint64_t, Clock::TimePoint>> window_;
  std::map<std::string, int> sends_;
  std::vector<std::pair<size_t, PublishOutcome>> outcomes_;
  std::map<size_t, bool> pending_;  // sent, not answered
};

class PublisherLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Exec(db_, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    Result<std::vector<TableSchema>> tables = ReadSchema(db_);
    ASSERT_TRUE(tables.ok());
    ASSERT_TRUE(InstallCapture(db_, *tables).ok());
    options_.layout.shards = 2;
    options_.scan_max_changes = 10;
    options_.rescan_after = std::chrono::seconds(60);
  }

  // A new process: a fresh reader and publisher on the database (the old ones are gone without
  // persisting anything, as after a SIGKILL), recovered.
  void Restart(bool recover = true) {
    publisher_.reset();
    reader_.reset();
    Result<std::unique_ptr<ChangeReader>> reader = ChangeReader::Open(path_);
    ASSERT_TRUE(reader.ok()) << reader.status().message();
    reader_ = std::move(*reader);
    publisher_ = std::make_unique<ChangePublisher>(reader_.get(), &stream_, nullptr, &clock_, options_);
    if (recover) {
      Status s = publisher_->Recover(stop_);
      ASSERT_TRUE(s.ok()) << s.message();
    }
  }

  void Write(int first, int count, const std::string& value) {
    for (int id = first; id < first + count; ++id) {
      Exec(db_, "INSERT OR REPLACE INTO t VALUES (" + std::to_string(id) + ", '" + value + "')");
    }
  }

  // Every row of t as the stream must end up carrying it (the newest value of each row).
  std::vector<std::string> Expected() {
    return test::Texts(db_, "SELECT 't:' || id || '=' || quote(v) FROM t ORDER BY id");
  }
  // Copies the database file (after moving the WAL into it).
  void CopyDatabase(const std::string& to) {
    Exec(db_, "PRAGMA wal_checkpoint(TRUNCATE)");
    std::filesystem::copy_file(path_, to, std::filesystem::copy_options::overwrite_existing);
  }

  // The newest change of each row in the streams (the value every node ends with).
  std::vector<std::string> LatestStored() {
    std::map<std::string, std::string> latest;
    for (const std::string& c : stream_.StoredChanges()) {
      std::string row = c.substr(0, c.find('='));
      latest[row] = c;
    }
    std::vector<std::string> out;
    for (auto& [row, change] : latest) out.push_back(change);
    return out;
  }

  TempDir dir_;
  std::string path_ = dir_.File("app.db");
  Database db_ = OpenDb(path_);
  FakeClock clock_;
  FakeJetStream stream_{&clock_};
  PublisherOptions options_;
  std::atomic<bool> stop_{false};
  std::unique_ptr<ChangeReader> reader_;
  std::unique_ptr<ChangePublisher> publisher_;
};

// Rows ordered by id, as the sorted map in LatestStored returns them ('t:10' < 't:2').
std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST_F(PublisherLoopTest, EveryRowOnceAndConfirmed) {
  Restart();
  Write(1, 95, "a");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  std::vector<std::string> stored = stream_.StoredChanges();
  EXPECT_EQ(stored.size(), 95u);
  EXPECT_EQ(Sorted(stored), Sorted(Expected()));
  EXPECT_EQ(reader_->confirmed(), reader_->LastLoggedSeq().value());
  EXPECT_GE(stream_.messages(), 10u);
  for (const std::string& id : stream_.ids()) {
    std::optional<MessageId> parsed = MessageId::Parse(id);
    ASSERT_TRUE(parsed.has_value()) << id;
    EXPECT_EQ(parsed->session, publisher_->session());
  }
}

TEST_F(PublisherLoopTest, ACleanStopLeavesNoSessionToRecover) {
  Restart();
  Write(1, 15, "a");
  stop_.store(true);
  publisher_->Run(stop_);  // publishes what is captured, then stops
  EXPECT_EQ(stream_.StoredChanges().size(), 15u);
  Result<PublishState> state = LoadPublishState(db_);
  ASSERT_TRUE(state.ok()) << state.status().message();
  EXPECT_TRUE(state->sessions.empty()) << "a clean stop left sessions whose messages recovery would look for";
  EXPECT_EQ(state->confirmed_seq, reader_->LastLoggedSeq().value());

  // Sent after the clean stop by the same publisher (a snapshot restore publishes what was
  // captured first): its session is recorded again before anything goes out.
  Write(30, 2, "c");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  state = LoadPublishState(db_);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->sessions, std::vector<std::string>{publisher_->session()});
  Write(30, 2, "d");  // and published by the next run below
  stop_.store(true);
  publisher_->Run(stop_);

  // Written while marmot is stopped, published by the next session as new (no recovery needed).
  Write(16, 5, "b");
  stop_.store(false);
  Restart();
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  EXPECT_EQ(stream_.StoredChanges().size(), 24u);
  EXPECT_EQ(Sorted(LatestStored()), Sorted(Expected()));
  // A crash (no clean stop) keeps this session for the next start to look for.
  state = LoadPublishState(db_);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->sessions, std::vector<std::string>{publisher_->session()});
}

TEST_F(PublisherLoopTest, LostAcksAreResentAndDeduplicated) {
  Restart();
  // Every message is stored, but the first ack of each is lost: the resends are duplicates.
  stream_.fate = [](const OutgoingMessage&, int before) {
    return before == 0 ? FakeJetStream::Fate::kStoreLoseAck : FakeJetStream::Fate::kStore;
  };
  Write(1, 35, "a");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  std::vector<std::string> stored = stream_.StoredChanges();
  EXPECT_EQ(stored.size(), 35u) << "a resend was stored twice";
  EXPECT_EQ(Sorted(stored), Sorted(Expected()));
  EXPECT_EQ(reader_->confirmed(), reader_->LastLoggedSeq().value());
}

TEST_F(PublisherLoopTest, RejectedAndDroppedSendsAreResent) {
  Restart();
  int n = 0;
  stream_.fate = [&n](const OutgoingMessage&, int before) {
    if (before > 0) return FakeJetStream::Fate::kStore;
    return ++n % 2 ? FakeJetStream::Fate::kReject : FakeJetStream::Fate::kDrop;
  };
  Write(1, 25, "a");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  EXPECT_EQ(stream_.StoredChanges().size(), 25u);
  EXPECT_EQ(Sorted(stream_.StoredChanges()), Sorted(Expected()));
}

TEST_F(PublisherLoopTest, AResendAfterTheDuplicateWindowLooksInTheStreamFirst) {
  Restart();
  // The first send is stored but its ack is lost; every resend fails for two minutes (the
  // connection is gone); the duplicate window is short. A blind resend after the window would be
  // stored a second time. The publisher reads the stream back instead and finds it.
  stream_.duplicate_window = std::chrono::seconds(1);
  stream_.fate = [this](const OutgoingMessage&, int before) {
    if (before == 0) return FakeJetStream::Fate::kStoreLoseAck;
    return clock_.Now() < Clock::TimePoint{} + std::chrono::minutes(2) ? FakeJetStream::Fate::kDrop
                                                                       : FakeJetStream::Fate::kStore;
  };
  Write(1, 5, "a");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  EXPECT_EQ(stream_.StoredChanges().size(), 5u) << "stored again after the duplicate window";
  EXPECT_GT(stream_.scans, 0);
  EXPECT_EQ(reader_->confirmed(), reader_->LastLoggedSeq().value());
}

TEST_F(PublisherLoopTest, AFirstSendAnsweredAsADuplicateIsCountedAndSaid) {
  Restart();
  // Only this session can have sent a message with its id: a "duplicate" answer to a first send
  // means it is stored (it is counted and logged at error level, as it is never expected).
  std::string victim;
  stream_.fate = [&victim](const OutgoingMessage& m, int before) {
    if (victim.empty()) victim = m.msg_id;
    return m.msg_id == victim && before == 0 ? FakeJetStream::Fate::kAckDuplicate
                                             : FakeJetStream::Fate::kStore;
  };
  Write(1, 3, "a");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  EXPECT_EQ(publisher_->unexpected_duplicates(), 1u);
  EXPECT_EQ(reader_->confirmed(), reader_->LastLoggedSeq().value());
}

TEST_F(PublisherLoopTest, ACrashAfterTheAcksPublishesNothingAgain) {
  Restart();
  Write(1, 42, "a");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  size_t messages = stream_.messages();
  uint64_t last = reader_->LastLoggedSeq().value();
  // SIGKILL before the confirmation was persisted (cleanup_interval not reached).
  Restart();
  EXPECT_EQ(stream_.messages(), messages) << "recovery published stored entries again";
  EXPECT_EQ(publisher_->cursor(), last);
  EXPECT_EQ(reader_->confirmed(), last);
  // New writes after the restart go out once.
  Write(100, 3, "b");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  EXPECT_EQ(stream_.StoredChanges().size(), 45u);
}

TEST_F(PublisherLoopTest, ACrashBetweenTheMessagesOfABatchPublishesOnlyTheMissingOnes) {
  Restart();
  // Only shard 1's messages arrive; the process dies before shard 2's are sent again.
  stream_.fate = [](const OutgoingMessage& m, int) {
    return m.shard == 1 ? FakeJetStream::Fate::kStore : FakeJetStream::Fate::kDrop;
  };
  Write(1, 8, "a");
  std::atomic<bool> stopping{true};
  EXPECT_FALSE(publisher_->PublishAvailable(stopping).ok());
  size_t shard1 = stream_.StoredChanges().size();
  ASSERT_GT(shard1, 0u);
  ASSERT_LT(shard1, 8u);
  stream_.fate = [](const OutgoingMessage&, int) { return FakeJetStream::Fate::kStore; };
  Restart();
  std::vector<std::string> stored = stream_.StoredChanges();
  EXPECT_EQ(stored.size(), 8u) << "rows of the stored shard were published again, or missing ones were not";
  EXPECT_EQ(Sorted(stored), Sorted(Expected()));
  EXPECT_EQ(reader_->confirmed(), reader_->LastLoggedSeq().value());
}

TEST_F(PublisherLoopTest, AMissingBatchBeforeAStoredOneDoesNotPutOldValuesLast) {
  options_.layout.shards = 1;
  options_.scan_max_changes = 5;
  Restart();
  // Batch 1 (rows 1-5 = 'old') never arrives; then row 1 is written again and batch 2 (row 1 =
  // 'new', rows 6-9) arrives; then the process dies. Publishing batch 1 as it was read would put
  // row 1's old value after its new one.
  std::string lost;
  stream_.fate = [&lost](const OutgoingMessage& m, int) {
    if (lost.empty()) lost = m.msg_id;
    return m.msg_id == lost ? FakeJetStream::Fate::kDrop : FakeJetStream::Fate::kStore;
  };
  Write(1, 5, "old");
  std::atomic<bool> stopping{true};
  EXPECT_FALSE(publisher_->PublishAvailable(stopping).ok());
  Write(1, 1, "new");
  Write(6, 4, "x");
  EXPECT_FALSE(publisher_->PublishAvailable(stopping).ok());
  ASSERT_EQ(stream_.StoredChanges().size(), 5u);  // batch 2 only
  stream_.fate = [](const OutgoingMessage&, int) { return FakeJetStream::Fate::kStore; };
  Restart();
  std::vector<std::string> stored = stream_.StoredChanges();
  EXPECT_EQ(std::count(stored.begin(), stored.end(), "t:1='new'"), 1);
  EXPECT_EQ(std::count(stored.begin(), stored.end(), "t:1='old'"), 0);
  EXPECT_EQ(Sorted(LatestStored()), Sorted(Expected()));
  EXPECT_EQ(stored.size(), 9u);
}

TEST_F(PublisherLoopTest, AResendAfterALaterBatchWasStoredLeavesOutRowsTheLaterBatchCarries) {
  options_.layout.shards = 1;
  options_.scan_max_changes = 5;
  Restart();
  // Batch 1 (rows 1-5 = 'old') is refused until batch 2 (row 1 = 'new', rows 6-9) is stored; then
  // batch 1 is sent again. Sent as read, it would put row 1's old value after its new one.
  std::string first;
  bool second_stored = false;
  stream_.fate = [&](const OutgoingMessage& m, int) {
    if (first.empty()) first = m.msg_id;
    if (m.msg_id != first) {
      second_stored = true;
      return FakeJetStream::Fate::kStore;
    }
    return second_stored ? FakeJetStream::Fate::kStore : FakeJetStream::Fate::kReject;
  };
  Write(1, 5, "old");
  std::atomic<bool> stopping{true};
  EXPECT_FALSE(publisher_->PublishAvailable(stopping).ok());  // batch 1 stays in flight
  Write(1, 1, "new");
  Write(6, 4, "x");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  std::vector<std::string> stored = stream_.StoredChanges();
  EXPECT_EQ(std::count(stored.begin(), stored.end(), "t:1='new'"), 1);
  EXPECT_EQ(std::count(stored.begin(), stored.end(), "t:1='old'"), 0)
      << "an old value landed after the new one";
  EXPECT_EQ(Sorted(LatestStored()), Sorted(Expected()));
  EXPECT_EQ(stored.size(), 9u);
  EXPECT_EQ(reader_->confirmed(), reader_->LastLoggedSeq().value());
}

TEST_F(PublisherLoopTest, ARecoveryThatFailsIsTriedAgainFromTheSamePositions) {
  options_.layout.shards = 1;
  options_.scan_max_changes = 5;
  Restart();
  ASSERT_TRUE(reader_->DeleteConfirmed().ok());
  // Batch 1 (rows 1-5) never arrives, batch 2 (rows 6-10) does; crash.
  std::string lost;
  stream_.fate = [&lost](const OutgoingMessage& m, int) {
    if (lost.empty()) lost = m.msg_id;
    return m.msg_id == lost ? FakeJetStream::Fate::kDrop : FakeJetStream::Fate::kStore;
  };
  Write(1, 5, "a");
  std::atomic<bool> stopping{true};
  EXPECT_FALSE(publisher_->PublishAvailable(stopping).ok());
  Write(6, 5, "b");
  EXPECT_FALSE(publisher_->PublishAvailable(stopping).ok());
  ASSERT_EQ(stream_.StoredChanges().size(), 5u);
  stream_.fate = [](const OutgoingMessage&, int) { return FakeJetStream::Fate::kStore; };
  // The first attempt fails reading batch 2 back and the recovery starts over: batch 2 must still
  // be found (not published a second time) and batch 1 published once.
  stream_.fetches = 0;
  stream_.fail_fetch_at = 1;
  Restart();
  std::vector<std::string> stored = stream_.StoredChanges();
  EXPECT_EQ(stored.size(), 10u) << "a batch was published twice or not at all";
  EXPECT_EQ(Sorted(stored), Sorted(Expected()));
  EXPECT_GE(stream_.fetches, 2);
  EXPECT_EQ(reader_->confirmed(), reader_->LastLoggedSeq().value());
}

TEST_F(PublisherLoopTest, AStreamCreatedAgainIsReadFromItsStartAfterACrash) {
  options_.layout.shards = 1;
  options_.scan_max_changes = 2;
  Restart();
  Write(1, 20, "a");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  ASSERT_TRUE(reader_->DeleteConfirmed().ok());  // persists an acked position of 10
  // The NATS store is lost; the stream starts over at 1; new rows go there; crash before persisting.
  stream_.Recreate(1);
  Write(30, 3, "b");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  size_t messages = stream_.messages();
  ASSERT_EQ(messages, 2u);
  Restart();
  EXPECT_EQ(stream_.messages(), messages) << "rows stored in the new stream were published again";
  EXPECT_EQ(reader_->confirmed(), reader_->LastLoggedSeq().value());
}

TEST_F(PublisherLoopTest, ADatabasePutBackAndWrittenToBeforeTheRestartIsNotTakenForPublished) {
  Restart();
  Write(1, 3, "a");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  ASSERT_TRUE(reader_->DeleteConfirmed().ok());
  CopyDatabase(dir_.File("backup.db"));
  Write(10, 6, "lost");  // published, then the database is put back to the backup
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  publisher_.reset();
  reader_.reset();
  Database backup = OpenDb(dir_.File("backup.db"));
  sqlite3_backup* restore = sqlite3_backup_init(db_.get(), "main", backup.get(), "main");
  ASSERT_NE(restore, nullptr);
  ASSERT_EQ(sqlite3_backup_step(restore, -1), SQLITE_DONE);
  ASSERT_EQ(sqlite3_backup_finish(restore), SQLITE_OK);
  // The application writes before marmot starts again: the same change-log sequences as the lost
  // rows, under the session that published those.
  Write(30, 6, "new");
  Restart();
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  std::vector<std::string> stored = stream_.StoredChanges();
  for (int id = 30; id < 36; ++id) {
    EXPECT_EQ(std::count(stored.begin(), stored.end(), "t:" + std::to_string(id) + "='new'"), 1) << id;
  }
}

TEST_F(PublisherLoopTest, ARowInChunksIsNotResentAfterALaterBatchCarriesIt) {
  options_.layout.shards = 1;
  options_.scan_max_changes = 5;
  stream_.payload_limit = 2048;
  Restart();
  // Row 1's first value needs chunks; they are refused until the next batch (row 1 = 'new') is
  // stored. Sent then, the old value would land after the new one.
  Exec(db_, "INSERT INTO t VALUES (1, hex(randomblob(3000)))");
  bool later_stored = false;
  stream_.fate = [&](const OutgoingMessage& m, int) {
    if (!m.chunk_header.empty())
      return later_stored ? FakeJetStream::Fate::kStore : FakeJetStream::Fate::kReject;
    later_stored = true;
    return FakeJetStream::Fate::kStore;
  };
  std::atomic<bool> stopping{true};
  EXPECT_FALSE(publisher_->PublishAvailable(stopping).ok());
  Write(1, 1, "new");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  std::vector<std::string> stored = stream_.StoredChanges();
  EXPECT_EQ(stored, (std::vector<std::string>{"t:1='new'"}));
  EXPECT_EQ(reader_->confirmed(), reader_->LastLoggedSeq().value());
}

TEST_F(PublisherLoopTest, TwoCopiesOfOneDatabaseNeverShareMessageIds) {
  Restart();
  Write(1, 3, "a");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  publisher_.reset();
  reader_.reset();
  // A copy of the database (a cloned machine with the same node id, or a restored backup) writes
  // rows under the same change-log sequences as the original: none may be dropped as a duplicate.
  CopyDatabase(dir_.File("copy.db"));
  Database copy = OpenDb(dir_.File("copy.db"));
  Write(10, 4, "original");
  Exec(copy, "INSERT INTO t VALUES (20, 'c'), (21, 'c'), (22, 'c'), (23, 'c')");
  Restart();
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  Result<std::unique_ptr<ChangeReader>> copy_reader = ChangeReader::Open(dir_.File("copy.db"));
  ASSERT_TRUE(copy_reader.ok());
  ChangePublisher copy_publisher(copy_reader->get(), &stream_, nullptr, &clock_, options_);
  ASSERT_TRUE(copy_publisher.Recover(stop_).ok());
  ASSERT_TRUE(copy_publisher.PublishAvailable(stop_).ok());
  EXPECT_NE(copy_publisher.session(), publisher_->session());
  std::vector<std::string> stored = stream_.StoredChanges();
  EXPECT_EQ(stored.size(), 3u + 4u + 4u);
  EXPECT_EQ(std::count(stored.begin(), stored.end(), "t:20='c'"), 1);
  EXPECT_EQ(std::count(stored.begin(), stored.end(), "t:10='original'"), 1);
}

TEST_F(PublisherLoopTest, ADatabaseOlderThanWhatItPublishedGetsNewWritesThrough) {
  Restart();
  Write(1, 3, "a");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  ASSERT_TRUE(reader_->DeleteConfirmed().ok());
  CopyDatabase(dir_.File("backup.db"));
  Write(10, 5, "lost");  // published, then the database is restored from the backup
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  publisher_.reset();
  reader_.reset();
  Exec(db_, "PRAGMA wal_checkpoint(TRUNCATE)");
  Database restored = OpenDb(dir_.File("backup.db"));
  Result<Statement> copy = db_.Prepare("SELECT 1");  // (keeps db_ open; restore via the backup API)
  ASSERT_TRUE(copy.ok());
  sqlite3_backup* backup = sqlite3_backup_init(db_.get(), "main", restored.get(), "main");
  ASSERT_NE(backup, nullptr);
  ASSERT_EQ(sqlite3_backup_step(backup, -1), SQLITE_DONE);
  ASSERT_EQ(sqlite3_backup_finish(backup), SQLITE_OK);
  Restart();
  // New writes reuse the change-log sequences of the lost ones: they must still be stored.
  Write(30, 5, "new");
  ASSERT_TRUE(publisher_->PublishAvailable(stop_).ok());
  std::vector<std::string> stored = stream_.StoredChanges();
  EXPECT_EQ(std::count(stored.begin(), stored.end(), "t:30='new'"), 1);
  EXPECT_EQ(stored.size(), 3u + 5u + 5u);
}

TEST(MessageIdTest, RoundTripsAndRejectsOtherIds) {
  MessageId id{"0123456789abcdef", 10, 20, 2, 1, 0, 3};
  EXPECT_EQ(id.ToString(), "0123456789abcdef-10-20-2-1-0-3");
  std::optional<MessageId> back = MessageId::Parse(id.ToString());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->ToString(), id.ToString());
  for (const char* bad : {"", "1-10-20-1-0", "0123456789abcdef-10-20-2-1-0", "0123456789abcdef-10-20-2-1-3-3",
                          "0123456789abcdef-20-10-2-1-0-3", "0123456789ABCDEF-10-20-2-1-0-3",
                          "0123456789abcdef-10-20-2-1-0-3-r1", "0123456789abcdef-1x-20-2-1-0-3"}) {
    EXPECT_FALSE(MessageId::Parse(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace marmot
