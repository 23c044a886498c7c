// Sha256: SHA-256 through OpenSSL's EVP interface, marmot's one implementation of it. Snapshot
// files carry the hex digest of their compressed bytes (snapshot/snapshot_file.cpp), the NATS
// object store keeps the raw digest of each object in its meta (snapshot/nats_object_store.cpp),
// and S3 requests are signed with the hex digest of their body (snapshot/s3_store.cpp).
//
//   Sha256 sha;
//   sha.Update(buffer.data(), n);  // as often as the data comes
//   std::string hex = sha.HexDigest();
//
// Thread safety: a Sha256 is used by one thread at a time; the free functions share no state.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "util/status.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace marmot {

// Incremental SHA-256 over a stream of buffers. Owns its OpenSSL context, so it cannot be copied.
class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  // Adds `size` bytes at `data` to the digest.
  void Update(const void* data, size_t size);
  // The digest of everything added: 32 raw bytes. Ends the hash: call Digest or HexDigest once.
  std::string Digest();
  // The digest as 64 lowercase hex digits. Ends the hash, like Digest.
  std::string HexDigest();

 private:
  struct EvpMdCtxFree {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, EvpMdCtxFree> ctx_;
};

// The SHA-256 of `data` as 64 lowercase hex digits.
std::string Sha256Hex(std::string_view data);

// The SHA-256 of the file at `path` as 64 lowercase hex digits, read in 1 MiB pieces. An IoError
// naming the file when it cannot be opened or read.
Result<std::string> FileSha256Hex(const std::string& path);

}  // namespace marmot
