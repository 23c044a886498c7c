#include "db/value.h"

#include <cstdio>
#include <cstring>

#include "util/fnv.h"

namespace marmot {

std::string ChangeShapeKey(const RowChange& change) {
  std::string key(1, static_cast<char>(change.op));
  key += change.table;
  for (const std::string& c : *change.columns) {
    key.push_back('\0');
    key += c;
  }
  return key;
}

std::string Value::ToDebugString() const {
  static const char kHex[] = "0123456789ABCDEF";
  switch (type_) {
    case Type::kNull:
      return "NULL";
    case Type::kInteger:
      return std::to_string(i_);
    case Type::kReal: {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.17g", d_);
      return buf;
    }
    case Type::kText: {
      std::string out = "'";
      for (char c : bytes_) {
        if (c == '\'') out.push_back('\'');
        out.push_back(c);
      }
      return out + "'";
    }
    case Type::kBlob: {
      std::string out = "X'";
      for (unsigned char c : bytes_) {
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
      }
      return out + "'";
    }
  }
  return "?";
}

void AppendKeyBytes(const Value& v, std::string* out) {
  out->push_back(static_cast<char>(v.type()));
  switch (v.type()) {
    case Value::Type::kNull:
      break;
    case Value::Type::kInteger: {
      int64_t i = v.integer();
      out->append(reinterpret_cast<const char*>(&i), sizeof(i));
      break;
    }
    case Value::Type::kReal: {
      double d = v.real();
      out->append(reinterpret_cast<const char*>(&d), sizeof(d));
      break;
    }
    default: {
      uint64_t n = v.bytes().size();
      out->append(reinterpret_cast<const char*>(&n), sizeof(n));
      out->append(v.bytes());
    }
  }
}

namespace {

void Mix(uint64_t* h, const void* data, size_t n) { *h = Fnv1a64Add(*h, data, n); }

void MixBigEndian(uint64_t* h, uint64_t v) {
  unsigned char b[8];
  for (int i = 7; i >= 0; --i) {
    b[i] = static_cast<unsigned char>(v & 0xff);
    v >>= 8;
  }
  Mix(h, b, 8);
}

}  // namespace

RowHasher::RowHasher(std::string_view table) : h_(kFnv1a64OffsetBasis) {
  Mix(&h_, table.data(), table.size());
  unsigned char zero = 0;
  Mix(&h_, &zero, 1);
}

void RowHasher::Add(const Value& v) {
  unsigned char type = static_cast<unsigned char>(v.type());
  Mix(&h_, &type, 1);
  switch (v.type()) {
    case Value::Type::kNull:
      break;
    case Value::Type::kInteger:
      MixBigEndian(&h_, static_cast<uint64_t>(v.integer()));
      break;
    case Value::Type::kReal: {
      double d = v.real();
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof(bits));
      MixBigEndian(&h_, bits);
      break;
    }
    default:
      MixBigEndian(&h_, v.bytes().size());
      Mix(&h_, v.bytes().data(), v.bytes().size());
  }
}

uint64_t RowHash(const std::string& table, const std::vector<const Value*>& key) {
  RowHasher hasher(table);
  for (const Value* v : key) hasher.Add(*v);
  return hasher.hash();
}

size_t RowChangeList::BufferBytes() const {
  size_t bytes = 0;
  for (const RowChange& slot : slots_) {
    for (const Value& v : slot.values) bytes += v.bytes().capacity();
  }
  return bytes;
}

RowChange& RowChangeList::Append() {
  if (size_ == slots_.size()) slots_.emplace_back();
  RowChange& slot = slots_[size_++];
  slot.op = RowChange::Op::kUpsert;
  slot.row_hash = 0;
  slot.echo = false;
  slot.stream_seq = 0;
  return slot;
}

}  // namespace marmot
