// Wire messages: round trips, every rejected field by name, and a fuzz test
// (run under ASan+UBSan) over mutated encodings.
#include "net/messages.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "net/messages_generated.h"

namespace tern::net {
namespace {

namespace fbs = ::tern::net::fb;

template <size_t N>
std::array<uint8_t, N> filled(uint8_t seed) {
  std::array<uint8_t, N> out;
  for (size_t i = 0; i < N; ++i) out[i] = static_cast<uint8_t>(seed + 7 * i);
  return out;
}

Bytes wire_pattern(size_t size, uint8_t seed) {
  Bytes out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(seed ^ (i * 31));
  return out;
}

std::vector<WireMessage> one_of_each_kind() {
  std::vector<WireMessage> out;
  out.push_back({1, msg::Hello{.protocol_version = 3,
                               .run_id = filled<16>(1),
                               .role = "trainer",
                               .capabilities = {"blobs", "broadcast", ""}}});
  out.push_back({2, msg::GetManifest{.blob = filled<32>(2)}});
  out.push_back({3, msg::Manifest{make_manifest(wire_pattern(10000, 3), 4096)}});
  out.push_back({4, msg::GetChunk{.blob = filled<32>(4), .index = 77}});
  out.push_back({5, msg::Chunk{.blob = filled<32>(5), .index = 2, .data = wire_pattern(1000, 5)}});
  out.push_back({6, msg::NotFound{.blob = filled<32>(6), .reason = "evicted"}});
  out.push_back({7, msg::Have{.blobs = {filled<32>(7), filled<32>(8), filled<32>(9)}}});
  out.push_back({8, msg::Broadcast{.run_id = filled<16>(10),
                                   .sender = filled<32>(11),
                                   .seq = 12345678901234ull,
                                   .expiry_ms = 99,
                                   .kind = 4,
                                   .body = wire_pattern(300, 12),
                                   .signature = filled<64>(13)}});
  out.push_back({~uint64_t{0}, msg::Error{.code = 404, .message = "no such thing"}});
  // Edge values: empty lists, empty blob manifest, zero request id.
  out.push_back({0, msg::Hello{}});
  out.push_back({0, msg::Manifest{make_manifest({}, kMinChunkSize)}});
  out.push_back({0, msg::Chunk{}});
  out.push_back({0, msg::Have{}});
  out.push_back({0, msg::Error{}});
  return out;
}

TEST(wire_messages, EveryKindRoundTrips) {
  const auto messages = one_of_each_kind();
  std::vector<bool> kinds_seen(std::variant_size_v<MessageBody>, false);
  for (const WireMessage& message : messages) {
    SCOPED_TRACE(body_name(message.body));
    kinds_seen[message.body.index()] = true;
    const Bytes encoded = encode_message(message);
    Result<WireMessage> decoded = decode_message(encoded);
    ASSERT_TRUE(decoded.ok()) << decoded.status().message();
    EXPECT_EQ(decoded.value(), message);
  }
  for (size_t i = 0; i < kinds_seen.size(); ++i) EXPECT_TRUE(kinds_seen[i]) << "kind " << i;
}

TEST(wire_messages, DecodesFromUnalignedBuffer) {
  const WireMessage message = one_of_each_kind()[7];
  const Bytes encoded = encode_message(message);
  Bytes shifted(encoded.size() + 1);
  std::copy(encoded.begin(), encoded.end(), shifted.begin() + 1);
  Result<WireMessage> decoded = decode_message(std::span<const uint8_t>(shifted).subspan(1));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded.value(), message);
}

// Builds a Message around a body made by `make_body`, with raw FlatBuffers
// calls so that fields can hold what encode_message never writes.
Bytes raw_message(const std::function<std::pair<fbs::Body, flatbuffers::Offset<void>>(
                      flatbuffers::FlatBufferBuilder&)>& make_body,
                  uint16_t version = kWireVersion) {
  flatbuffers::FlatBufferBuilder b;
  auto [type, body] = make_body(b);
  fbs::MessageBuilder root(b);
  root.add_version(version);
  root.add_request_id(1);
  root.add_body_type(type);
  if (!body.IsNull()) root.add_body(body);
  fbs::FinishMessageBuffer(b, root.Finish());
  return Bytes(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
}

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> byte_vector(flatbuffers::FlatBufferBuilder& b,
                                                              size_t size) {
  Bytes bytes(size, 0xab);
  return b.CreateVector(bytes);
}

struct BadCase {
  std::string name;
  Bytes encoded;
  std::string expected_in_error;
  MessageLimits limits = {};
};

std::vector<BadCase> bad_cases() {
  using B = flatbuffers::FlatBufferBuilder;
  std::vector<BadCase> cases;
  auto add = [&](std::string name, Bytes encoded, std::string expected, MessageLimits limits = {}) {
    cases.push_back({std::move(name), std::move(encoded), std::move(expected), limits});
  };
  const std::string long_text(1025, 'x');

  add("hello run id short", raw_message([](B& b) {
        return std::pair{fbs::Body::Hello, fbs::CreateHello(b, 1, byte_vector(b, 15)).Union()};
      }),
      "Hello.run_id has 15 bytes (expected 16)");
  add("hello run id missing", raw_message([](B& b) {
        return std::pair{fbs::Body::Hello, fbs::CreateHello(b, 1).Union()};
      }),
      "Hello.run_id has 0 bytes (expected 16)");
  add("hello role long", raw_message([&](B& b) {
        auto run = byte_vector(b, 16);
        auto role = b.CreateString(long_text);
        return std::pair{fbs::Body::Hello, fbs::CreateHello(b, 1, run, role).Union()};
      }),
      "Hello.role has 1025 bytes (max 1024)");
  add("hello capability long", raw_message([&](B& b) {
        auto run = byte_vector(b, 16);
        auto caps = b.CreateVectorOfStrings(std::vector<std::string>{"a", long_text});
        return std::pair{fbs::Body::Hello, fbs::CreateHello(b, 1, run, 0, caps).Union()};
      }),
      "Hello.capabilities[1] has 1025 bytes");
  add("hello too many capabilities", raw_message([&](B& b) {
        auto run = byte_vector(b, 16);
        auto caps = b.CreateVectorOfStrings(std::vector<std::string>(65, "c"));
        return std::pair{fbs::Body::Hello, fbs::CreateHello(b, 1, run, 0, caps).Union()};
      }),
      "Hello.capabilities has 65 entries (max 64)");
  add("get manifest id short", raw_message([](B& b) {
        return std::pair{fbs::Body::GetManifest,
                         fbs::CreateGetManifest(b, byte_vector(b, 31)).Union()};
      }),
      "GetManifest.blob_id has 31 bytes (expected 32)");
  add("get manifest id long", raw_message([](B& b) {
        return std::pair{fbs::Body::GetManifest,
                         fbs::CreateGetManifest(b, byte_vector(b, 33)).Union()};
      }),
      "GetManifest.blob_id has 33 bytes (expected 32)");
  add("manifest id", raw_message([](B& b) {
        return std::pair{fbs::Body::Manifest,
                         fbs::CreateManifest(b, byte_vector(b, 3), 0, 4096).Union()};
      }),
      "Manifest.blob_id has 3 bytes");
  add("manifest chunk size zero", raw_message([](B& b) {
        return std::pair{fbs::Body::Manifest,
                         fbs::CreateManifest(b, byte_vector(b, 32), 0, 0).Union()};
      }),
      "Manifest.chunk_size chunk size 0 is not a power of two");
  add("manifest chunk size odd", raw_message([](B& b) {
        return std::pair{fbs::Body::Manifest,
                         fbs::CreateManifest(b, byte_vector(b, 32), 0, 5000).Union()};
      }),
      "Manifest.chunk_size chunk size 5000");
  add("manifest chunk size huge", raw_message([](B& b) {
        return std::pair{fbs::Body::Manifest,
                         fbs::CreateManifest(b, byte_vector(b, 32), 0, 1u << 25).Union()};
      }),
      "Manifest.chunk_size chunk size 33554432");
  add("manifest hashes ragged", raw_message([](B& b) {
        auto id = byte_vector(b, 32);
        auto hashes = byte_vector(b, 33);
        return std::pair{fbs::Body::Manifest,
                         fbs::CreateManifest(b, id, 4096, 4096, hashes).Union()};
      }),
      "Manifest.chunk_hashes has 33 bytes (not a multiple of 32)");
  add("manifest hashes too few", raw_message([](B& b) {
        auto id = byte_vector(b, 32);
        auto hashes = byte_vector(b, 64);
        return std::pair{fbs::Body::Manifest,
                         fbs::CreateManifest(b, id, 8193, 4096, hashes).Union()};
      }),
      "Manifest.chunk_hashes has 2 hashes, but size 8193 in chunks of 4096 needs 3");
  add("manifest hashes for empty blob", raw_message([](B& b) {
        auto id = byte_vector(b, 32);
        auto hashes = byte_vector(b, 32);
        return std::pair{fbs::Body::Manifest, fbs::CreateManifest(b, id, 0, 4096, hashes).Union()};
      }),
      "Manifest.chunk_hashes has 1 hashes, but size 0");
  add("manifest size overflow", raw_message([](B& b) {
        auto id = byte_vector(b, 32);
        auto hashes = byte_vector(b, 32);
        return std::pair{fbs::Body::Manifest,
                         fbs::CreateManifest(b, id, ~uint64_t{0}, 4096, hashes).Union()};
      }),
      "Manifest.chunk_hashes has 1 hashes, but size 18446744073709551615");
  {
    MessageLimits small;
    small.max_manifest_chunks = 2;
    add("manifest too many chunks", raw_message([](B& b) {
          auto id = byte_vector(b, 32);
          auto hashes = byte_vector(b, 96);
          return std::pair{fbs::Body::Manifest,
                           fbs::CreateManifest(b, id, 3 * 4096, 4096, hashes).Union()};
        }),
        "Manifest.chunk_hashes has 3 entries (max 2)", small);
  }
  add("get chunk id", raw_message([](B& b) {
        return std::pair{fbs::Body::GetChunk, fbs::CreateGetChunk(b, 0, 5).Union()};
      }),
      "GetChunk.blob_id has 0 bytes (expected 32)");
  add("chunk id", raw_message([](B& b) {
        return std::pair{fbs::Body::Chunk, fbs::CreateChunk(b, byte_vector(b, 64), 0).Union()};
      }),
      "Chunk.blob_id has 64 bytes (expected 32)");
  {
    MessageLimits small;
    small.max_chunk_bytes = 4096;
    add("chunk data too long", raw_message([](B& b) {
          auto id = byte_vector(b, 32);
          auto data = byte_vector(b, 4097);
          return std::pair{fbs::Body::Chunk, fbs::CreateChunk(b, id, 0, data).Union()};
        }),
        "Chunk.data has 4097 bytes (max 4096)", small);
  }
  add("not found id", raw_message([](B& b) {
        return std::pair{fbs::Body::NotFound, fbs::CreateNotFound(b, byte_vector(b, 1)).Union()};
      }),
      "NotFound.blob_id has 1 bytes");
  add("not found reason long", raw_message([&](B& b) {
        auto id = byte_vector(b, 32);
        auto reason = b.CreateString(long_text);
        return std::pair{fbs::Body::NotFound, fbs::CreateNotFound(b, id, reason).Union()};
      }),
      "NotFound.reason has 1025 bytes (max 1024)");
  add("have ragged", raw_message([](B& b) {
        return std::pair{fbs::Body::Have, fbs::CreateHave(b, byte_vector(b, 40)).Union()};
      }),
      "Have.blob_ids has 40 bytes (not a multiple of 32)");
  {
    MessageLimits small;
    small.max_have_blobs = 1;
    add("have too many", raw_message([](B& b) {
          return std::pair{fbs::Body::Have, fbs::CreateHave(b, byte_vector(b, 64)).Union()};
        }),
        "Have.blob_ids has 2 entries (max 1)", small);
  }
  // Broadcast: one fixed-size field wrong at a time.
  auto broadcast = [](size_t run, size_t sender, size_t body, size_t signature) {
    return raw_message([=](B& b) {
      auto run_v = byte_vector(b, run);
      auto sender_v = byte_vector(b, sender);
      auto body_v = byte_vector(b, body);
      auto signature_v = byte_vector(b, signature);
      return std::pair{
          fbs::Body::Broadcast,
          fbs::CreateBroadcast(b, run_v, sender_v, 1, 2, 3, body_v, signature_v).Union()};
    });
  };
  add("broadcast run id", broadcast(17, 32, 0, 64), "Broadcast.run_id has 17 bytes (expected 16)");
  add("broadcast sender", broadcast(16, 31, 0, 64), "Broadcast.sender has 31 bytes (expected 32)");
  add("broadcast signature", broadcast(16, 32, 0, 63),
      "Broadcast.signature has 63 bytes (expected 64)");
  {
    MessageLimits small;
    small.max_broadcast_body_bytes = 100;
    add("broadcast body long", broadcast(16, 32, 101, 64), "Broadcast.body has 101 bytes (max 100)",
        small);
  }
  add("error message long", raw_message([&](B& b) {
        auto text = b.CreateString(long_text);
        return std::pair{fbs::Body::Error, fbs::CreateError(b, 1, text).Union()};
      }),
      "Error.message has 1025 bytes (max 1024)");
  add("no body", raw_message([](B&) {
        return std::pair{fbs::Body::NONE, flatbuffers::Offset<void>()};
      }),
      "body missing");
  add("tag without table", raw_message([](B&) {
        return std::pair{fbs::Body::Chunk, flatbuffers::Offset<void>()};
      }),
      "body Chunk missing");
  add("unknown body type", raw_message([](B& b) {
        return std::pair{static_cast<fbs::Body>(200), fbs::CreateError(b, 1).Union()};
      }),
      "body_type 200 is unknown");
  add("wrong version",
      raw_message(
          [](B& b) {
            return std::pair{fbs::Body::Error, fbs::CreateError(b, 1).Union()};
          },
          2),
      "Message.version is 2 (expected 1)");
  {
    Bytes wrong_id = encode_message({1, msg::Error{}});
    wrong_id[4] = 'X';
    add("wrong identifier", wrong_id, "file_identifier is 58524e4d");
  }
  {
    const Bytes good = encode_message({1, msg::Chunk{.data = wire_pattern(200, 1)}});
    add("truncated", Bytes(good.begin(), good.end() - 50), "fail FlatBuffers verification");
    add("too short", Bytes(good.begin(), good.begin() + 7), "7 bytes is too short");
    add("empty", Bytes{}, "0 bytes is too short");
    MessageLimits small;
    small.max_message_bytes = good.size() - 1;
    add("over max_message_bytes", good,
        std::to_string(good.size()) + " bytes exceed max_message_bytes", small);
    // Root offset pointing past the end.
    Bytes bad_root = good;
    bad_root[0] = 0xff;
    bad_root[1] = 0xff;
    add("root offset out of range", bad_root, "fail FlatBuffers verification");
  }
  {
    // Depth limit: a Message is 2 tables deep plus vectors; depth 1 refuses it.
    MessageLimits shallow;
    shallow.max_depth = 1;
    add("depth limit", encode_message({1, msg::Have{.blobs = {filled<32>(1)}}}),
        "fail FlatBuffers verification", shallow);
    MessageLimits few_tables;
    few_tables.max_tables = 1;
    add("table limit", encode_message({1, msg::Error{}}), "fail FlatBuffers verification",
        few_tables);
  }
  return cases;
}

TEST(wire_messages, RejectsEveryBadFieldByName) {
  for (const BadCase& bad : bad_cases()) {
    SCOPED_TRACE(bad.name);
    Result<WireMessage> decoded = decode_message(bad.encoded, bad.limits);
    ASSERT_FALSE(decoded.ok());
    EXPECT_NE(decoded.status().message().find(bad.expected_in_error), std::string::npos)
        << decoded.status().message();
    EXPECT_EQ(decoded.status().message().rfind("decode message: ", 0), 0u)
        << decoded.status().message();
  }
}

TEST(wire_messages, AcceptsLimitsExactly) {
  MessageLimits limits;
  limits.max_chunk_bytes = 4096;
  limits.max_string_bytes = 10;
  const WireMessage chunk{1, msg::Chunk{.data = wire_pattern(4096, 1)}};
  EXPECT_TRUE(decode_message(encode_message(chunk), limits).ok());
  const WireMessage error{1, msg::Error{.message = std::string(10, 'e')}};
  EXPECT_TRUE(decode_message(encode_message(error), limits).ok());
}

// Mutates `input` one of several ways, all driven by `rng`.
Bytes mutate(const Bytes& input, const std::vector<Bytes>& corpus, Rng& rng) {
  Bytes out = input;
  switch (rng.below(6)) {
    case 0: {  // a few bit flips
      const uint64_t flips = 1 + rng.below(8);
      for (uint64_t i = 0; i < flips && !out.empty(); ++i) {
        out[rng.below(out.size())] ^= static_cast<uint8_t>(1u << rng.below(8));
      }
      break;
    }
    case 1:  // truncation
      out.resize(rng.below(out.size() + 1));
      break;
    case 2: {  // splice: a prefix of this one, a suffix of another
      const Bytes& other = corpus[rng.below(corpus.size())];
      const size_t cut = rng.below(out.size() + 1);
      const size_t from = rng.below(other.size() + 1);
      out.resize(cut);
      out.insert(out.end(), other.begin() + static_cast<ptrdiff_t>(from), other.end());
      break;
    }
    case 3: {  // random bytes
      out.resize(rng.below(300));
      for (uint8_t& byte : out) byte = static_cast<uint8_t>(rng.next_u64());
      break;
    }
    case 4: {  // an interesting 32-bit value at an aligned offset (offsets, lengths)
      static const uint32_t kValues[] = {0,  1,          4,          31,         32,
                                         33, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffc};
      if (out.size() >= 4) {
        const size_t offset = 4 * rng.below(out.size() / 4);
        const uint32_t value = kValues[rng.below(std::size(kValues))];
        for (int i = 0; i < 4; ++i) out[offset + i] = static_cast<uint8_t>(value >> (8 * i));
      }
      break;
    }
    default: {  // byte overwrite with small values (union tags, versions)
      const uint64_t count = 1 + rng.below(4);
      for (uint64_t i = 0; i < count && !out.empty(); ++i) {
        out[rng.below(out.size())] = static_cast<uint8_t>(rng.below(12));
      }
      break;
    }
  }
  return out;
}

TEST(wire_messages_fuzz, MutatedEncodingsNeverCrashAndReencodeStably) {
  std::vector<Bytes> corpus;
  for (const WireMessage& message : one_of_each_kind()) corpus.push_back(encode_message(message));
  MessageLimits limits;
  limits.max_string_bytes = 64;  // so that some mutations hit the caps
  limits.max_chunk_bytes = 4096;
  Rng rng(0x7e57f022);
  int decoded_ok = 0;
  constexpr int kIterations = 12000;
  for (int i = 0; i < kIterations; ++i) {
    Bytes input = corpus[rng.below(corpus.size())];
    const uint64_t rounds = 1 + rng.below(3);
    for (uint64_t r = 0; r < rounds; ++r) input = mutate(input, corpus, rng);
    Result<WireMessage> decoded = decode_message(input, limits);
    if (!decoded.ok()) {
      ASSERT_FALSE(decoded.status().message().empty());
      continue;
    }
    ++decoded_ok;
    const Bytes again = encode_message(decoded.value());
    Result<WireMessage> redecoded = decode_message(again, limits);
    ASSERT_TRUE(redecoded.ok()) << "iteration " << i << ": " << redecoded.status().message();
    ASSERT_EQ(redecoded.value(), decoded.value()) << "iteration " << i;
  }
  // Both outcomes must be exercised for the test to mean anything.
  EXPECT_GT(decoded_ok, 100);
  EXPECT_LT(decoded_ok, kIterations - 1000);
}

}  // namespace
}  // namespace tern::net
