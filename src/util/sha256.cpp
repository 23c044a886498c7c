#include "util/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "util/unique_fd.h"

namespace marmot {
namespace {

constexpr size_t kFilePieceBytes = size_t{1} << 20;

std::string Hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes.size());
  for (unsigned char c : bytes) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 15]);
  }
  return hex;
}

}  // namespace

void Sha256::EvpMdCtxFree::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_) EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
}

void Sha256::Update(const void* data, size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }

std::string Sha256::Digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(ctx_.get(), digest, &size);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

std::string Sha256::HexDigest() { return Hex(Digest()); }

std::string Sha256Hex(std::string_view data) {
  Sha256 sha;
  sha.Update(data.data(), data.size());
  return sha.HexDigest();
}

Result<std::string> FileSha256Hex(const std::string& path) {
  auto fail = [&](const char* step) {
    return Status::IoError(std::string(step) + " " + path + " for its SHA-256: " + std::strerror(errno));
  };
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return fail("opening");
  Sha256 sha;
  std::vector<char> piece(kFilePieceBytes);
  while (true) {
    ssize_t n = ::read(fd.get(), piece.data(), piece.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("reading");
    if (n == 0) break;
    sha.Update(piece.data(), static_cast<size_t>(n));
  }
  return sha.HexDigest();
}

}  // namespace marmot
