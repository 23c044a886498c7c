// libFuzzer target: the consumer's message handling (stream/consumer.h) behind its MessageSource
// seam, with a real Applier on a temporary database: chunk headers and groups (incomplete, out of
// order, repeated, malformed, too large), undecodable payloads and sequence jumps, all derived from
// the input. Besides not crashing, hanging or tripping a sanitizer: the stored position never
// passes the last message delivered, and consuming always comes to an end.
//
// Input: records of [flags][group][index][count][length (2 bytes)][payload (length bytes)].
//   flags & 1: a chunk ("<group> <index> <count>"), flags & 2: the header text is the payload's
//   first 16 bytes instead, flags & 4: skip a sequence before this message (a gap).
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <string>

#include "db/applier.h"
#include "db/sqlite.h"
#include "stream/consumer.h"
#include "stream/message_source.h"
#include "util/clock.h"

namespace {

class FuzzClock : public marmot::Clock {
 public:
  TimePoint Now() override { return now_; }
  void SleepFor(std::chrono::microseconds d) override { now_ += d; }

 private:
  TimePoint now_{std::chrono::hours(1)};
};

struct Message {
  uint64_t seq;
  std::string payload;
  std::string chunk;
};

class FuzzSource : public marmot::MessageSource {
 public:
  explicit FuzzSource(std::deque<Message> messages) : messages_(std::move(messages)) {}
  marmot::Result<marmot::StreamState> State() override {
    marmot::StreamState s;
    s.first_seq = 1;
    s.last_seq = messages_.empty() ? 0 : messages_.back().seq;
    s.messages = messages_.size();
    s.created_ns = 1;
    return s;
  }
  marmot::Status Subscribe(uint64_t start) override {
    cursor_ = start;
    return marmot::Status();
  }
  marmot::Result<bool> Next(std::chrono::milliseconds, marmot::SourceMessage* out) override {
    for (const Message& m : messages_) {
      if (m.seq < cursor_) continue;
      current_ = m;
      cursor_ = m.seq + 1;
      delivered_ = std::max(delivered_, m.seq);
      out->seq = current_.seq;
      out->timestamp_ns = static_cast<int64_t>(current_.seq) * 1'000'000;
      out->payload = current_.payload;
      out->chunk_header = current_.chunk;
      return true;
    }
    return false;
  }
  bool HasPending() override { return !messages_.empty() && messages_.back().seq >= cursor_; }
  marmot::Result<int64_t> StoredHash(uint64_t seq) override {
    for (const Message& m : messages_) {
      if (m.seq == seq) return marmot::PayloadHash(m.payload);
    }
    return marmot::Status::NotFound("no message " + std::to_string(seq));
  }
  uint64_t delivered() const { return delivered_; }

 private:
  std::deque<Message> messages_;
  Message current_;
  uint64_t cursor_ = 1;
  uint64_t delivered_ = 0;
};

std::deque<Message> Parse(const uint8_t* data, size_t size) {
  std::deque<Message> out;
  uint64_t seq = 0;
  size_t i = 0;
  while (i + 6 <= size && out.size() < 256) {
    uint8_t flags = data[i], group = data[i + 1], index = data[i + 2], count = data[i + 3];
    size_t length = std::min<size_t>(data[i + 4] | (data[i + 5] << 8), size - i - 6);
    std::string payload(reinterpret_cast<const char*>(data + i + 6), length);
    i += 6 + length;
    seq += (flags & 4) ? 2 : 1;
    Message m{seq, payload, ""};
    if (flags & 2) {
      m.chunk = payload.substr(0, 16);
    } else if (flags & 1) {
      m.chunk =
          "g" + std::to_string(group % 4) + " " + std::to_string(index % 8) + " " + std::to_string(count % 8);
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::string DatabasePath() {
  static const std::string path = [] {
    std::string dir =
        (std::filesystem::temp_directory_path() / ("marmot-fuzz-" + std::to_string(getpid()))).string();
    std::filesystem::create_directories(dir);
    return dir + "/fuzz.db";
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = DatabasePath();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  {
    marmot::Database::Options create;
    create.create = true;
    marmot::Result<marmot::Database> db = marmot::Database::Open(path, create);
    if (!db.ok() || !db->Exec("PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v)").ok())
      std::abort();
  }
  marmot::Result<std::unique_ptr<marmot::Applier>> applier = marmot::Applier::Open(path);
  if (!applier.ok()) std::abort();
  auto source = std::make_unique<FuzzSource>(Parse(data, size));
  FuzzSource* view = source.get();
  FuzzClock clock;
  marmot::ConsumerOptions options;
  options.layout.compress = false;
  options.max_message_bytes = 64 << 10;
  options.max_batch_bytes = 256 << 10;
  marmot::ShardConsumer consumer(std::move(source), std::move(*applier), &clock, options,
                                 [] { return std::optional<uint64_t>(); });
  if (!consumer.Start().ok()) std::abort();
  std::atomic<bool> stop{false};
  for (int rounds = 0; rounds < 10000; ++rounds) {
    marmot::Result<bool> more = consumer.ApplyNext(std::chrono::milliseconds(0), stop);
    if (!more.ok()) std::abort();
    if (!*more) return 0;
    if (consumer.last_applied_seq() > view->delivered()) std::abort();
  }
  std::abort();  // never ends
}
