// The meta message of the NATS object store protocol (ADR-20) and its encodings, for
// NatsObjectStore (nats_object_store.h): one JSON document per object on the subject
// "$O.<bucket>.M.<base64url(name)>", for example (as nats.go writes it)
//   {"name":"snap-1.db.zst","bucket":"b","nuid":"...","size":1234,"mtime":"2024-05-01T10:00:00.1Z",
//    "chunks":1,"digest":"SHA-256=<base64url of the SHA-256>","options":{"max_chunk_size":131072}}
// A removed object keeps its meta with "deleted": true (size, chunks and digest emptied).
//
// Reading accepts what the official clients write: fields in any order, fields marmot does not
// use (description, headers, metadata, ...) skipped, null for absent values, the digest in URL or
// standard base64, padded or not, or hex. No JSON library: the format is this small.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace marmot {

// The fields of the meta message marmot writes and reads.
struct ObjectInfo {
  std::string name, bucket, nuid;
  std::string digest;  // "SHA-256=<base64url, padded>"; empty for a deleted object
  uint64_t size = 0, chunks = 0;
  uint64_t max_chunk_size = uint64_t{128} * 1024;
  bool deleted = false;
};

// Base64 with the URL alphabet and '=' padding, as Go's base64.URLEncoding: how the protocol
// encodes names in meta subjects and digests.
std::string Base64UrlPadded(std::string_view bytes);

// The 32 bytes of a digest "SHA-256=<...>"; nullopt when `digest` is not one.
std::optional<std::string> DecodeSha256Digest(std::string_view digest);

// The meta message for `info`, with the current time as mtime (RFC 3339, UTC). Empty digest and
// false deleted are left out, as nats.go does.
std::string ObjectInfoJson(const ObjectInfo& info);

// Reads a meta message; nullopt when it is not JSON of this shape or has no name.
std::optional<ObjectInfo> ParseObjectInfo(std::string_view json);

}  // namespace marmot
