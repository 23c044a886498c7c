// The publisher's messages and the consumer against a real nats-server: batches split by shard,
// rows larger than the server's max payload sent in chunks and put back together, a message that
// cannot be decoded dead-lettered while the rest applies, and resuming from the stored position.
#include "stream/consumer.h"

#include <random>
#include <thread>

#include "codec/wire_format.h"
#include "db/applier.h"
#include "local_nats.h"
#include "stream/jetstream_source.h"
#include "stream/nats_client.h"
#include "stream/nats_server.h"
#include "stream/publisher.h"
#include "test_util.h"

namespace marmot {
namespace {

using test::TempDir;

class ConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nats_.Start("consumer-test", dir_.File("nats"));
    ASSERT_FALSE(HasFatalFailure());
    client_ = nats_.client.get();
    layout_.shards = 2;
    ASSERT_TRUE(EnsureStreams(client_->jetstream(), layout_).ok());
    db_ = std::make_unique<Database>(test::OpenDb(dir_.File("replica.db")));
    test::Exec(*db_, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
  }

  // Publishes every message of `batch` (as the publisher would) and waits for the acks.
  void Publish(const ChangeBatch& batch, size_t max_payload) {
    PublisherOptions po;
    ZstdCodec zstd;
    po.node_id = 5;
    po.layout = layout_;
    Result<std::vector<OutgoingMessage>> messages = BuildMessages(
        batch.changes, batch.first_seq, batch.last_seq, "0123456789abcdef", po, max_payload, &zstd);
    ASSERT_TRUE(messages.ok()) << messages.status().message();
    for (const OutgoingMessage& m : *messages) {
      ASSERT_LE(m.payload.size(), max_payload);
      if (!m.chunk_header.empty()) ++chunks_;
      PublishRaw(layout_.Subject(m.shard), m.payload, m.chunk_header);
    }
  }
  void PublishRaw(const std::string& subject, const std::string& payload, const std::string& chunk = "") {
    natsMsg* msg = nullptr;
    ASSERT_EQ(
        natsMsg_Create(&msg, subject.c_str(), nullptr, payload.data(), static_cast<int>(payload.size())),
        NATS_OK);
    if (!chunk.empty()) natsMsgHeader_Set(msg, "Marmot-Chunk", chunk.c_str());
    jsPubAck* ack = nullptr;
    ASSERT_EQ(js_PublishMsg(&ack, client_->jetstream(), msg, nullptr, nullptr), NATS_OK);
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(msg);
  }

  // Runs one consumer per shard until `done` holds or 10 s pass.
  void Consume(const std::function<bool()>& done) {
    std::vector<std::unique_ptr<ShardConsumer>> consumers;
    for (int shard = 1; shard <= layout_.shards; ++shard) {
      Result<std::unique_ptr<Applier>> applier = Applier::Open(dir_.File("replica.db"));
      ASSERT_TRUE(applier.ok());
      ConsumerOptions co;
      co.layout = layout_;
      co.shard = shard;
      consumers.push_back(
          std::make_unique<ShardConsumer>(std::make_unique<JetStreamSource>(client_, layout_, shard),
                                          std::move(*applier), SystemClock::Get(), co, nullptr));
      ASSERT_TRUE(consumers.back()->Start().ok());
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (auto& c : consumers) threads.emplace_back([&stop, c = c.get()] { c->Run(stop); });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stop = true;
    for (auto& t : threads) t.join();
  }

  static ChangeBatch Rows(int first, int count, size_t blob_size) {
    auto columns = std::make_shared<const std::vector<std::string>>(std::vector<std::string>{"id", "v"});
    ChangeBatch batch;
    batch.first_seq = first;
    batch.last_seq = first + count - 1;
    batch.entries = count;
    for (int id = first; id < first + count; ++id) {
      std::string blob(blob_size, '\0');
      std::mt19937 rng(static_cast<unsigned>(id));  // incompressible, so zstd cannot shrink it
      for (char& b : blob) b = static_cast<char>(rng());
      RowChange c{"t", RowChange::Op::kUpsert, columns, {Value::Integer(id), Value::Blob(blob)}, 0};
      Value key = Value::Integer(id);
      c.row_hash = RowHash("t", {&key});
      batch.changes.push_back(std::move(c));
    }
    return batch;
  }

  int64_t Count(const std::string& sql) { return test::QueryInt(*db_, sql); }

  // The sequence of the last message in the stream of `shard` (0 when empty).
  uint64_t LastSeq(int shard) {
    jsStreamInfo* info = nullptr;
    natsStatus s =
        js_GetStreamInfo(&info, client_->jetstream(), layout_.StreamName(shard).c_str(), nullptr, nullptr);
    EXPECT_EQ(s, NATS_OK);
    if (s != NATS_OK) return 0;
    uint64_t last = info->State.LastSeq;
    jsStreamInfo_Destroy(info);
    return last;
  }

  int chunks_ = 0;
  TempDir dir_;
  test::LocalNats nats_;
  NatsClient* client_ = nullptr;
  StreamLayout layout_;
  std::unique_ptr<Database> db_;
};

TEST_F(ConsumerTest, SplitsChunksAndDeadLettersWhileTheRestApplies) {
  // 40 small rows in a 4 KiB payload limit: split into several messages over two shards.
  Publish(Rows(1, 40, 100), 4096);
  // Three rows of 10 KiB each, incompressible, with a 4 KiB limit: each is sent in chunks.
  Publish(Rows(100, 3, 10000), 4096);
  EXPECT_GE(chunks_, 6) << "rows over the payload limit were not chunked";
  // Garbage on shard 1, then more good rows.
  PublishRaw(layout_.Subject(1), "this is not zstd");
  Publish(Rows(200, 5, 10), 1 << 20);
  Consume([&] {
    return Count("SELECT count(*) FROM t") == 48 && Count("SELECT count(*) FROM __marmot__dead_letter") == 1;
  });
  EXPECT_EQ(Count("SELECT count(*) FROM t"), 48);
  EXPECT_EQ(Count("SELECT length(v) FROM t WHERE id = 101"), 10000);
  ChangeBatch expected = Rows(101, 1, 10000);
  std::vector<std::string> got = test::Rows(*db_, "SELECT v FROM t WHERE id = 101");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], "4:" + expected.changes[0].values[1].ToDebugString());
  EXPECT_EQ(Count("SELECT count(*) FROM __marmot__dead_letter WHERE op = 'undecodable message' AND reason "
                  "LIKE '%zstd%'"),
            1);

  // Positions are stored per stream; a new consumer resumes after them (applies nothing again).
  int64_t p1 = Count("SELECT seq FROM __marmot__positions WHERE stream = 'marmot-changes-c-1'");
  int64_t p2 = Count("SELECT seq FROM __marmot__positions WHERE stream = 'marmot-changes-c-2'");
  EXPECT_GT(p1, 0);
  EXPECT_GT(p2, 0);
  test::Exec(*db_, "DELETE FROM t");  // if anything were replayed, rows would come back
  // New rows on both shards; the consumers run until each stored position is its stream's last
  // message, so everything a replay would apply (it comes earlier in the stream) is applied by then.
  const uint64_t before1 = LastSeq(1);
  const uint64_t before2 = LastSeq(2);
  Publish(Rows(300, 8, 10), 1 << 20);
  const uint64_t last1 = LastSeq(1);
  const uint64_t last2 = LastSeq(2);
  ASSERT_GT(last1, before1) << "no new message on shard 1: the check would not cover it";
  ASSERT_GT(last2, before2) << "no new message on shard 2: the check would not cover it";
  auto position = [&](int shard) {
    return Count("SELECT coalesce(max(seq), 0) FROM __marmot__positions WHERE stream = '" +
                 layout_.StreamName(shard) + "'");
  };
  Consume([&] {
    return position(1) == static_cast<int64_t>(last1) && position(2) == static_cast<int64_t>(last2);
  });
  ASSERT_EQ(position(1), static_cast<int64_t>(last1))
      << "shard 1 consumer did not reach the end of its stream";
  ASSERT_EQ(position(2), static_cast<int64_t>(last2))
      << "shard 2 consumer did not reach the end of its stream";
  EXPECT_EQ(Count("SELECT count(*) FROM t"), 8);
  EXPECT_EQ(Count("SELECT count(*) FROM t WHERE id BETWEEN 300 AND 307"), 8);
  // The undecodable message was not met again either.
  EXPECT_EQ(Count("SELECT count(*) FROM __marmot__dead_letter"), 1);
}

}  // namespace
}  // namespace marmot
