// Noise: the published test vectors (flynn/noise's vectors.txt, shipped by
// Debian's golang-github-flynn-noise-dev), primitives, failure handling and a
// fuzz-style robustness check of the responder.
#include "net/noise.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "core/rng.h"

namespace tern::net::noise {
namespace {

constexpr const char* kVectorFile = "/usr/share/gocode/src/github.com/flynn/noise/vectors.txt";

Bytes from_hex(const std::string& text) {
  if (text.empty()) return {};
  Bytes out(text.size() / 2);
  size_t length = 0;
  EXPECT_EQ(
      sodium_hex2bin(out.data(), out.size(), text.data(), text.size(), nullptr, &length, nullptr),
      0)
      << text;
  out.resize(length);
  return out;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  std::string out(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), bytes.data(), bytes.size());
  out.pop_back();
  return out;
}

Bytes bytes_of(std::string_view text) {
  return Bytes(text.begin(), text.end());
}

KeyPair pair_of(const Bytes& secret) {
  EXPECT_EQ(secret.size(), 32u);
  return KeyPair::from_secret(std::span<const uint8_t, 32>(secret.data(), 32));
}

struct VectorBlock {
  std::map<std::string, std::string> fields;
  std::vector<std::pair<std::string, std::string>> messages;  // payload, ciphertext (hex)
};

std::vector<VectorBlock> read_vectors(const std::string& path) {
  std::ifstream in(path);
  std::vector<VectorBlock> blocks;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t equals = line.find('=');
    if (equals == std::string::npos) continue;
    const std::string key = line.substr(0, equals), value = line.substr(equals + 1);
    if (key == "handshake") blocks.emplace_back();
    if (blocks.empty()) continue;
    VectorBlock& block = blocks.back();
    if (key.starts_with("msg_")) {
      const size_t index = std::stoul(key.substr(4));
      if (block.messages.size() <= index) block.messages.resize(index + 1);
      (key.ends_with("_payload") ? block.messages[index].first : block.messages[index].second) =
          value;
    } else {
      block.fields[key] = value;
    }
  }
  return blocks;
}

// Runs one vector block: both sides, every message. Returns false (with
// gtest failures recorded) on any mismatch.
void run_vector(const VectorBlock& block, Pattern pattern) {
  const std::string name = block.fields.at("handshake");
  SCOPED_TRACE(name + (block.fields.count("prologue") ? " prologue " + block.fields.at("prologue")
                                                      : std::string()));
  const PatternKeys keys = pattern_keys(pattern);
  const Bytes prologue =
      block.fields.count("prologue") ? from_hex(block.fields.at("prologue")) : Bytes();
  HandshakeConfig initiator_config, responder_config;
  initiator_config.pattern = responder_config.pattern = pattern;
  initiator_config.initiator = true;
  responder_config.initiator = false;
  initiator_config.prologue = responder_config.prologue = prologue;
  initiator_config.local_ephemeral = pair_of(from_hex(block.fields.at("gen_init_ephemeral")));
  responder_config.local_ephemeral = pair_of(from_hex(block.fields.at("gen_resp_ephemeral")));
  if (keys.initiator_static) {
    const KeyPair s = pair_of(from_hex(block.fields.at("init_static")));
    initiator_config.local_static = s;
    if (keys.initiator_static_known) responder_config.remote_static = s.public_key;
  }
  if (keys.responder_static) {
    const KeyPair s = pair_of(from_hex(block.fields.at("resp_static")));
    responder_config.local_static = s;
    if (keys.responder_static_known) initiator_config.remote_static = s.public_key;
  }
  Result<HandshakeState> initiator = HandshakeState::create(initiator_config);
  Result<HandshakeState> responder = HandshakeState::create(responder_config);
  ASSERT_TRUE(initiator.ok()) << initiator.status().message();
  ASSERT_TRUE(responder.ok()) << responder.status().message();

  std::optional<std::pair<CipherState, CipherState>> initiator_ciphers, responder_ciphers;
  size_t handshake_messages = 0;
  for (size_t i = 0; i < block.messages.size(); ++i) {
    SCOPED_TRACE("message " + std::to_string(i));
    const Bytes payload = from_hex(block.messages[i].first);
    const std::string& expected = block.messages[i].second;
    if (!initiator_ciphers) {
      const bool initiator_writes = i % 2 == 0;
      HandshakeState& writer = initiator_writes ? initiator.value() : responder.value();
      HandshakeState& reader = initiator_writes ? responder.value() : initiator.value();
      ASSERT_TRUE(writer.is_my_turn());
      Result<Bytes> message = writer.write_message(payload);
      ASSERT_TRUE(message.ok()) << message.status().message();
      EXPECT_EQ(to_hex(message.value()), expected);
      Result<Bytes> read = reader.read_message(message.value());
      ASSERT_TRUE(read.ok()) << read.status().message();
      EXPECT_EQ(read.value(), payload);
      ++handshake_messages;
      if (initiator.value().is_finished()) {
        ASSERT_TRUE(responder.value().is_finished());
        EXPECT_EQ(initiator.value().handshake_hash(), responder.value().handshake_hash());
        initiator_ciphers = initiator.value().split();
        responder_ciphers = responder.value().split();
      }
      continue;
    }
    // Transport: even messages go initiator -> responder with the first
    // cipher, odd ones back with the second (so the file also exercises the
    // second key of one-way patterns).
    const bool forward = (i - handshake_messages) % 2 == 0;
    CipherState& sender = forward ? initiator_ciphers->first : responder_ciphers->second;
    CipherState& receiver = forward ? responder_ciphers->first : initiator_ciphers->second;
    Result<Bytes> ciphertext = sender.encrypt_with_ad({}, payload);
    ASSERT_TRUE(ciphertext.ok());
    EXPECT_EQ(to_hex(ciphertext.value()), expected);
    Result<Bytes> plaintext = receiver.decrypt_with_ad({}, ciphertext.value());
    ASSERT_TRUE(plaintext.ok()) << plaintext.status().message();
    EXPECT_EQ(plaintext.value(), payload);
  }
  EXPECT_TRUE(initiator_ciphers.has_value()) << "handshake did not finish";
}

TEST(noise_vectors, FlynnNoiseVectors) {
  if (!std::filesystem::exists(kVectorFile)) {
    GTEST_SKIP() << "Noise test vectors " << kVectorFile
                 << " not found (Debian package golang-github-flynn-noise-dev)";
  }
  const std::vector<VectorBlock> blocks = read_vectors(kVectorFile);
  ASSERT_GT(blocks.size(), 100u);
  std::map<std::string, int> checked;
  const std::string prefix = "Noise_", suffix = "_25519_ChaChaPoly_BLAKE2b";
  for (const VectorBlock& block : blocks) {
    const std::string& name = block.fields.at("handshake");
    if (!name.starts_with(prefix) || !name.ends_with(suffix)) continue;
    const std::string pattern_text =
        name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (pattern_text.find("psk") != std::string::npos) continue;
    Result<Pattern> pattern = parse_pattern(pattern_text);
    ASSERT_TRUE(pattern.ok()) << pattern.status().message();
    ASSERT_EQ(protocol_name(pattern.value()), name);
    ASSERT_GE(block.messages.size(), 2u) << name;
    run_vector(block, pattern.value());
    if (HasFatalFailure()) return;
    ++checked[pattern_text];
  }
  // The file has four blocks per pattern (payloads empty or not, with and
  // without prologue): make sure none were silently skipped.
  EXPECT_GE(checked["XX"], 4);
  EXPECT_GE(checked["IK"], 4);
  EXPECT_EQ(checked.size(), 15u);
  for (const auto& [pattern, count] : checked) EXPECT_GE(count, 4) << pattern;
}

TEST(noise, HmacBlake2bIsStandardHmac) {
  // HMAC-BLAKE2b-512 reference value computed independently with Python's
  // hmac.new(b"key", b"The quick brown fox jumps over the lazy dog", "blake2b").
  const Bytes key = bytes_of("key");
  const Bytes data = bytes_of("The quick brown fox jumps over the lazy dog");
  const Hash mac = hmac_blake2b(key, data);
  EXPECT_EQ(to_hex(mac),
            "92294f92c0dfb9b00ec9ae8bd94d7e7d8a036b885a499f149dfe2fd2199394aaaf6b8894a1730cccb2cd05"
            "0f9bcf5062a38b51b0dab33207f8ef35ae2c9df51b");
  // A key longer than the block is hashed first: differs from a truncated key.
  const Bytes long_key(200, 0x42);
  EXPECT_NE(hmac_blake2b(long_key, data),
            hmac_blake2b(std::span<const uint8_t>(long_key.data(), 128), data));
}

// A complete handshake between fresh keys; returns both sides finished.
struct Session {
  HandshakeState initiator, responder;
};

Result<HandshakeState> make_side(Pattern pattern, bool initiator, const KeyPair& local,
                                 const KeyPair& remote, const Bytes& prologue = {}) {
  const PatternKeys keys = pattern_keys(pattern);
  HandshakeConfig config;
  config.pattern = pattern;
  config.initiator = initiator;
  config.prologue = prologue;
  if (initiator ? keys.initiator_static : keys.responder_static) config.local_static = local;
  if (initiator ? keys.responder_static_known : keys.initiator_static_known) {
    config.remote_static = remote.public_key;
  }
  return HandshakeState::create(config);
}

KeyPair test_pair(uint8_t fill) {
  std::array<uint8_t, 32> secret;
  secret.fill(fill);
  return KeyPair::from_secret(secret);
}

void run_handshake(HandshakeState& initiator, HandshakeState& responder) {
  while (!initiator.is_finished()) {
    HandshakeState& writer = initiator.is_my_turn() ? initiator : responder;
    HandshakeState& reader = initiator.is_my_turn() ? responder : initiator;
    Result<Bytes> message = writer.write_message(bytes_of("hello"));
    ASSERT_TRUE(message.ok()) << message.status().message();
    Result<Bytes> payload = reader.read_message(message.value());
    ASSERT_TRUE(payload.ok()) << payload.status().message();
    ASSERT_EQ(payload.value(), bytes_of("hello"));
  }
  ASSERT_TRUE(responder.is_finished());
}

TEST(noise, PatternNamesRoundTrip) {
  for (const char* name :
       {"N", "K", "X", "NN", "NK", "NX", "KN", "KK", "KX", "XN", "XK", "XX", "IN", "IK", "IX"}) {
    Result<Pattern> pattern = parse_pattern(name);
    ASSERT_TRUE(pattern.ok()) << name;
    EXPECT_EQ(pattern_name(pattern.value()), name);
  }
  Result<Pattern> bad = parse_pattern("XXpsk3");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'XXpsk3'"), std::string::npos);
  EXPECT_TRUE(is_one_way(Pattern::X));
  EXPECT_FALSE(is_one_way(Pattern::IK));
}

TEST(noise, CreateChecksKeys) {
  HandshakeConfig config;
  config.pattern = Pattern::IK;
  config.initiator = true;
  config.local_static = test_pair(1);
  Result<HandshakeState> missing_remote = HandshakeState::create(config);
  ASSERT_FALSE(missing_remote.ok());
  EXPECT_NE(missing_remote.status().message().find("peer's static key"), std::string::npos);
  config.pattern = Pattern::XX;
  config.remote_static = test_pair(2).public_key;
  EXPECT_FALSE(HandshakeState::create(config).ok());
  config.remote_static.reset();
  config.local_static.reset();
  Result<HandshakeState> missing_local = HandshakeState::create(config);
  ASSERT_FALSE(missing_local.ok());
  EXPECT_NE(missing_local.status().message().find("local static key"), std::string::npos);
}

TEST(noise, XxAndIkLearnRemoteStatic) {
  const KeyPair alice = test_pair(1), bob = test_pair(2);
  for (Pattern pattern : {Pattern::XX, Pattern::IK}) {
    HandshakeState initiator = make_side(pattern, true, alice, bob).value();
    HandshakeState responder = make_side(pattern, false, bob, alice).value();
    run_handshake(initiator, responder);
    ASSERT_TRUE(responder.remote_static().has_value());
    EXPECT_EQ(*responder.remote_static(), alice.public_key);
    EXPECT_EQ(*initiator.remote_static(), bob.public_key);
  }
}

TEST(noise, OutOfTurnAndAfterFinishFail) {
  const KeyPair alice = test_pair(1), bob = test_pair(2);
  HandshakeState initiator = make_side(Pattern::XX, true, alice, bob).value();
  HandshakeState responder = make_side(Pattern::XX, false, bob, alice).value();
  Result<Bytes> early = responder.write_message({});
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.status().message().find("peer's turn"), std::string::npos);
  // A failed handshake stays failed.
  EXPECT_FALSE(responder.read_message(initiator.write_message({}).value()).ok());
  EXPECT_NE(responder.write_message({}).status().message().find("already failed"),
            std::string::npos);

  HandshakeState a = make_side(Pattern::XX, true, alice, bob).value();
  HandshakeState b = make_side(Pattern::XX, false, bob, alice).value();
  Result<Bytes> read_own_turn = a.read_message(Bytes(32));
  ASSERT_FALSE(read_own_turn.ok());
  EXPECT_NE(read_own_turn.status().message().find("turn"), std::string::npos);
  HandshakeState c = make_side(Pattern::XX, true, alice, bob).value();
  run_handshake(c, b);
  Result<Bytes> extra = c.write_message({});
  ASSERT_FALSE(extra.ok());
  EXPECT_NE(extra.status().message().find("finished"), std::string::npos);
}

TEST(noise, MessageSizeLimits) {
  const KeyPair alice = test_pair(1), bob = test_pair(2);
  HandshakeState initiator = make_side(Pattern::IK, true, alice, bob).value();
  // IK message 1: e (32) + encrypted s (48) + payload + tag (16).
  Result<Bytes> too_big = initiator.write_message(Bytes(kMaxMessageBytes - 32 - 48 - 16 + 1));
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("65535"), std::string::npos);
  HandshakeState fits = make_side(Pattern::IK, true, alice, bob).value();
  Result<Bytes> largest = fits.write_message(Bytes(kMaxMessageBytes - 32 - 48 - 16));
  ASSERT_TRUE(largest.ok());
  EXPECT_EQ(largest.value().size(), kMaxMessageBytes);
  HandshakeState responder = make_side(Pattern::IK, false, bob, alice).value();
  EXPECT_TRUE(responder.read_message(largest.value()).ok());

  HandshakeState reader = make_side(Pattern::IK, false, bob, alice).value();
  Result<Bytes> oversized = reader.read_message(Bytes(kMaxMessageBytes + 1));
  ASSERT_FALSE(oversized.ok());
  EXPECT_NE(oversized.status().message().find("exceeds 65535"), std::string::npos);
  HandshakeState short_reader = make_side(Pattern::IK, false, bob, alice).value();
  const Bytes cut(largest.value().begin(), largest.value().begin() + 40);
  Result<Bytes> truncated = short_reader.read_message(cut);
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("too short"), std::string::npos);
}

TEST(noise, TamperedHandshakeAndTransportFailCleanly) {
  const KeyPair alice = test_pair(1), bob = test_pair(2);
  for (size_t position : {size_t{0}, size_t{40}, size_t{90}}) {
    HandshakeState initiator = make_side(Pattern::IK, true, alice, bob).value();
    HandshakeState responder = make_side(Pattern::IK, false, bob, alice).value();
    Bytes message = initiator.write_message(bytes_of("payload")).value();
    ASSERT_LT(position, message.size());
    message[position] ^= 0x01;
    Result<Bytes> read = responder.read_message(message);
    ASSERT_FALSE(read.ok()) << position;
    EXPECT_NE(read.status().message().find("authentication failed"), std::string::npos)
        << read.status().message();
  }
  // Different prologues: the first encrypted field fails.
  HandshakeState initiator = make_side(Pattern::XX, true, alice, bob, bytes_of("run-1")).value();
  HandshakeState responder = make_side(Pattern::XX, false, bob, alice, bytes_of("run-2")).value();
  ASSERT_TRUE(responder.read_message(initiator.write_message({}).value()).ok());
  EXPECT_FALSE(initiator.read_message(responder.write_message({}).value()).ok());

  // Transport: a flipped bit fails, and the receiver's nonce does not move.
  HandshakeState a = make_side(Pattern::XX, true, alice, bob).value();
  HandshakeState b = make_side(Pattern::XX, false, bob, alice).value();
  run_handshake(a, b);
  auto [a_send, a_receive] = a.split();
  auto [b_receive, b_send] = b.split();
  Bytes ciphertext = a_send.encrypt_with_ad({}, bytes_of("data")).value();
  Bytes tampered = ciphertext;
  tampered.back() ^= 0x80;
  EXPECT_FALSE(b_receive.decrypt_with_ad({}, tampered).ok());
  EXPECT_EQ(b_receive.nonce(), 0u);
  EXPECT_FALSE(b_receive.decrypt_with_ad({}, Bytes(15)).ok());
  EXPECT_EQ(b_receive.decrypt_with_ad({}, ciphertext).value(), bytes_of("data"));
  // A replay is rejected (the nonce moved on).
  EXPECT_FALSE(b_receive.decrypt_with_ad({}, ciphertext).ok());
}

TEST(noise, LowOrderEphemeralRejected) {
  const KeyPair alice = test_pair(1), bob = test_pair(2);
  HandshakeState initiator = make_side(Pattern::NN, true, alice, bob).value();
  HandshakeState responder = make_side(Pattern::NN, false, bob, alice).value();
  ASSERT_TRUE(responder.read_message(initiator.write_message({}).value()).ok());
  Bytes reply = responder.write_message({}).value();
  std::fill(reply.begin(), reply.begin() + 32, 0);  // the zero point has order 1... or 4
  Result<Bytes> read = initiator.read_message(reply);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("low-order"), std::string::npos)
      << read.status().message();
}

TEST(noise, RekeyChangesKeyAndStaysInSync) {
  const KeyPair alice = test_pair(1), bob = test_pair(2);
  HandshakeState a = make_side(Pattern::XX, true, alice, bob).value();
  HandshakeState b = make_side(Pattern::XX, false, bob, alice).value();
  run_handshake(a, b);
  CipherState send = a.split().first, receive = b.split().first;
  CipherState old_send = send;
  send.rekey();
  const Bytes before = old_send.encrypt_with_ad({}, bytes_of("x")).value();
  const Bytes after = send.encrypt_with_ad({}, bytes_of("x")).value();
  EXPECT_NE(before, after);  // same nonce, different key
  // The receiver has not rekeyed yet: it cannot read the message.
  EXPECT_FALSE(receive.decrypt_with_ad({}, after).ok());
  receive.rekey();
  EXPECT_EQ(receive.decrypt_with_ad({}, after).value(), bytes_of("x"));
  for (int i = 0; i < 10; ++i) {
    if (i % 3 == 0) {
      send.rekey();
      receive.rekey();
    }
    const Bytes message = bytes_of("message " + std::to_string(i));
    EXPECT_EQ(receive.decrypt_with_ad({}, send.encrypt_with_ad({}, message).value()).value(),
              message);
  }
  // Rekey is the spec's ENCRYPT(k, 2^64-1, "", zeros[32])[0:32].
  CipherState fresh;
  std::array<uint8_t, 32> key{};
  key[0] = 7;
  fresh.initialize_key(key);
  fresh.rekey();
  std::array<uint8_t, 48> expected_block;
  unsigned char nonce[12] = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const std::array<uint8_t, 32> zeros{};
  ASSERT_EQ(crypto_aead_chacha20poly1305_ietf_encrypt(expected_block.data(), nullptr, zeros.data(),
                                                      32, nullptr, 0, nullptr, nonce, key.data()),
            0);
  CipherState manual;
  manual.initialize_key(std::span<const uint8_t, 32>(expected_block.data(), 32));
  EXPECT_EQ(fresh.encrypt_with_ad({}, bytes_of("z")).value(),
            manual.encrypt_with_ad({}, bytes_of("z")).value());
}

TEST(noise, NonceExhaustionIsAnError) {
  CipherState state;
  std::array<uint8_t, 32> key{};
  state.initialize_key(key);
  state.set_nonce(kMaxNonce - 1);
  ASSERT_TRUE(state.encrypt_with_ad({}, bytes_of("last")).ok());
  Result<Bytes> exhausted = state.encrypt_with_ad({}, bytes_of("one more"));
  ASSERT_FALSE(exhausted.ok());
  EXPECT_NE(exhausted.status().message().find("nonce exhausted"), std::string::npos);
  EXPECT_FALSE(state.decrypt_with_ad({}, Bytes(32)).ok());
  // Without a key, the cipher passes data through (spec).
  CipherState empty;
  EXPECT_EQ(empty.encrypt_with_ad({}, bytes_of("plain")).value(), bytes_of("plain"));
}

// >= 10,000 random and mutated messages thrown at responders and a transport
// receiver: every one must fail or succeed cleanly, none may crash.
TEST(noise, FuzzResponderNeverCrashes) {
  const KeyPair alice = test_pair(1), bob = test_pair(2);
  Rng rng(1234);
  HandshakeState template_initiator = make_side(Pattern::IK, true, alice, bob).value();
  const Bytes valid_ik = template_initiator.write_message(bytes_of("payload")).value();
  HandshakeState xx_initiator = make_side(Pattern::XX, true, alice, bob).value();
  const Bytes valid_xx = xx_initiator.write_message(bytes_of("payload")).value();
  int accepted = 0;
  for (int round = 0; round < 12'000; ++round) {
    const bool use_ik = round % 2 == 0;
    Bytes message = use_ik ? valid_ik : valid_xx;
    switch (rng.below(4)) {
      case 0:  // random bytes of random length
        message.resize(rng.below(200));
        for (uint8_t& byte : message) byte = static_cast<uint8_t>(rng.next_u64());
        break;
      case 1:  // flip a few bits
        for (int flips = 1 + static_cast<int>(rng.below(3)); flips > 0; --flips) {
          message[rng.below(message.size())] ^= static_cast<uint8_t>(1u << rng.below(8));
        }
        break;
      case 2:  // truncate or extend
        message.resize(rng.below(message.size() + 40));
        break;
      default:  // unchanged (must succeed) or one random byte replaced
        if (rng.below(2) == 0)
          message[rng.below(message.size())] = static_cast<uint8_t>(rng.next_u64());
        break;
    }
    HandshakeState responder =
        make_side(use_ik ? Pattern::IK : Pattern::XX, false, bob, alice).value();
    Result<Bytes> read = responder.read_message(message);
    if (read.ok()) ++accepted;
  }
  EXPECT_GT(accepted, 0);  // the unchanged copies

  HandshakeState a = make_side(Pattern::XX, true, alice, bob).value();
  HandshakeState b = make_side(Pattern::XX, false, bob, alice).value();
  run_handshake(a, b);
  CipherState receive = b.split().first;
  CipherState send = a.split().first;
  const Bytes valid = send.encrypt_with_ad({}, bytes_of("transport payload")).value();
  for (int round = 0; round < 10'000; ++round) {
    Bytes message = valid;
    if (rng.below(2) == 0) {
      message.resize(rng.below(100));
      for (uint8_t& byte : message) byte = static_cast<uint8_t>(rng.next_u64());
    } else {
      message[rng.below(message.size())] ^= static_cast<uint8_t>(1 + rng.below(255));
    }
    EXPECT_FALSE(receive.decrypt_with_ad({}, message).ok());
  }
  EXPECT_EQ(receive.decrypt_with_ad({}, valid).value(), bytes_of("transport payload"));
}

}  // namespace
}  // namespace tern::net::noise
