// libFuzzer target: the wire-format decoder (codec/wire_format.h) and the capped zstd decoder
// (codec/compression.h), on any bytes. Besides not crashing, hanging or tripping a sanitizer: a
// message that decodes must encode and decode again to the same changes, exactly.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "codec/compression.h"
#include "codec/wire_format.h"

namespace {

void CheckRoundTrip(std::string_view bytes) {
  marmot::Result<marmot::ChangeMessage> decoded = marmot::DecodeChangeMessage(bytes);
  if (!decoded.ok()) return;
  std::string again = marmot::EncodeChangeMessage(*decoded);
  marmot::Result<marmot::ChangeMessage> redecoded = marmot::DecodeChangeMessage(again);
  if (!redecoded.ok()) std::abort();  // what we encode, we must decode
  if (redecoded->node_id != decoded->node_id || redecoded->first_seq != decoded->first_seq ||
      redecoded->last_seq != decoded->last_seq || redecoded->changes.size() != decoded->changes.size()) {
    std::abort();
  }
  for (size_t i = 0; i < decoded->changes.size(); ++i) {
    const marmot::RowChange& a = decoded->changes[i];
    const marmot::RowChange& b = redecoded->changes[i];
    if (a.table != b.table || a.op != b.op || *a.columns != *b.columns || a.values != b.values) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  CheckRoundTrip(bytes);
  // As a compressed stream's payload: inflated with a cap, then decoded.
  marmot::Result<std::string> inflated = marmot::ZstdDecompress(bytes, 1 << 20);
  if (inflated.ok()) CheckRoundTrip(*inflated);
  return 0;
}
