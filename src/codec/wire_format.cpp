#include "codec/wire_format.h"

#include <cbor.h>

#include <cstring>
#include <map>
#include <memory>

namespace marmot {

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0)
      len = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
      len = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
      len = 4, cp = c & 0x07;
    else
      return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

// ---------------------------------------------------------------- encoding

namespace {

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  // Appends what one libcbor cbor_encode_* call writes (at most 9 bytes of item head).
  template <typename Fn>
  void Head(Fn&& encode) {
    unsigned char buf[9];
    size_t n = encode(buf, sizeof(buf));
    out_->append(reinterpret_cast<const char*>(buf), n);
  }
  void Uint(uint64_t v) {
    Head([&](unsigned char* b, size_t s) { return cbor_encode_uint(v, b, s); });
  }
  void Int(int64_t v) {
    if (v >= 0) return Uint(static_cast<uint64_t>(v));
    uint64_t n = static_cast<uint64_t>(-(v + 1));  // CBOR negative: -1 - n
    Head([&](unsigned char* b, size_t s) { return cbor_encode_negint(n, b, s); });
  }
  void Array(size_t n) {
    Head([&](unsigned char* b, size_t s) { return cbor_encode_array_start(n, b, s); });
  }
  void Map(size_t n) {
    Head([&](unsigned char* b, size_t s) { return cbor_encode_map_start(n, b, s); });
  }
  void Text(std::string_view t) {
    Head([&](unsigned char* b, size_t s) { return cbor_encode_string_start(t.size(), b, s); });
    out_->append(t);
  }
  void Bytes(std::string_view t) {
    Head([&](unsigned char* b, size_t s) { return cbor_encode_bytestring_start(t.size(), b, s); });
    out_->append(t);
  }
  void Null() {
    Head([](unsigned char* b, size_t s) { return cbor_encode_null(b, s); });
  }
  void Double(double d) {
    Head([&](unsigned char* b, size_t s) { return cbor_encode_double(d, b, s); });
  }
  void Tag(uint64_t t) {
    Head([&](unsigned char* b, size_t s) { return cbor_encode_tag(t, b, s); });
  }

  void Value(const marmot::Value& v) {
    switch (v.type()) {
      case Value::Type::kNull:
        return Null();
      case Value::Type::kInteger:
        return Int(v.integer());
      case Value::Type::kReal:
        return Double(v.real());
      case Value::Type::kText:
        if (IsValidUtf8(v.bytes())) return Text(v.bytes());
        Tag(kTagNonUtf8Text);
        return Bytes(v.bytes());
      case Value::Type::kBlob:
        return Bytes(v.bytes());
    }
  }

 private:
  std::string* out_;
};

}  // namespace

std::string EncodeChangeMessage(const MessageOrigin& origin, std::span<const RowChange* const> changes) {
  // Headers: one per (table, column list); changes of one table in a batch share the list.
  std::map<std::pair<std::string_view, const void*>, size_t> header_index;
  std::vector<const RowChange*> header_of;
  std::vector<size_t> change_header(changes.size());
  size_t estimate = 64;
  for (size_t i = 0; i < changes.size(); ++i) {
    const RowChange& c = *changes[i];
    auto key = std::make_pair(std::string_view(c.table), static_cast<const void*>(c.columns.get()));
    auto [it, inserted] = header_index.emplace(key, header_of.size());
    if (inserted) header_of.push_back(&c);
    change_header[i] = it->second;
    for (const Value& v : c.values) estimate += 10 + v.bytes().size();
  }
  std::string out;
  out.reserve(estimate);
  Writer w(&out);
  w.Map(5);
  w.Text("v");
  w.Uint(kWireFormatVersion);
  w.Text("node");
  w.Uint(origin.node_id);
  w.Text("seq");
  w.Array(2);
  w.Uint(origin.first_seq);
  w.Uint(origin.last_seq);
  w.Text("h");
  w.Array(header_of.size());
  for (const RowChange* c : header_of) {
    w.Array(2);
    w.Text(c->table);
    w.Array(c->columns ? c->columns->size() : 0);
    if (c->columns) {
      for (const std::string& col : *c->columns) w.Text(col);
    }
  }
  w.Text("c");
  w.Array(changes.size());
  for (size_t i = 0; i < changes.size(); ++i) {
    const RowChange& c = *changes[i];
    w.Array(3);
    w.Uint(change_header[i]);
    w.Uint(static_cast<uint64_t>(c.op));
    w.Array(c.values.size());
    for (const Value& v : c.values) w.Value(v);
  }
  return out;
}

std::string EncodeChangeMessage(const ChangeMessage& message) {
  std::vector<const RowChange*> changes;
  changes.reserve(message.changes.size());
  for (const RowChange& c : message.changes) changes.push_back(&c);
  return EncodeChangeMessage(message, changes);
}

// ---------------------------------------------------------------- decoding

namespace {

// One decoded CBOR item head (and the payload of definite strings).
struct Item {
  enum Kind {
    kNone,
    kUint,
    kNegint,
    kBytes,
    kText,
    kArray,
    kMap,
    kTag,
    kFloat,
    kNull,
    kBool,
    kUndefined,
    kIndefinite,
    kBreak
  };
  Kind kind = kNone;
  uint64_t u = 0;  // uint value, negint n (value -1-n), array/map length, tag number
  double d = 0;
  const char* data = nullptr;
  size_t len = 0;
};

const char* KindName(Item::Kind k) {
  static const char* kNames[] = {"nothing",
                                 "unsigned integer",
                                 "negative integer",
                                 "byte string",
                                 "text string",
                                 "array",
                                 "map",
                                 "tag",
                                 "float",
                                 "null",
                                 "boolean",
                                 "undefined",
                                 "indefinite-length item",
                                 "break"};
  return kNames[k];
}

Item* Ctx(void* c) { return static_cast<Item*>(c); }
void OnU8(void* c, uint8_t v) { *Ctx(c) = {Item::kUint, v}; }
void OnU16(void* c, uint16_t v) { *Ctx(c) = {Item::kUint, v}; }
void OnU32(void* c, uint32_t v) { *Ctx(c) = {Item::kUint, v}; }
void OnU64(void* c, uint64_t v) { *Ctx(c) = {Item::kUint, v}; }
void OnN8(void* c, uint8_t v) { *Ctx(c) = {Item::kNegint, v}; }
void OnN16(void* c, uint16_t v) { *Ctx(c) = {Item::kNegint, v}; }
void OnN32(void* c, uint32_t v) { *Ctx(c) = {Item::kNegint, v}; }
void OnN64(void* c, uint64_t v) { *Ctx(c) = {Item::kNegint, v}; }
void OnBytes(void* c, cbor_data d, uint64_t n) {
  *Ctx(c) = {Item::kBytes, 0, 0, reinterpret_cast<const char*>(d), static_cast<size_t>(n)};
}
void OnText(void* c, cbor_data d, uint64_t n) {
  *Ctx(c) = {Item::kText, 0, 0, reinterpret_cast<const char*>(d), static_cast<size_t>(n)};
}
void OnIndef(void* c) { *Ctx(c) = {Item::kIndefinite}; }
void OnArray(void* c, uint64_t n) { *Ctx(c) = {Item::kArray, n}; }
void OnMap(void* c, uint64_t n) { *Ctx(c) = {Item::kMap, n}; }
void OnTag(void* c, uint64_t t) { *Ctx(c) = {Item::kTag, t}; }
void OnFloat(void* c, float f) { *Ctx(c) = {Item::kFloat, 0, static_cast<double>(f)}; }
void OnDouble(void* c, double d) { *Ctx(c) = {Item::kFloat, 0, d}; }
void OnNull(void* c) { *Ctx(c) = {Item::kNull}; }
void OnUndefined(void* c) { *Ctx(c) = {Item::kUndefined}; }
void OnBool(void* c, bool b) { *Ctx(c) = {Item::kBool, b ? 1u : 0u}; }
void OnBreak(void* c) { *Ctx(c) = {Item::kBreak}; }

const cbor_callbacks kCallbacks = [] {
  cbor_callbacks cb = cbor_empty_callbacks;
  cb.uint8 = OnU8;
  cb.uint16 = OnU16;
  cb.uint32 = OnU32;
  cb.uint64 = OnU64;
  cb.negint8 = OnN8;
  cb.negint16 = OnN16;
  cb.negint32 = OnN32;
  cb.negint64 = OnN64;
  cb.byte_string = OnBytes;
  cb.byte_string_start = OnIndef;
  cb.string = OnText;
  cb.string_start = OnIndef;
  cb.indef_array_start = OnIndef;
  cb.array_start = OnArray;
  cb.indef_map_start = OnIndef;
  cb.map_start = OnMap;
  cb.tag = OnTag;
  cb.float2 = OnFloat;
  cb.float4 = OnFloat;
  cb.float8 = OnDouble;
  cb.undefined = OnUndefined;
  cb.null = OnNull;
  cb.boolean = OnBool;
  cb.indef_break = OnBreak;
  return cb;
}();

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  // Reads the next item into `item`. On failure returns false and keeps the reason in error().
  // (The per-row loop uses this form: a Result per item costs more than decoding the item.)
  bool Read(Item* item) {
    if (offset_ >= bytes_.size()) return Fail("unexpected end of message");
    *item = Item();
    cbor_decoder_result r = cbor_stream_decode(reinterpret_cast<cbor_data>(bytes_.data() + offset_),
                                               bytes_.size() - offset_, &kCallbacks, item);
    if (r.status == CBOR_DECODER_NEDATA) return Fail("unexpected end of message");
    if (r.status != CBOR_DECODER_FINISHED || item->kind == Item::kNone) return Fail("malformed CBOR");
    if (item->kind == Item::kIndefinite) {
      return Fail("indefinite-length items are not supported (encode with definite lengths)");
    }
    offset_ += r.read;
    return true;
  }
  // As Read, and the item must be of `kind`.
  bool Read(Item::Kind kind, Item* item) {
    if (!Read(item)) return false;
    if (item->kind == kind) return true;
    return Fail(std::string("expected ") + KindName(kind) + ", found " + KindName(item->kind));
  }
  // As Read(kArray), and the array's length must fit in the rest of the message (each element
  // takes at least one byte), so no allocation can be larger than the input.
  bool ReadArray(uint64_t* length) {
    Item item;
    if (!Read(Item::kArray, &item)) return false;
    if (item.u > remaining())
      return Fail("array of " + std::to_string(item.u) + " items is longer than the message");
    *length = item.u;
    return true;
  }
  bool ReadUint(uint64_t* value) {
    Item item;
    if (!Read(Item::kUint, &item)) return false;
    *value = item.u;
    return true;
  }
  // Records `what` (at the current offset) as the reason for failing; returns false.
  bool Fail(const std::string& what) {
    error_ = Error(what);
    return false;
  }
  const Status& error() const { return error_; }

  Result<Item> Next() {
    Item item;
    if (!Read(&item)) return error_;
    return item;
  }

  Result<Item> Expect(Item::Kind kind) {
    Item item;
    if (!Read(kind, &item)) return error_;
    return item;
  }

  // Skips one complete item (for unknown keys).
  Status Skip(int depth = 0) {
    if (depth > 32) return Error("nesting too deep");
    Result<Item> item = Next();
    if (!item.ok()) return item.status();
    uint64_t children = 0;
    if (item->kind == Item::kArray) children = item->u;
    if (item->kind == Item::kMap) children = item->u * 2;
    if (item->kind == Item::kTag) children = 1;
    if (children > bytes_.size()) return Error("collection longer than the message");
    for (uint64_t i = 0; i < children; ++i) MARMOT_RETURN_IF_ERROR(Skip(depth + 1));
    return Status();
  }

  size_t remaining() const { return bytes_.size() - offset_; }
  Status Error(const std::string& what) const {
    return Status::Error("wire format: " + what + " at byte " + std::to_string(offset_));
  }

 private:
  std::string_view bytes_;
  size_t offset_ = 0;
  Status error_;
};

// An array length must fit in the remaining bytes (each element takes at least one byte), so no
// allocation can be larger than the input.
Result<uint64_t> ArrayLength(Reader& r) {
  uint64_t n;
  if (!r.ReadArray(&n)) return r.error();
  return n;
}

Result<uint64_t> ReadUint(Reader& r) {
  uint64_t v;
  if (!r.ReadUint(&v)) return r.error();
  return v;
}

// Reads one column value into `into`; false (reason in r.error()) when it is not one.
bool ReadValue(Reader& r, Value* into) {
  Item item;
  if (!r.Read(&item)) return false;
  switch (item.kind) {
    case Item::kNull:
      into->SetNull();
      return true;
    case Item::kUint:
      if (item.u > static_cast<uint64_t>(INT64_MAX)) return r.Fail("integer above the 64-bit signed range");
      into->SetInteger(static_cast<int64_t>(item.u));
      return true;
    case Item::kNegint:
      if (item.u > static_cast<uint64_t>(INT64_MAX)) return r.Fail("integer below the 64-bit signed range");
      into->SetInteger(-1 - static_cast<int64_t>(item.u));
      return true;
    case Item::kFloat:
      into->SetReal(item.d);
      return true;
    case Item::kText:
      into->SetText(std::string_view(item.data, item.len));
      return true;
    case Item::kBytes:
      into->SetBlob(std::string_view(item.data, item.len));
      return true;
    case Item::kTag:
      if (item.u != kTagNonUtf8Text) return r.Fail("unknown tag " + std::to_string(item.u));
      if (!r.Read(Item::kBytes, &item)) return false;
      into->SetText(std::string_view(item.data, item.len));
      return true;
    default:
      return r.Fail(std::string("a ") + KindName(item.kind) + " is not a column value");
  }
}

Status ReadHeaders(
    Reader& r, std::vector<std::pair<std::string, std::shared_ptr<const std::vector<std::string>>>>* out) {
  Result<uint64_t> n = ArrayLength(r);
  if (!n.ok()) return n.status();
  for (uint64_t i = 0; i < *n; ++i) {
    std::string where = "header #" + std::to_string(i);
    Result<uint64_t> pair = ArrayLength(r);
    if (!pair.ok()) return pair.status().WithContext(where);
    if (*pair != 2) return r.Error(where + ": expected [table, columns]");
    Result<Item> table = r.Expect(Item::kText);
    if (!table.ok()) return table.status().WithContext(where);
    Result<uint64_t> ncols = ArrayLength(r);
    if (!ncols.ok()) return ncols.status().WithContext(where);
    auto columns = std::make_shared<std::vector<std::string>>();
    columns->reserve(*ncols);
    for (uint64_t c = 0; c < *ncols; ++c) {
      Result<Item> col = r.Expect(Item::kText);
      if (!col.ok()) return col.status().WithContext(where + ": column #" + std::to_string(c));
      columns->emplace_back(col->data, col->len);
    }
    out->emplace_back(std::string(table->data, table->len), std::move(columns));
  }
  return Status();
}

}  // namespace

namespace {

Status DecodeInto(std::string_view bytes, MessageOrigin* origin, RowChangeList* changes) {
  Reader r(bytes);
  Result<Item> map = r.Expect(Item::kMap);
  if (!map.ok()) return map.status();
  bool have_version = false;
  std::vector<std::pair<std::string, std::shared_ptr<const std::vector<std::string>>>> headers;
  for (uint64_t i = 0; i < map->u; ++i) {
    Result<Item> key = r.Expect(Item::kText);
    if (!key.ok()) return key.status();
    std::string_view k(key->data, key->len);
    if (k == "v") {
      Result<uint64_t> v = ReadUint(r);
      if (!v.ok()) return v.status();
      if (*v > kWireFormatVersion) {
        return Status::Error("wire format version " + std::to_string(*v) +
                             " is newer than this marmot understands (" + std::to_string(kWireFormatVersion) +
                             "); upgrade marmot on this node");
      }
      have_version = true;
    } else if (k == "node") {
      Result<uint64_t> v = ReadUint(r);
      if (!v.ok()) return v.status();
      origin->node_id = *v;
    } else if (k == "seq") {
      Result<uint64_t> n = ArrayLength(r);
      if (!n.ok()) return n.status();
      if (*n != 2) return r.Error("\"seq\" must be [first, last]");
      Result<uint64_t> first = ReadUint(r);
      if (!first.ok()) return first.status();
      Result<uint64_t> last = ReadUint(r);
      if (!last.ok()) return last.status();
      origin->first_seq = *first;
      origin->last_seq = *last;
    } else if (k == "h") {
      MARMOT_RETURN_IF_ERROR(ReadHeaders(r, &headers));
    } else if (k == "c") {
      Result<uint64_t> n = ArrayLength(r);
      if (!n.ok()) return n.status();
      for (uint64_t c = 0; c < *n; ++c) {
        // Built only for an error message: this loop runs once per row.
        auto where = [c] { return "change #" + std::to_string(c); };
        uint64_t triple, h, op, nvalues;
        if (!r.ReadArray(&triple)) return r.error().WithContext(where());
        if (triple != 3) return r.Error(where() + ": expected [header, op, values]");
        if (!r.ReadUint(&h)) return r.error().WithContext(where());
        if (h >= headers.size())
          return r.Error(where() + ": header " + std::to_string(h) +
                         " does not exist (\"h\" must come before \"c\")");
        if (!r.ReadUint(&op)) return r.error().WithContext(where());
        if (op != 1 && op != 2) return r.Error(where() + ": unknown op " + std::to_string(op));
        if (!r.ReadArray(&nvalues)) return r.error().WithContext(where());
        const auto& [table, columns] = headers[h];
        if (nvalues != columns->size()) {
          return r.Error(where() + ": " + std::to_string(nvalues) + " values for " +
                         std::to_string(columns->size()) + " columns");
        }
        RowChange& change = changes->Append();
        change.table = table;
        change.op = static_cast<RowChange::Op>(op);
        change.columns = columns;
        change.values.resize(nvalues);
        for (uint64_t v = 0; v < nvalues; ++v) {
          if (!ReadValue(r, &change.values[v]))
            return r.error().WithContext(where() + ": value #" + std::to_string(v));
        }
      }
    } else {
      MARMOT_RETURN_IF_ERROR(r.Skip());  // a newer writer's optional field
    }
  }
  if (!have_version) return Status::Error("wire format: no version (\"v\") in message");
  if (r.remaining() != 0) return r.Error("trailing bytes after the message");
  return Status();
}

}  // namespace

Status DecodeChangeMessage(std::string_view bytes, MessageOrigin* origin, RowChangeList* changes) {
  size_t appended_from = changes->size();
  Status s = DecodeInto(bytes, origin, changes);
  if (!s.ok()) changes->Truncate(appended_from);
  return s;
}

Result<ChangeMessage> DecodeChangeMessage(std::string_view bytes) {
  ChangeMessage message;
  RowChangeList changes;
  MARMOT_RETURN_IF_ERROR(DecodeChangeMessage(bytes, &message, &changes));
  message.changes.assign(changes.begin(), changes.end());
  return message;
}

}  // namespace marmot
