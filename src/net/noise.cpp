// Noise (revision 34), Noise_*_25519_ChaChaPoly_BLAKE2b, on libsodium.
#include "net/noise.h"

#include <sodium.h>

#include <mutex>

namespace tern::net::noise {
namespace {

constexpr size_t kBlockBytes = 128;  // BLAKE2b block length, for HMAC

void ensure_sodium() {
  static std::once_flag once;
  std::call_once(once, [] { TERN_CHECK(sodium_init() >= 0, "libsodium failed to initialize"); });
}

// Unkeyed BLAKE2b-512 of the concatenation of `parts`.
Hash blake2b(std::initializer_list<std::span<const uint8_t>> parts) {
  crypto_generichash_blake2b_state state;
  TERN_CHECK(crypto_generichash_blake2b_init(&state, nullptr, 0, kHashBytes) == 0);
  for (std::span<const uint8_t> part : parts) {
    TERN_CHECK(crypto_generichash_blake2b_update(&state, part.data(), part.size()) == 0);
  }
  Hash out;
  TERN_CHECK(crypto_generichash_blake2b_final(&state, out.data(), out.size()) == 0);
  sodium_memzero(&state, sizeof state);
  return out;
}

void nonce_bytes(uint64_t counter, unsigned char out[crypto_aead_chacha20poly1305_IETF_NPUBBYTES]) {
  static_assert(crypto_aead_chacha20poly1305_IETF_NPUBBYTES == 12);
  for (int i = 0; i < 4; ++i) out[i] = 0;
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<unsigned char>(counter >> (8 * i));
}

// ENCRYPT(k, n, ad, plaintext) of the spec.
Bytes chacha_encrypt(const std::array<uint8_t, kKeyBytes>& key, uint64_t counter,
                     std::span<const uint8_t> ad, std::span<const uint8_t> plaintext) {
  unsigned char nonce[12];
  nonce_bytes(counter, nonce);
  Bytes out(plaintext.size() + kTagBytes);
  unsigned long long length = 0;
  TERN_CHECK(crypto_aead_chacha20poly1305_ietf_encrypt(out.data(), &length, plaintext.data(),
                                                       plaintext.size(), ad.data(), ad.size(),
                                                       nullptr, nonce, key.data()) == 0);
  TERN_CHECK(length == out.size());
  return out;
}

// The pattern table (Noise spec section 7). Each message is a comma-separated
// token list; `initiator_pre`/`responder_pre` hold the pre-message "s" flags.
struct PatternSpec {
  Pattern pattern;
  std::string_view name;
  bool initiator_pre_s;
  bool responder_pre_s;
  std::vector<std::string_view> messages;  // alternating, starting with the initiator
};

const std::vector<PatternSpec>& pattern_table() {
  static const std::vector<PatternSpec> table = {
      {Pattern::N, "N", false, true, {"e,es"}},
      {Pattern::K, "K", true, true, {"e,es,ss"}},
      {Pattern::X, "X", false, true, {"e,es,s,ss"}},
      {Pattern::NN, "NN", false, false, {"e", "e,ee"}},
      {Pattern::NK, "NK", false, true, {"e,es", "e,ee"}},
      {Pattern::NX, "NX", false, false, {"e", "e,ee,s,es"}},
      {Pattern::KN, "KN", true, false, {"e", "e,ee,se"}},
      {Pattern::KK, "KK", true, true, {"e,es,ss", "e,ee,se"}},
      {Pattern::KX, "KX", true, false, {"e", "e,ee,se,s,es"}},
      {Pattern::XN, "XN", false, false, {"e", "e,ee", "s,se"}},
      {Pattern::XK, "XK", false, true, {"e,es", "e,ee", "s,se"}},
      {Pattern::XX, "XX", false, false, {"e", "e,ee,s,es", "s,se"}},
      {Pattern::IN, "IN", false, false, {"e,s", "e,ee,se"}},
      {Pattern::IK, "IK", false, true, {"e,es,s,ss", "e,ee,se"}},
      {Pattern::IX, "IX", false, false, {"e,s", "e,ee,se,s,es"}},
  };
  return table;
}

const PatternSpec& spec_of(Pattern pattern) {
  for (const PatternSpec& spec : pattern_table()) {
    if (spec.pattern == pattern) return spec;
  }
  TERN_CHECK(false, "unknown pattern ", static_cast<int>(pattern));
  __builtin_unreachable();
}

std::vector<std::string_view> tokens_of(std::string_view message) {
  std::vector<std::string_view> tokens;
  while (!message.empty()) {
    const size_t comma = message.find(',');
    tokens.push_back(message.substr(0, comma));
    message = comma == std::string_view::npos ? std::string_view() : message.substr(comma + 1);
  }
  return tokens;
}

}  // namespace

// ---- keys and primitives ----

KeyPair KeyPair::generate() {
  ensure_sodium();
  std::array<uint8_t, 32> secret;
  randombytes_buf(secret.data(), secret.size());
  KeyPair pair = from_secret(secret);
  sodium_memzero(secret.data(), secret.size());
  return pair;
}

KeyPair KeyPair::from_secret(std::span<const uint8_t, 32> secret) {
  ensure_sodium();
  KeyPair pair;
  std::copy(secret.begin(), secret.end(), pair.secret_key.begin());
  TERN_CHECK(crypto_scalarmult_curve25519_base(pair.public_key.data(), pair.secret_key.data()) ==
             0);
  return pair;
}

KeyPair::~KeyPair() {
  sodium_memzero(secret_key.data(), secret_key.size());
}

Result<X25519Key> dh(const X25519Key& secret, const X25519Key& public_key) {
  ensure_sodium();
  X25519Key out;
  // libsodium returns -1 exactly when the output is all zero (a low-order
  // public key): contributory behaviour matters for identity binding.
  if (crypto_scalarmult_curve25519(out.data(), secret.data(), public_key.data()) != 0) {
    return Status::Error("X25519: peer key is a low-order point (all-zero shared secret)");
  }
  return out;
}

Hash hmac_blake2b(std::span<const uint8_t> key, std::span<const uint8_t> data) {
  std::array<uint8_t, kBlockBytes> block{};
  if (key.size() > kBlockBytes) {
    const Hash hashed = blake2b({key});
    std::copy(hashed.begin(), hashed.end(), block.begin());
  } else {
    std::copy(key.begin(), key.end(), block.begin());
  }
  std::array<uint8_t, kBlockBytes> inner_pad, outer_pad;
  for (size_t i = 0; i < kBlockBytes; ++i) {
    inner_pad[i] = block[i] ^ 0x36;
    outer_pad[i] = block[i] ^ 0x5c;
  }
  Hash inner = blake2b({inner_pad, data});
  const Hash out = blake2b({outer_pad, inner});
  sodium_memzero(block.data(), block.size());
  sodium_memzero(inner_pad.data(), inner_pad.size());
  sodium_memzero(outer_pad.data(), outer_pad.size());
  sodium_memzero(inner.data(), inner.size());
  return out;
}

std::array<Hash, 3> hkdf(const Hash& chaining_key, std::span<const uint8_t> input_key_material,
                         int outputs) {
  TERN_CHECK(outputs == 2 || outputs == 3, "HKDF outputs ", outputs);
  Hash temp_key = hmac_blake2b(chaining_key, input_key_material);
  std::array<Hash, 3> out{};
  const uint8_t one = 0x01;
  out[0] = hmac_blake2b(temp_key, std::span<const uint8_t>(&one, 1));
  std::array<uint8_t, kHashBytes + 1> chained;
  for (int i = 1; i < outputs; ++i) {
    std::copy(out[i - 1].begin(), out[i - 1].end(), chained.begin());
    chained[kHashBytes] = static_cast<uint8_t>(i + 1);
    out[i] = hmac_blake2b(temp_key, chained);
  }
  sodium_memzero(temp_key.data(), temp_key.size());
  sodium_memzero(chained.data(), chained.size());
  return out;
}

// ---- CipherState ----

CipherState::~CipherState() {
  sodium_memzero(key_.data(), key_.size());
}

void CipherState::initialize_key(std::span<const uint8_t, kKeyBytes> key) {
  std::copy(key.begin(), key.end(), key_.begin());
  has_key_ = true;
  nonce_ = 0;
}

Result<Bytes> CipherState::encrypt_with_ad(std::span<const uint8_t> ad,
                                           std::span<const uint8_t> plaintext) {
  if (!has_key_) return Bytes(plaintext.begin(), plaintext.end());
  if (nonce_ == kMaxNonce) {
    return Status::Error("encrypt: nonce exhausted (2^64-1 messages under one key)");
  }
  Bytes out = chacha_encrypt(key_, nonce_, ad, plaintext);
  ++nonce_;
  return out;
}

Result<Bytes> CipherState::decrypt_with_ad(std::span<const uint8_t> ad,
                                           std::span<const uint8_t> ciphertext) {
  if (!has_key_) return Bytes(ciphertext.begin(), ciphertext.end());
  if (nonce_ == kMaxNonce) {
    return Status::Error("decrypt: nonce exhausted (2^64-1 messages under one key)");
  }
  if (ciphertext.size() < kTagBytes) {
    return Status::Error("decrypt: ciphertext of " + std::to_string(ciphertext.size()) +
                         " bytes is shorter than the 16-byte tag");
  }
  unsigned char nonce[12];
  nonce_bytes(nonce_, nonce);
  Bytes out(ciphertext.size() - kTagBytes);
  unsigned long long length = 0;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(out.data(), &length, nullptr, ciphertext.data(),
                                                ciphertext.size(), ad.data(), ad.size(), nonce,
                                                key_.data()) != 0) {
    return Status::Error("decrypt: authentication failed (message " + std::to_string(nonce_) +
                         " was altered, or the keys differ)");
  }
  TERN_CHECK(length == out.size());
  ++nonce_;
  return out;
}

void CipherState::rekey() {
  TERN_CHECK(has_key_, "rekey without a key");
  static const std::array<uint8_t, kKeyBytes> kZeros{};
  Bytes encrypted = chacha_encrypt(key_, kMaxNonce, {}, kZeros);
  std::copy(encrypted.begin(), encrypted.begin() + kKeyBytes, key_.begin());
  sodium_memzero(encrypted.data(), encrypted.size());
}

// ---- SymmetricState ----

SymmetricState::SymmetricState(std::string_view protocol_name) {
  ensure_sodium();
  const std::span<const uint8_t> name(reinterpret_cast<const uint8_t*>(protocol_name.data()),
                                      protocol_name.size());
  if (name.size() <= kHashBytes) {
    std::copy(name.begin(), name.end(), h_.begin());
  } else {
    h_ = blake2b({name});
  }
  ck_ = h_;
}

SymmetricState::~SymmetricState() {
  sodium_memzero(ck_.data(), ck_.size());
}

void SymmetricState::mix_key(std::span<const uint8_t> input_key_material) {
  std::array<Hash, 3> out = hkdf(ck_, input_key_material, 2);
  ck_ = out[0];
  cipher_.initialize_key(std::span<const uint8_t, kKeyBytes>(out[1].data(), kKeyBytes));
  sodium_memzero(out.data(), sizeof out);
}

void SymmetricState::mix_hash(std::span<const uint8_t> data) {
  h_ = blake2b({h_, data});
}

Result<Bytes> SymmetricState::encrypt_and_hash(std::span<const uint8_t> plaintext) {
  TERN_ASSIGN_OR_RETURN(Bytes ciphertext, cipher_.encrypt_with_ad(h_, plaintext));
  mix_hash(ciphertext);
  return ciphertext;
}

Result<Bytes> SymmetricState::decrypt_and_hash(std::span<const uint8_t> ciphertext) {
  TERN_ASSIGN_OR_RETURN(Bytes plaintext, cipher_.decrypt_with_ad(h_, ciphertext));
  mix_hash(ciphertext);
  return plaintext;
}

std::pair<CipherState, CipherState> SymmetricState::split() const {
  std::array<Hash, 3> out = hkdf(ck_, {}, 2);
  std::pair<CipherState, CipherState> pair;
  pair.first.initialize_key(std::span<const uint8_t, kKeyBytes>(out[0].data(), kKeyBytes));
  pair.second.initialize_key(std::span<const uint8_t, kKeyBytes>(out[1].data(), kKeyBytes));
  sodium_memzero(out.data(), sizeof out);
  return pair;
}

// ---- patterns ----

std::string_view pattern_name(Pattern pattern) {
  return spec_of(pattern).name;
}

Result<Pattern> parse_pattern(std::string_view name) {
  for (const PatternSpec& spec : pattern_table()) {
    if (spec.name == name) return spec.pattern;
  }
  return Status::Error("noise: unsupported handshake pattern '" + std::string(name.substr(0, 40)) +
                       "' (supported: fundamental patterns without psk)");
}

std::string protocol_name(Pattern pattern) {
  return "Noise_" + std::string(pattern_name(pattern)) + "_25519_ChaChaPoly_BLAKE2b";
}

bool is_one_way(Pattern pattern) {
  return spec_of(pattern).messages.size() == 1;
}

PatternKeys pattern_keys(Pattern pattern) {
  const PatternSpec& spec = spec_of(pattern);
  PatternKeys keys;
  keys.initiator_static_known = spec.initiator_pre_s;
  keys.responder_static_known = spec.responder_pre_s;
  keys.initiator_static = spec.initiator_pre_s;
  keys.responder_static = spec.responder_pre_s;
  for (size_t i = 0; i < spec.messages.size(); ++i) {
    for (std::string_view token : tokens_of(spec.messages[i])) {
      if (token == "s") (i % 2 == 0 ? keys.initiator_static : keys.responder_static) = true;
    }
  }
  return keys;
}

// ---- HandshakeState ----

HandshakeState::HandshakeState(Pattern pattern, bool initiator)
    : pattern_(pattern), initiator_(initiator), symmetric_(protocol_name(pattern)) {}

Result<HandshakeState> HandshakeState::create(HandshakeConfig config) {
  const std::string context =
      "noise " + protocol_name(config.pattern) + (config.initiator ? " initiator" : " responder");
  const PatternKeys keys = pattern_keys(config.pattern);
  const bool needs_local_static = config.initiator ? keys.initiator_static : keys.responder_static;
  const bool remote_known =
      config.initiator ? keys.responder_static_known : keys.initiator_static_known;
  if (needs_local_static && !config.local_static) {
    return Status::Error(context + ": the pattern needs a local static key");
  }
  if (remote_known && !config.remote_static) {
    return Status::Error(context + ": the pattern needs the peer's static key in advance");
  }
  if (!remote_known && config.remote_static) {
    return Status::Error(context + ": the pattern does not pre-share the peer's static key");
  }
  HandshakeState state(config.pattern, config.initiator);
  if (needs_local_static) state.s_ = std::move(config.local_static);
  state.e_ = std::move(config.local_ephemeral);
  state.remote_static_ = config.remote_static;
  state.symmetric_.mix_hash(config.prologue);
  // Pre-messages: the initiator's first, then the responder's.
  if (keys.initiator_static_known) {
    state.symmetric_.mix_hash(config.initiator ? state.s_->public_key : *state.remote_static_);
  }
  if (keys.responder_static_known) {
    state.symmetric_.mix_hash(config.initiator ? *state.remote_static_ : state.s_->public_key);
  }
  return state;
}

size_t HandshakeState::message_count() const {
  return spec_of(pattern_).messages.size();
}

bool HandshakeState::is_my_turn() const {
  if (failed_ || next_message_ >= message_count()) return false;
  return (next_message_ % 2 == 0) == initiator_;
}

Status HandshakeState::fail(Status status) {
  failed_ = true;
  return status.with_context("noise " + protocol_name(pattern_) +
                             (initiator_ ? " initiator" : " responder") + ", message " +
                             std::to_string(next_message_));
}

Status HandshakeState::mix_dh(const KeyPair& local, const std::optional<X25519Key>& remote,
                              const char* token) {
  if (!remote) return Status::Error(std::string("token ") + token + ": remote key unknown");
  Result<X25519Key> shared = dh(local.secret_key, *remote);
  if (!shared.ok()) return shared.status().with_context(std::string("token ") + token);
  symmetric_.mix_key(shared.value());
  sodium_memzero(shared.value().data(), shared.value().size());
  return Status::Ok();
}

// The DH tokens: which of our keys meets which of the peer's depends on the
// token and on which side this is (es = initiator's e with responder's s).
Status HandshakeState::mix_dh_token(std::string_view token) {
  if (token == "ee") return mix_dh(*e_, remote_ephemeral_, "ee");
  if (token == "es") {
    return initiator_ ? mix_dh(*e_, remote_static_, "es") : mix_dh(*s_, remote_ephemeral_, "es");
  }
  if (token == "se") {
    return initiator_ ? mix_dh(*s_, remote_ephemeral_, "se") : mix_dh(*e_, remote_static_, "se");
  }
  TERN_CHECK(token == "ss", "unknown token ", token);
  return mix_dh(*s_, remote_static_, "ss");
}

Result<Bytes> HandshakeState::write_message(std::span<const uint8_t> payload) {
  if (failed_) return fail(Status::Error("write: the handshake already failed"));
  if (next_message_ >= message_count()) return fail(Status::Error("write: handshake finished"));
  if (!is_my_turn()) return fail(Status::Error("write: it is the peer's turn"));
  Bytes out;
  for (std::string_view token : tokens_of(spec_of(pattern_).messages[next_message_])) {
    Status status;
    if (token == "e") {
      if (!e_) e_ = KeyPair::generate();
      out.insert(out.end(), e_->public_key.begin(), e_->public_key.end());
      symmetric_.mix_hash(e_->public_key);
    } else if (token == "s") {
      TERN_CHECK(s_.has_value());
      Result<Bytes> encrypted = symmetric_.encrypt_and_hash(s_->public_key);
      if (!encrypted.ok()) return fail(encrypted.status());
      out.insert(out.end(), encrypted.value().begin(), encrypted.value().end());
    } else {
      status = mix_dh_token(token);
    }
    if (!status.ok()) return fail(status);
  }
  const size_t overhead = symmetric_.has_key() ? kTagBytes : 0;
  if (out.size() + payload.size() + overhead > kMaxMessageBytes) {
    return fail(Status::Error("write: payload of " + std::to_string(payload.size()) +
                              " bytes makes the message exceed " +
                              std::to_string(kMaxMessageBytes) + " bytes"));
  }
  Result<Bytes> encrypted = symmetric_.encrypt_and_hash(payload);
  if (!encrypted.ok()) return fail(encrypted.status());
  out.insert(out.end(), encrypted.value().begin(), encrypted.value().end());
  ++next_message_;
  return out;
}

Result<Bytes> HandshakeState::read_message(std::span<const uint8_t> message) {
  if (failed_) return fail(Status::Error("read: the handshake already failed"));
  if (next_message_ >= message_count()) return fail(Status::Error("read: handshake finished"));
  if (is_my_turn()) return fail(Status::Error("read: it is this side's turn to write"));
  if (message.size() > kMaxMessageBytes) {
    return fail(Status::Error("read: message of " + std::to_string(message.size()) +
                              " bytes exceeds " + std::to_string(kMaxMessageBytes)));
  }
  std::span<const uint8_t> rest = message;
  auto take = [&](size_t n, const char* what) -> Result<std::span<const uint8_t>> {
    if (rest.size() < n) {
      return Status::Error("read: message of " + std::to_string(message.size()) +
                           " bytes is too short for " + what);
    }
    std::span<const uint8_t> head = rest.first(n);
    rest = rest.subspan(n);
    return head;
  };
  for (std::string_view token : tokens_of(spec_of(pattern_).messages[next_message_])) {
    Status status;
    if (token == "e") {
      Result<std::span<const uint8_t>> key = take(kDhBytes, "the ephemeral key");
      if (!key.ok()) return fail(key.status());
      X25519Key re;
      std::copy(key.value().begin(), key.value().end(), re.begin());
      remote_ephemeral_ = re;
      symmetric_.mix_hash(re);
    } else if (token == "s") {
      const size_t size = kDhBytes + (symmetric_.has_key() ? kTagBytes : 0);
      Result<std::span<const uint8_t>> key = take(size, "the static key");
      if (!key.ok()) return fail(key.status());
      Result<Bytes> decrypted = symmetric_.decrypt_and_hash(key.value());
      if (!decrypted.ok()) return fail(decrypted.status().with_context("read: static key"));
      X25519Key rs;
      std::copy(decrypted.value().begin(), decrypted.value().end(), rs.begin());
      remote_static_ = rs;
    } else {
      status = mix_dh_token(token);
    }
    if (!status.ok()) return fail(status);
  }
  Result<Bytes> payload = symmetric_.decrypt_and_hash(rest);
  if (!payload.ok()) return fail(payload.status().with_context("read: payload"));
  ++next_message_;
  return payload;
}

std::pair<CipherState, CipherState> HandshakeState::split() const {
  TERN_CHECK(is_finished(), "split before the handshake finished");
  return symmetric_.split();
}

}  // namespace tern::net::noise
