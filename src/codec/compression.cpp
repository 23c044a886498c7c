#include "codec/compression.h"

namespace marmot {

Result<std::string> ZstdCodec::Compress(std::string_view input) {
  if (!cctx_) cctx_.reset(ZSTD_createCCtx());
  if (!cctx_) return Status::Error("zstd: cannot create a compression context");
  std::string out(ZSTD_compressBound(input.size()), '\0');
  size_t n = ZSTD_compressCCtx(cctx_.get(), out.data(), out.size(), input.data(), input.size(), level_);
  if (ZSTD_isError(n)) return Status::Error(std::string("zstd compress: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

Result<std::string> ZstdCodec::Decompress(std::string_view frame, size_t max_size) {
  std::string out;
  MARMOT_RETURN_IF_ERROR(Decompress(frame, max_size, &out));
  return out;
}

Status ZstdCodec::Decompress(std::string_view frame, size_t max_size, std::string* output) {
  if (!dctx_) dctx_.reset(ZSTD_createDCtx());
  if (!dctx_) return Status::Error("zstd: cannot create a decompression context");
  ZSTD_DCtx_reset(dctx_.get(), ZSTD_reset_session_only);
  unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) return Status::Error("zstd: not a zstd frame");
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > max_size) {
    return Status::Error("zstd: frame declares " + std::to_string(declared) +
                         " bytes, more than the limit of " + std::to_string(max_size));
  }
  std::string& out = *output;
  out.resize(declared != ZSTD_CONTENTSIZE_UNKNOWN ? static_cast<size_t>(declared)
                                                  : std::min<size_t>(max_size, 1 << 16));
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  size_t produced = 0;
  while (true) {
    ZSTD_outBuffer ob{out.data() + produced, out.size() - produced, 0};
    size_t rc = ZSTD_decompressStream(dctx_.get(), &ob, &in);
    if (ZSTD_isError(rc)) return Status::Error(std::string("zstd decompress: ") + ZSTD_getErrorName(rc));
    produced += ob.pos;
    if (rc == 0) break;  // frame complete
    if (in.pos == in.size && ob.pos < ob.size) return Status::Error("zstd decompress: truncated frame");
    if (produced == out.size()) {
      if (out.size() >= max_size) {
        return Status::Error("zstd: output exceeds the limit of " + std::to_string(max_size) + " bytes");
      }
      out.resize(std::min(max_size, out.size() * 2));
    }
  }
  if (in.pos != in.size) return Status::Error("zstd: trailing bytes after the frame");
  out.resize(produced);
  return Status();
}

Result<std::string> ZstdCompress(std::string_view input, int level) {
  return ZstdCodec(level).Compress(input);
}
Result<std::string> ZstdDecompress(std::string_view frame, size_t max_size) {
  return ZstdCodec().Decompress(frame, max_size);
}

}  // namespace marmot
