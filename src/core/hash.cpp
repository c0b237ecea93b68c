#include "core/hash.h"

#include <sodium.h>

#include <mutex>

#include "core/check.h"

namespace tern {
namespace {

static_assert(sizeof(crypto_generichash_state) <= 384 && alignof(crypto_generichash_state) <= 64,
              "Blake2bHasher::state_ is too small for libsodium's state");
static_assert(crypto_generichash_BYTES_MAX >= 32 && crypto_generichash_BYTES_MIN <= 32);

crypto_generichash_state* as_state(unsigned char* storage) {
  return reinterpret_cast<crypto_generichash_state*>(storage);
}

// sodium_init is itself idempotent, but call_once makes the first use from
// several threads at a time well defined regardless of the libsodium version.
void ensure_sodium() {
  static std::once_flag once;
  std::call_once(once, [] { TERN_CHECK(sodium_init() >= 0, "libsodium failed to initialize"); });
}

}  // namespace

Blake2bHasher::Blake2bHasher() {
  ensure_sodium();
  TERN_CHECK(crypto_generichash_init(as_state(state_), nullptr, 0, 32) == 0);
}

void Blake2bHasher::update(std::span<const uint8_t> bytes) {
  TERN_CHECK(!finished_, "Blake2bHasher::update after finish");
  if (bytes.empty()) return;
  TERN_CHECK(crypto_generichash_update(as_state(state_), bytes.data(), bytes.size()) == 0);
}

void Blake2bHasher::update(std::string_view bytes) {
  update(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

Blake2bDigest Blake2bHasher::finish() {
  TERN_CHECK(!finished_, "Blake2bHasher::finish called twice");
  finished_ = true;
  Blake2bDigest digest{};
  TERN_CHECK(crypto_generichash_final(as_state(state_), digest.data(), digest.size()) == 0);
  return digest;
}

std::string to_hex(const Blake2bDigest& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * digest.size());
  for (uint8_t b : digest) {
    hex.push_back(kDigits[b >> 4]);
    hex.push_back(kDigits[b & 15]);
  }
  return hex;
}

std::string blake2b_256_hex(std::span<const uint8_t> bytes) {
  Blake2bHasher hasher;
  hasher.update(bytes);
  return to_hex(hasher.finish());
}

std::string blake2b_256_hex(std::string_view bytes) {
  Blake2bHasher hasher;
  hasher.update(bytes);
  return to_hex(hasher.finish());
}

}  // namespace tern
