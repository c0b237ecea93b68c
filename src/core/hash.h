// BLAKE2b-256 content hashes (libsodium's crypto_generichash), used to name
// and verify data: tokenizer identities, shard files, later swarm blobs.
//
// Blake2bHasher hashes a byte stream incrementally; blake2b_256_hex hashes one
// buffer. Digests are 32 bytes; hex is lowercase. libsodium is initialized once,
// thread-safely, on first use. A Blake2bHasher is not synchronized (one per
// thread); the free functions are thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace tern {

using Blake2bDigest = std::array<uint8_t, 32>;

class Blake2bHasher {
 public:
  Blake2bHasher();

  void update(std::span<const uint8_t> bytes);
  void update(std::string_view bytes);
  // The digest of everything passed to update(). The hasher is spent afterwards
  // (CHECKed): a further update() or finish() is a bug.
  Blake2bDigest finish();

 private:
  // Opaque storage for libsodium's crypto_generichash_state (384 bytes, 64-aligned
  // in current libsodium; the .cpp static_asserts that it fits).
  alignas(64) unsigned char state_[384];
  bool finished_ = false;
};

std::string blake2b_256_hex(std::span<const uint8_t> bytes);
std::string blake2b_256_hex(std::string_view bytes);

// Lowercase hex of a digest.
std::string to_hex(const Blake2bDigest& digest);

}  // namespace tern
