// Counts heap allocations on the replication hot path: reading captured changes, encoding them
// into messages, decoding messages and applying them (on a replica, and on the origin where its
// own changes come back). Marmot keeps its buffers from batch to batch, so once a batch of a given
// size has gone through, the next one of that size must allocate (almost) nothing per row.
//
// This binary replaces the global operator new to count; it is separate from the unit tests so
// the counting stays out of them. C libraries (SQLite, zstd, nats.c) allocate through malloc and
// are not counted.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "codec/compression.h"
#include "codec/wire_format.h"
#include "db/applier.h"
#include "db/capture.h"
#include "db/change_reader.h"
#include "db/schema.h"
#include "stream/publisher.h"
#include "test_util.h"

namespace {

std::atomic<bool> counting{false};
std::atomic<long> allocations{0};

void* CountedAlloc(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  if (void* p = std::malloc(n)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t n) { return CountedAlloc(n); }
void* operator new[](std::size_t n) { return CountedAlloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return CountedAlloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace marmot {
namespace {

using test::Exec;
using test::OpenDb;
using test::TempDir;

// Allocations made while `fn` runs.
template <typename Fn>
long CountAllocations(Fn&& fn) {
  allocations.store(0);
  counting.store(true);
  fn();
  counting.store(false);
  return allocations.load();
}

class HotPathAllocTest : public ::testing::Test {
 protected:
  static constexpr int kRows = 512;

  void SetUp() override {
    // Text values longer than std::string's inline buffer, so each one would need the heap.
    const char* schema =
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, payload BLOB, "
        "note TEXT)";
    Exec(origin_, schema);
    Exec(replica_, schema);
    Result<std::vector<TableSchema>> tables = ReadSchema(origin_);
    ASSERT_TRUE(tables.ok()) << tables.status().message();
    ASSERT_TRUE(InstallCapture(origin_, *tables).ok());
    Result<std::unique_ptr<ChangeReader>> reader = ChangeReader::Open(origin_path_);
    ASSERT_TRUE(reader.ok()) << reader.status().message();
    reader_ = std::move(*reader);
    Result<std::unique_ptr<Applier>> replica = Applier::Open(replica_path_);
    ASSERT_TRUE(replica.ok()) << replica.status().message();
    replica_applier_ = std::move(*replica);
    Result<std::unique_ptr<Applier>> own = Applier::Open(origin_path_);
    ASSERT_TRUE(own.ok()) << own.status().message();
    origin_applier_ = std::move(*own);
    options_.node_id = 7;
    options_.layout.shards = 1;
    options_.layout.compress = true;
  }

  // Writes kRows rows on the origin (inserts, then updates of the same ids in later rounds) and
  // deletes every fourth, so a batch interleaves upserts and deletes.
  void WriteRound() {
    std::string sql = "INSERT OR REPLACE INTO items VALUES ";
    for (int i = 0; i < kRows; ++i) {
      sql += (i ? ", (" : "(") + std::to_string(i) + ", 'a name longer than sixteen bytes " +
             std::to_string(round_) + "', " + std::to_string(i * 0.5) +
             ", x'00112233445566778899aabbccddeeff00', " +
             (i % 3 ? "'another text column of some length'" : "NULL") + ")";
    }
    Exec(origin_, sql + "; DELETE FROM items WHERE id % 4 = 1 AND id < " + std::to_string(kRows));
    ++round_;
  }

  // Local writes the reader has not read yet when the node's own changes come back, so the
  // applier looks for rows they supersede: new rows, and one row of the batch (id 0).
  void WriteLate() {
    Exec(origin_, "UPDATE items SET score = -1 WHERE id = 0");
    for (int i = 0; i < 10; ++i) {
      Exec(origin_, "INSERT INTO items VALUES (" + std::to_string(100000 + round_ * 10 + i) +
                        ", 'written after the read', NULL, NULL, NULL)");
    }
  }

  struct Counts {
    long read = 0, encode = 0, decode = 0, apply = 0, echo = 0;
  };

  // One batch through the whole path; returns the allocations of each stage.
  Counts RunRound() {
    WriteRound();
    Counts counts;
    ChangeBatch& batch = batch_;
    counts.read = CountAllocations([&] {
      Status read = reader_->ReadBatch(4 * kRows, &batch);
      EXPECT_TRUE(read.ok()) << read.message();
    });
    size_t rows = batch.changes.size();  // kRows, plus the late rows of the round before
    EXPECT_GE(rows, static_cast<size_t>(kRows));
    WriteLate();
    std::vector<OutgoingMessage> messages;
    counts.encode = CountAllocations([&] {
      Result<std::vector<OutgoingMessage>> built = BuildMessages(
          batch.changes, batch.first_seq, batch.last_seq, "0123456789abcdef", options_, 1 << 20, &zstd_out_);
      EXPECT_TRUE(built.ok()) << built.status().message();
      if (built.ok()) messages = std::move(*built);
    });
    // As the consumer does it (ShardConsumer::DecodeInto).
    RowChangeList& changes = decoded_;
    changes.clear();
    counts.decode = CountAllocations([&] {
      for (const OutgoingMessage& m : messages) {
        Status raw = zstd_in_.Decompress(m.payload, 64 << 20, &inflated_);
        EXPECT_TRUE(raw.ok()) << raw.message();
        MessageOrigin origin;
        Status decoded = DecodeChangeMessage(inflated_, &origin, &changes);
        EXPECT_TRUE(decoded.ok()) << decoded.message();
      }
    });
    EXPECT_EQ(changes.size(), rows);
    counts.apply = CountAllocations([&] {
      Result<ApplyStats> stats = replica_applier_->Apply(changes, StreamPosition{"s", ++stream_seq_});
      EXPECT_TRUE(stats.ok()) << stats.status().message();
      EXPECT_EQ(stats->applied, rows);
    });
    for (RowChange& c : changes) c.echo = true;
    counts.echo = CountAllocations([&] {
      Result<ApplyStats> stats =
          origin_applier_->Apply(changes, StreamPosition{"s", stream_seq_}, reader_->cursor());
      EXPECT_TRUE(stats.ok()) << stats.status().message();
      EXPECT_EQ(stats->unchanged, rows - 1);
      EXPECT_EQ(stats->superseded, 1u);  // id 0: its newer local write will be published
    });
    reader_->Confirm(batch.last_seq, {});
    return counts;
  }

  TempDir dir_;
  std::string origin_path_ = dir_.File("origin.db");
  std::string replica_path_ = dir_.File("replica.db");
  Database origin_ = OpenDb(origin_path_);
  Database replica_ = OpenDb(replica_path_);
  std::unique_ptr<ChangeReader> reader_;
  std::unique_ptr<Applier> replica_applier_;
  std::unique_ptr<Applier> origin_applier_;
  PublisherOptions options_;
  ZstdCodec zstd_out_{1};
  ZstdCodec zstd_in_;
  // Kept across rounds, as the publisher and the consumer keep theirs.
  ChangeBatch batch_;
  RowChangeList decoded_;
  std::string inflated_;
  int round_ = 0;
  uint64_t stream_seq_ = 0;
};

TEST_F(HotPathAllocTest, SteadyStateBatchesAllocateNothingPerRow) {
  RunRound();  // the first batch of this size sizes the buffers
  RunRound();
  Counts c = RunRound();
  std::printf("allocations for %d rows: read %ld, encode %ld, decode %ld, apply %ld, own echo %ld\n", kRows,
              c.read, c.encode, c.decode, c.apply, c.echo);
  // A handful per batch or per message is fine (about 10 here, whatever the batch size, and about
  // 12 more for the exact check of the one superseded row); one per row, or per value, is what
  // this catches.
  const long limit = 32;
  EXPECT_LE(c.read, limit);
  EXPECT_LE(c.encode, limit);
  EXPECT_LE(c.decode, limit);
  EXPECT_LE(c.apply, limit);
  EXPECT_LE(c.echo, limit);
}

}  // namespace
}  // namespace marmot
