#include "stream/nkey.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

namespace marmot {
namespace {

constexpr unsigned char kPrefixSeed = 18 << 3;  // 'S'
constexpr unsigned char kPrefixUser = 20 << 3;  // 'U'
constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

uint16_t Crc16(const std::string& data) {
  uint16_t crc = 0;
  for (unsigned char byte : data) {
    crc ^= static_cast<uint16_t>(byte) << 8;
    for (int i = 0; i < 8; ++i)
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
  }
  return crc;
}

std::string Base32Encode(const std::string& data) {
  std::string out;
  int buffer = 0, bits = 0;
  for (unsigned char byte : data) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kBase32[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kBase32[(buffer << (5 - bits)) & 31]);
  return out;
}

Result<std::string> Base32Decode(const std::string& text) {
  std::string out;
  int buffer = 0, bits = 0;
  for (char c : text) {
    const char* at = std::strchr(kBase32, c);
    if (c == '\0' || at == nullptr) return Status::Error("not base32");
    buffer = (buffer << 5) | static_cast<int>(at - kBase32);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

std::string WithCrc(std::string raw) {
  uint16_t crc = Crc16(raw);
  raw.push_back(static_cast<char>(crc & 0xff));
  raw.push_back(static_cast<char>(crc >> 8));
  return Base32Encode(raw);
}

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey PrivateKey(const std::string& raw_seed) {
  return Pkey(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw_seed.data()), raw_seed.size()));
}

}  // namespace

Result<NKey> NKey::FromSeed(const std::string& seed) {
  Result<std::string> raw = Base32Decode(seed);
  if (!raw.ok() || raw->size() != 36) return Status::Error("not an NKey seed");
  std::string body = raw->substr(0, 34);
  uint16_t crc = static_cast<unsigned char>((*raw)[34]) | (static_cast<unsigned char>((*raw)[35]) << 8);
  if (Crc16(body) != crc) return Status::Error("NKey seed checksum mismatch");
  unsigned char b0 = static_cast<unsigned char>(body[0]), b1 = static_cast<unsigned char>(body[1]);
  if ((b0 & 0xf8) != kPrefixSeed) return Status::Error("not an NKey seed (it must start with S)");
  unsigned char kind = static_cast<unsigned char>(((b0 & 7) << 5) | ((b1 & 0xf8) >> 3));
  if (kind != kPrefixUser) return Status::Error("not a user NKey seed (it must start with SU)");
  return FromRawSeed(body.substr(2, 32));
}

Result<NKey> NKey::FromRawSeed(const std::string& raw_seed) {
  Pkey key = PrivateKey(raw_seed);
  if (!key) return Status::Error("OpenSSL rejected the ed25519 seed");
  unsigned char pub[32];
  size_t len = sizeof(pub);
  if (EVP_PKEY_get_raw_public_key(key.get(), pub, &len) != 1 || len != 32) {
    return Status::Error("deriving the public key failed");
  }
  std::string seed_raw;
  seed_raw.push_back(static_cast<char>(kPrefixSeed | (kPrefixUser >> 5)));
  seed_raw.push_back(static_cast<char>((kPrefixUser & 31) << 3));
  seed_raw += raw_seed;
  std::string pub_raw(1, static_cast<char>(kPrefixUser));
  pub_raw.append(reinterpret_cast<const char*>(pub), 32);
  NKey nkey;
  nkey.seed_ = WithCrc(seed_raw);
  nkey.public_key_ = WithCrc(pub_raw);
  return nkey;
}

Result<NKey> NKey::FromSeedFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Error("[nats] seed_file " + path + ": cannot read it");
  std::string word;
  while (in >> word) {
    if (word.rfind("SU", 0) == 0 && word.size() >= 58) {
      Result<NKey> key = FromSeed(word.substr(0, 58));
      if (!key.ok()) return key.status().WithContext("[nats] seed_file " + path);
      return key;
    }
  }
  return Status::Error("[nats] seed_file " + path + ": no user seed (a word starting with SU) in it");
}

Result<NKey> NKey::Generate() {
  std::string raw(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), 32) != 1)
    return Status::Error("no randomness");
  return FromRawSeed(raw);
}

}  // namespace marmot
