#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <string>
#include <vector>

#include "core/hash.h"
#include "core/rng.h"
#include "optim/demo_codec.h"

namespace tern {
namespace {

struct CodecSetup {
  TensorLayout layout;
  DemoPlan plan;
  std::vector<DemoUpdate> updates;  // a few steps of a real optimizer

  static CodecSetup make(DemoValues values, int64_t topk = 3) {
    TensorLayout layout;
    layout.add("w", {24, 40});
    layout.add("norm", {37});
    layout.add("one", {1});
    layout.add("wide", {3, 200});
    DemoConfig config;
    config.chunk = 8;
    config.topk = topk;
    config.values = values;
    Result<DemoPlan> plan = DemoPlan::create(layout, config);
    TERN_CHECK(plan.ok());
    CodecSetup s{layout, plan.value(), {}};
    DemoOptimizer opt(s.plan);
    FlatBuffer grads(layout.buffer_size());
    Rng rng(11);
    for (int step = 1; step <= 3; ++step) {
      for (const TensorInfo& info : layout.tensors()) {
        for (float& g : grads.view(info)) {
          g = static_cast<float>(rng.normal() * 50.0);
        }
      }
      s.updates.push_back(opt.encode(grads, 0.1, step));
    }
    return s;
  }
};

// Recomputes the trailing BLAKE2b so a mutation reaches the parser.
void rehash(std::vector<uint8_t>& bytes) {
  Blake2bHasher h;
  h.update(std::span<const uint8_t>(bytes.data(), bytes.size() - 32));
  const Blake2bDigest d = h.finish();
  std::copy(d.begin(), d.end(), bytes.end() - 32);
}

std::string decode_error(const DemoPlan& plan, const std::vector<uint8_t>& bytes) {
  Result<DemoUpdate> r = decode_demo_update(plan, bytes);
  return r.ok() ? "" : r.status().message();
}

TEST(DemoCodecTest, RoundTripIsExactForBothValueEncodings) {
  for (DemoValues values : {DemoValues::kSign, DemoValues::kFp16}) {
    const CodecSetup s = CodecSetup::make(values);
    for (const DemoUpdate& u : s.updates) {
      const std::vector<uint8_t> bytes = encode_demo_update(s.plan, u);
      Result<DemoUpdate> back = decode_demo_update(s.plan, bytes);
      ASSERT_TRUE(back.ok()) << back.status().message();
      EXPECT_EQ(back.value(), u);
      EXPECT_EQ(encode_demo_update(s.plan, back.value()), bytes);
    }
  }
}

TEST(DemoCodecTest, SizeIsHeaderPlusBitPackedBlocks) {
  const CodecSetup s = CodecSetup::make(DemoValues::kSign);
  const DemoUpdate& u = s.updates[0];
  // Per block: 1 flag bit, then for a non-empty block 2 bits of count−1 (top-3),
  // count indices of ⌈log2 block⌉ bits and count sign bits.
  int64_t bits = 0;
  for (size_t t = 0; t < u.tensors.size(); ++t) {
    const BlockGrid& g = s.plan.grids()[t];
    const int index_bits = g.block_size() <= 1 ? 0 : std::bit_width(uint64_t(g.block_size() - 1));
    const int count_bits = s.plan.topk(t) <= 1 ? 0 : std::bit_width(uint64_t(s.plan.topk(t) - 1));
    for (int64_t b = 0; b < g.num_blocks(); ++b) {
      const int64_t n = u.tensors[t].block_begin[b + 1] - u.tensors[t].block_begin[b];
      bits += 1 + (n > 0 ? count_bits + n * (index_bits + 1) : 0);
    }
  }
  const int64_t payload = (bits + 7) / 8;
  const int64_t varint_len = payload < 128 ? 1 : 2;
  // magic, version, encoding, step, table hash, tensor count, 4 grids of two
  // one-byte varints, payload length, payload, digest.
  EXPECT_EQ(static_cast<int64_t>(encode_demo_update(s.plan, u).size()),
            4 + 1 + 1 + 8 + 16 + 1 + 8 + varint_len + payload + 32);
}

TEST(DemoCodecTest, EveryBadFieldIsNamed) {
  const CodecSetup s = CodecSetup::make(DemoValues::kFp16);
  const std::vector<uint8_t> good = encode_demo_update(s.plan, s.updates[1]);
  auto mutated = [&](size_t offset, uint8_t value) {
    std::vector<uint8_t> b = good;
    b[offset] = value;
    rehash(b);
    return b;
  };
  EXPECT_NE(decode_error(s.plan, {good.begin(), good.begin() + 40}).find("shorter"),
            std::string::npos);
  std::vector<uint8_t> flipped = good;
  flipped[50] ^= 1;
  EXPECT_NE(decode_error(s.plan, flipped).find("BLAKE2b"), std::string::npos);
  EXPECT_NE(decode_error(s.plan, mutated(0, 'X')).find("magic"), std::string::npos);
  EXPECT_NE(decode_error(s.plan, mutated(4, 9)).find("version"), std::string::npos);
  EXPECT_NE(decode_error(s.plan, mutated(5, 0)).find("value encoding"), std::string::npos);
  EXPECT_NE(decode_error(s.plan, mutated(7 + 8, good[15] ^ 0xff)).find("tensor table hash"),
            std::string::npos);
  EXPECT_NE(decode_error(s.plan, mutated(30, 5)).find("tensor count"), std::string::npos);
  EXPECT_NE(decode_error(s.plan, mutated(31, 7)).find("block grid"), std::string::npos);
  // Payload length: one byte more than what follows.
  const size_t len_at = 30 + 1 + 8;
  std::vector<uint8_t> longer = good;
  longer[len_at] = static_cast<uint8_t>(longer[len_at] + 1);
  rehash(longer);
  EXPECT_NE(decode_error(s.plan, longer).find("payload length"), std::string::npos);
  // A plan with other settings rejects the update by its table hash.
  const CodecSetup other = CodecSetup::make(DemoValues::kFp16, 4);
  EXPECT_NE(decode_error(other.plan, good).find("tensor table hash"), std::string::npos);
}

TEST(DemoCodecTest, PayloadViolationsAreRejected) {
  // A hand-made payload for one 8-element block with top-2: flag, count−1,
  // indices (3 bits each), fp16 values.
  TensorLayout layout;
  layout.add("v", {8});
  DemoConfig config;
  config.chunk = 8;
  config.topk = 2;
  config.values = DemoValues::kSign;
  Result<DemoPlan> plan = DemoPlan::create(layout, config);
  ASSERT_TRUE(plan.ok());
  DemoUpdate u;
  u.step = 5;
  u.tensors.push_back({{0, 2}, {2, 6}, {1.0f, -1.0f}});
  const std::vector<uint8_t> good = encode_demo_update(plan.value(), u);
  // Payload bits: flag 1, count−1 = 1, indices 010 110, signs 0 1 → 10 bits.
  const size_t payload_at = good.size() - 32 - 2;
  ASSERT_EQ(good[payload_at - 1], 2);  // payload length
  EXPECT_EQ(good[payload_at], 0b11001011);
  EXPECT_EQ(good[payload_at + 1], 0b10);
  auto with_payload = [&](uint8_t b0, uint8_t b1) {
    std::vector<uint8_t> b = good;
    b[payload_at] = b0;
    b[payload_at + 1] = b1;
    rehash(b);
    return decode_error(plan.value(), b);
  };
  EXPECT_EQ(with_payload(0b11001011, 0b10), "");
  // Indices 6 then 2: not ascending.
  EXPECT_NE(with_payload(0b01011011, 0b10).find("not ascending"), std::string::npos);
  // Non-zero padding bits.
  EXPECT_NE(with_payload(0b11001011, 0b110).find("padding"), std::string::npos);
  // A zero block followed by leftover bits.
  EXPECT_NE(with_payload(0b0, 0b1).find("after the last block"), std::string::npos);
}

TEST(DemoCodecTest, ZeroBlocksCostOneBit) {
  TensorLayout layout;
  layout.add("m", {64, 64});
  DemoConfig config;
  config.chunk = 8;
  Result<DemoPlan> plan = DemoPlan::create(layout, config);
  ASSERT_TRUE(plan.ok());
  DemoOptimizer opt(plan.value());
  FlatBuffer grads(layout.buffer_size());
  const DemoUpdate u = opt.encode(grads, 0.1, 1);
  EXPECT_EQ(u.kept(), 0);
  const std::vector<uint8_t> bytes = encode_demo_update(plan.value(), u);
  // 64 blocks → 64 flag bits → 8 payload bytes.
  EXPECT_EQ(bytes.size(), 4 + 1 + 1 + 8 + 16 + 1 + 2 + 1 + 8 + 32u);
}

// ≥ 10,000 mutated payloads: every decode either fails cleanly or returns an
// update that validates and re-encodes to the same bytes (canonical form).
TEST(DemoCodecTest, FuzzedPayloadsNeverCrashAndDecodedOnesAreCanonical) {
  int accepted = 0;
  int total = 0;
  for (DemoValues values : {DemoValues::kSign, DemoValues::kFp16}) {
    const CodecSetup s = CodecSetup::make(values);
    Rng rng(values == DemoValues::kSign ? 1 : 2);
    for (int i = 0; i < 6000; ++i, ++total) {
      std::vector<uint8_t> b = encode_demo_update(s.plan, s.updates[i % s.updates.size()]);
      const int kind = static_cast<int>(rng.below(6));
      const int edits = 1 + static_cast<int>(rng.below(4));
      for (int e = 0; e < edits; ++e) {
        const size_t at = rng.below(b.size());
        switch (kind) {
          case 0:
            b[at] ^= static_cast<uint8_t>(1u << rng.below(8));
            break;
          case 1:
            b[at] = static_cast<uint8_t>(rng.below(256));
            break;
          case 2:
            b.resize(at);
            break;
          case 3:
            b.insert(b.begin() + static_cast<std::ptrdiff_t>(at),
                     static_cast<uint8_t>(rng.below(256)));
            break;
          case 4:
            b.erase(b.begin() + static_cast<std::ptrdiff_t>(at));
            break;
          default:
            b[at] = 0;
            break;
        }
        if (b.empty()) break;
      }
      // Most mutations re-hash so the parser sees them.
      if (b.size() >= 32 && rng.below(8) != 0) rehash(b);
      Result<DemoUpdate> r = decode_demo_update(s.plan, b);
      if (!r.ok()) {
        EXPECT_FALSE(r.status().message().empty());
        continue;
      }
      ++accepted;
      ASSERT_TRUE(validate_update(s.plan, r.value()).ok());
      EXPECT_EQ(encode_demo_update(s.plan, r.value()), b);
    }
  }
  EXPECT_GE(total, 10000);
  EXPECT_GT(accepted, 0);  // some mutations (e.g. sign bits) still decode
}

}  // namespace
}  // namespace tern
