// NKey: a NATS user key pair read from a seed, for nkey authentication ([nats] seed_file).
//
// nats.c signs the server's nonce itself (natsOptions_SetNKeyFromSeed, nats_Sign) but needs the
// user's public key next to the seed, and its public API has no function that derives one from a
// seed: that derivation is all this class does. An NKey seed ("SU...") is base32 of: 2 prefix
// bytes, the 32-byte ed25519 seed, and a CRC-16/XMODEM (little endian); the public key ("U...")
// is base32 of: 1 prefix byte, the 32-byte ed25519 public key, CRC-16. The public key is derived
// with OpenSSL's ed25519.
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

 private:
  static Result<NKey> FromRawSeed(const std::string& raw_seed);
  std::string seed_;
  std::string public_key_;
};

}  // namespace marmot
