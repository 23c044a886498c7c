// The wire format of one replication message: a batch of row changes from one node, as CBOR
// (RFC 8949). docs/PROTOCOL.md is the specification; this is the reference implementation.
//
//   { "v": 1, "node": uint, "seq": [first, last],
//     "h": [ [table, [column, ...]], ... ],        one header per (table, column list)
//     "c": [ [header index, op, [value, ...]], ... ] }   op: 1 upsert, 2 delete
//
// Values: NULL -> null; INTEGER -> integer; REAL -> always float64 (bit-exact); TEXT -> text
// string, or tag 50000 around a byte string when it is not valid UTF-8; BLOB -> byte string.
// Decoders ignore unknown keys of the top-level map; "v" changes only for incompatible changes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "db/value.h"
#include "util/status.h"

namespace marmot {

inline constexpr uint64_t kWireFormatVersion = 1;
inline constexpr uint64_t kTagNonUtf8Text = 50000;

// Who sent a message and which of its change-log entries it covers.
struct MessageOrigin {
  uint64_t node_id = 0;
  uint64_t first_seq = 0;  // the origin's change-log range this message covers
  uint64_t last_seq = 0;
};

struct ChangeMessage : MessageOrigin {
  std::vector<RowChange> changes;
};

// The hot path's form: encodes the changes pointed to (the batch is not copied).
std::string EncodeChangeMessage(const MessageOrigin& origin, std::span<const RowChange* const> changes);
std::string EncodeChangeMessage(const ChangeMessage& message);

// Never reads outside `bytes` and never trusts a length before checking it against the input.
// Changes that share a header share one columns vector.
//
// The hot path's form appends the message's changes to `changes`, reusing its slots; on error
// nothing is appended (`origin` may be partly set).
Status DecodeChangeMessage(std::string_view bytes, MessageOrigin* origin, RowChangeList* changes);
Result<ChangeMessage> DecodeChangeMessage(std::string_view bytes);

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace marmot
