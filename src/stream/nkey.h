// NKey: a NATS user key pair read from a seed, for nkey authentication ([nats] seed_file).
//
// nats.c needs the user's public key next to a signing callback; it does not derive one from a
// seed. An NKey seed ("SU...") is base32 of: 2 prefix bytes, the 32-byte ed25519 seed, and a
// CRC-16/XMODEM (little endian); the public key ("U...") is base32 of: 1 prefix byte, the 32-byte
// ed25519 public key, CRC-16. Signing uses OpenSSL's ed25519.
#pragma once

#include <string>

#include "util/status.h"

namespace marmot {

class NKey {
 public:
  // Reads the first user seed ("SU" + base32) found in `path` (a bare seed file or a .creds file).
  static Result<NKey> FromSeedFile(const std::string& path);
  static Result<NKey> FromSeed(const std::string& seed);
  // Makes a new random user key pair (tests).
  static Result<NKey> Generate();

  const std::string& public_key() const { return public_key_; }  // "U..."
  const std::string& seed() const { return seed_; }              // "SU..."; never log it
  // Signs `message` (the server's nonce) with ed25519; 64 bytes.
  Result<std::string> Sign(const std::string& message) const;

 private:
  static Result<NKey> FromRawSeed(const std::string& raw_seed);
  std::string raw_seed_;  // 32 bytes
  std::string seed_;
  std::string public_key_;
};

}  // namespace marmot
