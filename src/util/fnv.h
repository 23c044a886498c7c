// 64-bit FNV-1a (Fowler/Noll/Vo): the one non-cryptographic hash whose values marmot persists or
// sends to other nodes (row hashes pick a row's shard; the default node id is the hash of the
// machine id). Changing anything here changes those values on every node: it must stay bit-exact
// FNV-1a 64 (docs/CLUSTER.md holds a test vector).
//
// Header-only and inline: the change reader hashes every key column of every changed row.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace marmot {

inline constexpr uint64_t kFnv1a64OffsetBasis = 14695981039346656037ULL;
inline constexpr uint64_t kFnv1a64Prime = 1099511628211ULL;

// Folds `n` bytes at `data` into the running hash `h` and returns the new hash. Start from
// kFnv1a64OffsetBasis; feeding bytes in pieces gives the same hash as feeding them at once.
inline uint64_t Fnv1a64Add(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= kFnv1a64Prime;
  }
  return h;
}

inline uint64_t Fnv1a64Add(uint64_t h, std::string_view bytes) {
  return Fnv1a64Add(h, bytes.data(), bytes.size());
}

// The FNV-1a 64 hash of `bytes`.
inline uint64_t Fnv1a64(std::string_view bytes) { return Fnv1a64Add(kFnv1a64OffsetBasis, bytes); }

}  // namespace marmot
