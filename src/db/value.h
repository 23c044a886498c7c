// Value: one SQLite column value, kept exactly as SQLite stored it.
//
// The five storage classes round-trip bit-exactly: INTEGER as int64, REAL as the double's bits
// (including -0.0 and infinities), TEXT and BLOB as raw bytes (TEXT may hold embedded NULs and is
// never re-encoded). A RowChange is what capture produces and the applier consumes.
#pragma once

#include <bit>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace marmot {

class Value {
 public:
  enum class Type : uint8_t { kNull = 0, kInteger = 1, kReal = 2, kText = 3, kBlob = 4 };

  Value() = default;
  static Value Null() { return Value(); }
  static Value Integer(int64_t v) {
    Value x;
    x.type_ = Type::kInteger;
    x.i_ = v;
    return x;
  }
  static Value Real(double v) {
    Value x;
    x.type_ = Type::kReal;
    x.d_ = v;
    return x;
  }
  static Value Text(std::string v) {
    Value x;
    x.type_ = Type::kText;
    x.bytes_ = std::move(v);
    return x;
  }
  static Value Blob(std::string v) {
    Value x;
    x.type_ = Type::kBlob;
    x.bytes_ = std::move(v);
    return x;
  }

  // In-place setters: they keep the TEXT/BLOB buffer's capacity, so refilling a Value that is
  // reused from batch to batch does not allocate.
  void SetNull() { Set(Type::kNull); }
  void SetInteger(int64_t v) {
    Set(Type::kInteger);
    i_ = v;
  }
  void SetReal(double v) {
    Set(Type::kReal);
    d_ = v;
  }
  void SetText(std::string_view v) { SetBytes(Type::kText, v); }
  void SetBlob(std::string_view v) { SetBytes(Type::kBlob, v); }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  int64_t integer() const { return i_; }
  double real() const { return d_; }
  const std::string& bytes() const { return bytes_; }  // TEXT or BLOB content

  // Exact equality: REAL compares bit patterns, so -0.0 != 0.0 and equal NaNs are equal.
  friend bool operator==(const Value& a, const Value& b) {
    if (a.type_ != b.type_) return false;
    switch (a.type_) {
      case Type::kNull:
        return true;
      case Type::kInteger:
        return a.i_ == b.i_;
      case Type::kReal:
        return std::bit_cast<uint64_t>(a.d_) == std::bit_cast<uint64_t>(b.d_);
      default:
        return a.bytes_ == b.bytes_;
    }
  }

  // A short human-readable rendering for logs and the dead-letter table (SQL literal style).
  std::string ToDebugString() const;

 private:
  void Set(Type type) {
    type_ = type;
    bytes_.clear();
  }
  void SetBytes(Type type, std::string_view v) {
    type_ = type;
    bytes_.assign(v.data(), v.size());
  }

  Type type_ = Type::kNull;
  union {
    int64_t i_ = 0;
    double d_;
  };
  std::string bytes_;
};

// Appends a byte encoding of `v` to `out` such that two values get the same bytes exactly when
// they are equal (type included). Used to build hash keys that identify rows.
void AppendKeyBytes(const Value& v, std::string* out);

// Identifies a row across nodes and platforms (it picks the row's shard): 64-bit FNV-1a
// (util/fnv.h) over the table name, a 0 byte, then each key value as: type byte (0 NULL,
// 1 INTEGER, 2 REAL, 3 TEXT, 4 BLOB) followed by the 8 big-endian bytes of the integer or of the
// double's bits, or by the 8-byte big-endian length and the bytes for TEXT and BLOB.
uint64_t RowHash(const std::string& table, const std::vector<const Value*>& key);

// RowHash computed incrementally: RowHasher(table), then Add() each key value in order.
class RowHasher {
 public:
  explicit RowHasher(std::string_view table);
  void Add(const Value& v);
  uint64_t hash() const { return h_; }

 private:
  uint64_t h_;
};

// What a row looks like on the wire: the table, the operation and named column values.
// Columns are shared between the changes of one table in one batch (one allocation per batch,
// not per row).
struct RowChange {
  enum class Op : uint8_t { kUpsert = 1, kDelete = 2 };

  std::string table;
  Op op = Op::kUpsert;
  // For kUpsert: every stored (non-generated) column, plus the rowid for tables keyed by rowid.
  // For kDelete: the key columns only.
  std::shared_ptr<const std::vector<std::string>> columns;
  std::vector<Value> values;  // parallel to *columns
  uint64_t row_hash = 0;      // RowHash(table, key values); set by the change reader
  // Set by the consumer, not on the wire: this node published the change and it came back from
  // the stream (a hint that the row may already hold it; see RowMatcher).
  bool echo = false;
  // Set by the consumer, not on the wire: the stream sequence of the message that carried it (the
  // first chunk's for a row in chunks), so a dead letter names its own message.
  uint64_t stream_seq = 0;
};

// A list of RowChanges that keeps its elements, and their buffers, when cleared: refilling it
// with rows of the same shapes allocates nothing. Reads like a vector. References to its changes
// stay valid until the next Append.
class RowChangeList {
 public:
  RowChangeList() = default;
  RowChangeList(RowChangeList&& other) noexcept
      : slots_(std::move(other.slots_)), size_(std::exchange(other.size_, 0)) {}
  RowChangeList& operator=(RowChangeList&& other) noexcept {
    slots_ = std::move(other.slots_);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }

  // Appends a change whose op, echo and row_hash are reset and whose table, columns and values
  // still hold what this slot held before: set the table and columns, resize the values and
  // assign every one (Value's setters keep capacity).
  RowChange& Append();
  // Appends a copy of `change` (its buffers replace the slot's: for tests and cold paths).
  void push_back(RowChange change) { Append() = std::move(change); }
  // Drops the changes from `size` on (their slots are kept for reuse).
  void Truncate(size_t size) {
    if (size < size_) size_ = size;
  }
  void clear() { size_ = 0; }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  RowChange& operator[](size_t i) { return slots_[i]; }
  const RowChange& operator[](size_t i) const { return slots_[i]; }
  RowChange* begin() { return slots_.data(); }
  RowChange* end() { return slots_.data() + size_; }
  const RowChange* begin() const { return slots_.data(); }
  const RowChange* end() const { return slots_.data() + size_; }
  operator std::span<const RowChange>() const { return {slots_.data(), size_}; }  // NOLINT

  // Heap bytes held by the TEXT and BLOB buffers of all slots, used or not (owners release a
  // list that once held huge rows instead of keeping that memory for good).
  size_t BufferBytes() const;

 private:
  std::vector<RowChange> slots_;
  size_t size_ = 0;
};

// The operation, table and column list of `change`: changes with the same shape are applied by
// the same statement.
std::string ChangeShapeKey(const RowChange& change);

}  // namespace marmot
