// The Noise Protocol Framework (revision 34) for one cipher suite:
// Noise_<pattern>_25519_ChaChaPoly_BLAKE2b, written on libsodium.
//
//   DH      X25519 (an all-zero shared secret is rejected: low-order point)
//   cipher  ChaCha20-Poly1305 IETF, nonce = 4 zero bytes || 64-bit LE counter
//   hash    BLAKE2b-512; HMAC is the standard construction over unkeyed
//           BLAKE2b with 128-byte blocks; HKDF as the Noise spec defines it
//
// CipherState, SymmetricState and HandshakeState follow the spec's objects.
// HandshakeState interprets the fundamental patterns without PSKs (one-way N,
// K, X and interactive NN..IX); the secure channel uses XX and IK. Ephemeral
// keys may be injected for test vectors.
//
// Every failure caused by input (bad MAC, wrong length, message out of turn,
// more than 65535 bytes, nonce exhausted) is a Status; a HandshakeState that
// failed refuses further use. Secrets are wiped on destruction.
// Thread-safety: none; each object belongs to one side of one session.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "net/identity.h"

namespace tern::net::noise {

using Bytes = std::vector<uint8_t>;

inline constexpr size_t kMaxMessageBytes = 65535;
inline constexpr size_t kKeyBytes = 32;
inline constexpr size_t kTagBytes = 16;
inline constexpr size_t kHashBytes = 64;
inline constexpr size_t kDhBytes = 32;
inline constexpr uint64_t kMaxNonce = ~uint64_t{0};  // reserved for rekey

// An X25519 key pair; the secret is wiped on destruction.
struct KeyPair {
  X25519Key public_key{};
  X25519Key secret_key{};

  static KeyPair generate();
  static KeyPair from_secret(std::span<const uint8_t, 32> secret);
  KeyPair() = default;
  KeyPair(const KeyPair&) = default;
  KeyPair& operator=(const KeyPair&) = default;
  ~KeyPair();
};

// X25519(secret, public); an error if the result is all zero.
Result<X25519Key> dh(const X25519Key& secret, const X25519Key& public_key);

// HMAC-BLAKE2b-512 and the Noise HKDF (2 or 3 outputs of 64 bytes), exposed
// for tests.
using Hash = std::array<uint8_t, kHashBytes>;
Hash hmac_blake2b(std::span<const uint8_t> key, std::span<const uint8_t> data);
std::array<Hash, 3> hkdf(const Hash& chaining_key, std::span<const uint8_t> input_key_material,
                         int outputs);

class CipherState {
 public:
  CipherState() = default;
  CipherState(const CipherState&) = default;
  CipherState& operator=(const CipherState&) = default;
  ~CipherState();

  void initialize_key(std::span<const uint8_t, kKeyBytes> key);  // nonce = 0
  bool has_key() const { return has_key_; }
  void set_nonce(uint64_t nonce) { nonce_ = nonce; }
  uint64_t nonce() const { return nonce_; }

  // Without a key these return the input unchanged (spec). Errors: nonce
  // exhausted (2^64-1 is reserved), authentication failure, ciphertext shorter
  // than the tag. A failed decryption leaves the nonce unchanged.
  Result<Bytes> encrypt_with_ad(std::span<const uint8_t> ad, std::span<const uint8_t> plaintext);
  Result<Bytes> decrypt_with_ad(std::span<const uint8_t> ad, std::span<const uint8_t> ciphertext);
  // k = first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero bytes); nonce kept.
  void rekey();

 private:
  std::array<uint8_t, kKeyBytes> key_{};
  bool has_key_ = false;
  uint64_t nonce_ = 0;
};

class SymmetricState {
 public:
  explicit SymmetricState(std::string_view protocol_name);
  SymmetricState(const SymmetricState&) = default;
  SymmetricState& operator=(const SymmetricState&) = default;
  ~SymmetricState();

  void mix_key(std::span<const uint8_t> input_key_material);
  void mix_hash(std::span<const uint8_t> data);
  Result<Bytes> encrypt_and_hash(std::span<const uint8_t> plaintext);
  Result<Bytes> decrypt_and_hash(std::span<const uint8_t> ciphertext);
  // (initiator -> responder, responder -> initiator).
  std::pair<CipherState, CipherState> split() const;
  const Hash& handshake_hash() const { return h_; }
  bool has_key() const { return cipher_.has_key(); }

 private:
  CipherState cipher_;
  Hash ck_{};
  Hash h_{};
};

enum class Pattern { N, K, X, NN, NK, NX, KN, KK, KX, XN, XK, XX, IN, IK, IX };

std::string_view pattern_name(Pattern pattern);
// "XX" -> Pattern::XX; an error naming the text for anything unsupported.
Result<Pattern> parse_pattern(std::string_view name);
// "Noise_XX_25519_ChaChaPoly_BLAKE2b".
std::string protocol_name(Pattern pattern);
bool is_one_way(Pattern pattern);

// Which static keys a pattern uses: whether each side has one, and whether
// the other side knows it before the handshake (pre-message).
struct PatternKeys {
  bool initiator_static = false;
  bool responder_static = false;
  bool initiator_static_known = false;  // responder gets it in advance
  bool responder_static_known = false;  // initiator gets it in advance
};
PatternKeys pattern_keys(Pattern pattern);

struct HandshakeConfig {
  Pattern pattern = Pattern::XX;
  bool initiator = true;
  std::vector<uint8_t> prologue;
  std::optional<KeyPair> local_static;     // required when the pattern uses it
  std::optional<X25519Key> remote_static;  // required iff pre-shared by the pattern
  std::optional<KeyPair> local_ephemeral;  // injected (test vectors); else generated
};

class HandshakeState {
 public:
  // Errors: a static key the pattern needs is missing, or a remote static key
  // is given that the pattern does not pre-share.
  static Result<HandshakeState> create(HandshakeConfig config);

  // The next handshake message with `payload` encrypted (once a key exists).
  // Errors: not this side's turn, handshake finished or failed, message would
  // exceed 65535 bytes.
  Result<Bytes> write_message(std::span<const uint8_t> payload);
  // The payload of the peer's next handshake message. Errors: out of turn,
  // wrong length, bad MAC, invalid DH result. Any error fails the handshake.
  Result<Bytes> read_message(std::span<const uint8_t> message);

  bool is_finished() const { return next_message_ == message_count() && !failed_; }
  bool is_my_turn() const;
  bool initiator() const { return initiator_; }
  Pattern pattern() const { return pattern_; }
  // Known once received (or pre-shared).
  const std::optional<X25519Key>& remote_static() const { return remote_static_; }
  const Hash& handshake_hash() const { return symmetric_.handshake_hash(); }
  // After the last message: (initiator -> responder, responder -> initiator).
  std::pair<CipherState, CipherState> split() const;

 private:
  HandshakeState(Pattern pattern, bool initiator);
  size_t message_count() const;
  Status fail(Status status);
  Status mix_dh(const KeyPair& local, const std::optional<X25519Key>& remote, const char* token);
  Status mix_dh_token(std::string_view token);  // ee, es, se or ss

  Pattern pattern_;
  bool initiator_;
  SymmetricState symmetric_;
  std::optional<KeyPair> s_;
  std::optional<KeyPair> e_;
  std::optional<X25519Key> remote_static_;
  std::optional<X25519Key> remote_ephemeral_;
  size_t next_message_ = 0;
  bool failed_ = false;
};

}  // namespace tern::net::noise
