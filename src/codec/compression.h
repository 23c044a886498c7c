// zstd compression of message payloads (streams with compress = true carry one zstd frame per
// message). ZstdCodec keeps its compression and decompression contexts for reuse; one codec
// belongs to one thread (REQUIRES: external synchronization).
#pragma once

#include <zstd.h>

#include <memory>
#include <string>
#include <string_view>

#include "util/status.h"

namespace marmot {

class ZstdCodec {
 public:
  explicit ZstdCodec(int level = 3) : level_(level) {}

  Result<std::string> Compress(std::string_view input);
  // Refuses output larger than `max_size` (a corrupt or hostile frame cannot exhaust memory).
  // Handles frames with and without a recorded content size.
  Result<std::string> Decompress(std::string_view frame, size_t max_size);
  // As above, into `out` (replacing its content; its capacity is reused).
  Status Decompress(std::string_view frame, size_t max_size, std::string* out);

 private:
  struct CCtxFree {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  };
  struct DCtxFree {
    void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
  };
  int level_;
  std::unique_ptr<ZSTD_CCtx, CCtxFree> cctx_;
  std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx_;
};

// One-shot helpers (a fresh context per call).
Result<std::string> ZstdCompress(std::string_view input, int level = 3);
Result<std::string> ZstdDecompress(std::string_view frame, size_t max_size);

}  // namespace marmot
