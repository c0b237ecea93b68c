#include "format/ggml_quants.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace tern {
namespace {

float from_bits(uint32_t bits) {
  return std::bit_cast<float>(bits);
}

TEST(ggufQuantsTest, TypeTable) {
  struct Row {
    GgmlType type;
    uint32_t id;
    const char* name;
    int64_t block_size;
    int64_t block_bytes;
  };
  const Row rows[] = {
      {GgmlType::kF32, 0, "F32", 1, 4},         {GgmlType::kF16, 1, "F16", 1, 2},
      {GgmlType::kQ8_0, 8, "Q8_0", 32, 34},     {GgmlType::kBF16, 30, "BF16", 1, 2},
      {GgmlType::kTQ1_0, 34, "TQ1_0", 256, 54}, {GgmlType::kTQ2_0, 35, "TQ2_0", 256, 66},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(static_cast<uint32_t>(r.type), r.id);
    EXPECT_STREQ(type_name(r.type), r.name);
    EXPECT_EQ(block_size(r.type), r.block_size) << r.name;
    EXPECT_EQ(block_bytes(r.type), r.block_bytes) << r.name;
    const Result<GgmlType> parsed = parse_ggml_type(r.id);
    ASSERT_TRUE(parsed.ok()) << r.name;
    EXPECT_EQ(parsed.value(), r.type);
  }
}

TEST(ggufQuantsTest, UnsupportedTypeIdsAreNamed) {
  const Result<GgmlType> q4k = parse_ggml_type(12);
  ASSERT_FALSE(q4k.ok());
  EXPECT_NE(q4k.status().message().find("12"), std::string::npos) << q4k.status().message();
  EXPECT_NE(q4k.status().message().find("Q4_K"), std::string::npos) << q4k.status().message();
  for (const uint32_t id : {2u, 4u, 31u, 36u, 39u, 1000u, 0xffffffffu}) {
    const Result<GgmlType> r = parse_ggml_type(id);
    ASSERT_FALSE(r.ok()) << id;
    EXPECT_NE(r.status().message().find(std::to_string(id)), std::string::npos)
        << r.status().message();
  }
}

TEST(ggufQuantsTest, RowBytes) {
  EXPECT_EQ(row_bytes(GgmlType::kF32, 10).value(), 40u);
  EXPECT_EQ(row_bytes(GgmlType::kF16, 7).value(), 14u);
  EXPECT_EQ(row_bytes(GgmlType::kBF16, 3).value(), 6u);
  EXPECT_EQ(row_bytes(GgmlType::kQ8_0, 64).value(), 68u);
  EXPECT_EQ(row_bytes(GgmlType::kTQ1_0, 256).value(), 54u);
  EXPECT_EQ(row_bytes(GgmlType::kTQ2_0, 512).value(), 132u);
  EXPECT_EQ(row_bytes(GgmlType::kF32, 0).value(), 0u);

  const Result<uint64_t> tq = row_bytes(GgmlType::kTQ2_0, 100);
  ASSERT_FALSE(tq.ok());
  EXPECT_NE(tq.status().message().find("256"), std::string::npos) << tq.status().message();
  EXPECT_NE(tq.status().message().find("100"), std::string::npos) << tq.status().message();
  EXPECT_FALSE(row_bytes(GgmlType::kQ8_0, 33).ok());
  EXPECT_FALSE(row_bytes(GgmlType::kTQ1_0, 255).ok());
  EXPECT_FALSE(row_bytes(GgmlType::kF32, -1).ok());
  // 4 · (2^63 − 1) does not fit in 64 bits.
  EXPECT_FALSE(row_bytes(GgmlType::kF32, std::numeric_limits<int64_t>::max()).ok());
  EXPECT_TRUE(row_bytes(GgmlType::kF16, std::numeric_limits<int64_t>::max()).ok());
}

TEST(ggufQuantsTest, Fp16KnownBitPatterns) {
  struct Case {
    float f;
    uint16_t h;
  };
  const Case cases[] = {
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {1.0f, 0x3c00},
      {-2.0f, 0xc000},
      {0.5f, 0x3800},
      {65504.0f, 0x7bff},   // largest finite half
      {65519.99f, 0x7bff},  // below the halfway point
      {65520.0f, 0x7c00},   // halfway: ties to even = inf
      {1e10f, 0x7c00},      // overflow
      {-1e10f, 0xfc00},
      {std::numeric_limits<float>::infinity(), 0x7c00},
      {-std::numeric_limits<float>::infinity(), 0xfc00},
      {0x1p-14f, 0x0400},      // smallest normal
      {0x1p-24f, 0x0001},      // smallest subnormal
      {0x1p-25f, 0x0000},      // halfway to it: ties to even = 0
      {0x1.8p-25f, 0x0001},    // above halfway
      {0x1.8p-24f, 0x0002},    // 1.5 units: ties to even = 2
      {0x1.4p-23f, 0x0002},    // 2.5 units: ties to even = 2
      {0x1.ffcp-15f, 0x0400},  // 1023.5 units rounds up into the normals
      {0.1f, 0x2e66},
      {1.0f / 3.0f, 0x3555},
      {1.0f + 0x1p-11f, 0x3c00},             // tie, even mantissa stays
      {1.0f + 3 * 0x1p-11f, 0x3c02},         // tie, odd mantissa rounds up
      {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},  // just above the tie
  };
  for (const Case& c : cases) {
    EXPECT_EQ(fp32_to_fp16(c.f), c.h) << c.f;
  }
  // NaN becomes the canonical quiet NaN with its sign (ggml's portable conversion).
  EXPECT_EQ(fp32_to_fp16(from_bits(0x7fc00000)), 0x7e00);
  EXPECT_EQ(fp32_to_fp16(from_bits(0x7f800001)), 0x7e00);
  EXPECT_EQ(fp32_to_fp16(from_bits(0xffc00123)), 0xfe00);

  EXPECT_EQ(fp16_to_fp32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), 0x1p-24f);
  EXPECT_EQ(fp16_to_fp32(0x03ff), 1023 * 0x1p-24f);
  EXPECT_EQ(fp16_to_fp32(0x3555), 0.333251953125f);
  EXPECT_EQ(std::bit_cast<uint32_t>(fp16_to_fp32(0x8000)), 0x80000000u);
  EXPECT_EQ(fp16_to_fp32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(std::bit_cast<uint32_t>(fp16_to_fp32(0x7e00)), 0x7fc00000u);
  EXPECT_EQ(std::bit_cast<uint32_t>(fp16_to_fp32(0x7c01)), 0x7f802000u);  // payload kept
}

TEST(ggufQuantsTest, Fp16AllHalvesRoundTrip) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_fp16(f), h) << std::hex << h;
  }
}

#if defined(__FLT16_MAX__)
// The compiler's _Float16 conversion is IEEE round-to-nearest-even: an independent oracle.
TEST(ggufQuantsTest, Fp16MatchesCompilerConversion) {
  std::mt19937 rng(1234);
  for (int i = 0; i < 2000000; ++i) {
    uint32_t bits = rng();
    if (i % 2 == 0) bits = (bits & 0x807fffffu) | ((100u + bits % 50u) << 23);  // near half range
    const float f = from_bits(bits);
    if (std::isnan(f)) continue;
    const auto expected = std::bit_cast<uint16_t>(static_cast<_Float16>(f));
    ASSERT_EQ(fp32_to_fp16(f), expected) << std::hex << bits;
  }
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float expected = static_cast<float>(std::bit_cast<_Float16>(static_cast<uint16_t>(h)));
    const float got = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(expected)) {
      ASSERT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(expected)) << h;
    }
  }
}
#endif

TEST(ggufQuantsTest, Bf16KnownBitPatterns) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_bf16(3.14159265f), 0x4049);
  EXPECT_EQ(fp32_to_bf16(1.0f + 0x1p-8f), 0x3f80);      // tie, even stays
  EXPECT_EQ(fp32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(fp32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x7f7fffff)), 0x7f80);  // FLT_MAX rounds to inf
  EXPECT_EQ(fp32_to_bf16(from_bits(0x00010000)), 0x0001);  // subnormals are kept
  EXPECT_EQ(fp32_to_bf16(from_bits(0x80018000)), 0x8002);  // subnormal tie, odd rounds up
  // NaN: top half kept, quiet bit forced (as ggml does).
  EXPECT_EQ(fp32_to_bf16(from_bits(0x7f800001)), 0x7fc0);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x7f810000)), 0x7fc1);
  EXPECT_EQ(fp32_to_bf16(from_bits(0xffc00000)), 0xffc0);

  EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_fp32(0x4049), 3.140625f);
  EXPECT_EQ(std::bit_cast<uint32_t>(bf16_to_fp32(0x8001)), 0x80010000u);
}

TEST(ggufQuantsTest, Q8_0KnownBlock) {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  uint8_t block[34];
  quantize_row(GgmlType::kQ8_0, x, 32, block);
  // d = 16/127 = 0.1259842…; as fp16: exponent −3, mantissa round(0.007874·1024) = 8.
  EXPECT_EQ(block[0], 0x08);
  EXPECT_EQ(block[1], 0x30);
  const auto q = [&](int j) { return static_cast<int8_t>(block[2 + j]); };
  EXPECT_EQ(q(0), -127);  // the absmax element maps to ±127
  EXPECT_EQ(q(16), 0);
  EXPECT_EQ(q(17), 8);    // 7.94
  EXPECT_EQ(q(31), 119);  // 15 · 7.9375 = 119.06
  EXPECT_EQ(q(1), -119);
  EXPECT_EQ(q(4), -95);  // −12 · 7.9375 = −95.25
  float y[32];
  dequantize_row(GgmlType::kQ8_0, block, 32, y);
  const float d = fp16_to_fp32(0x3008);
  EXPECT_EQ(d, 0.1259765625f);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], static_cast<float>(q(j)) * d) << j;

  // An all-zero block has d = 0 and zero codes.
  float zeros[32] = {};
  quantize_row(GgmlType::kQ8_0, zeros, 32, block);
  for (const uint8_t b : block) EXPECT_EQ(b, 0);
}

std::vector<int8_t> random_codes(std::mt19937* rng, int64_t n) {
  std::vector<int8_t> codes(static_cast<size_t>(n));
  for (int8_t& c : codes) c = static_cast<int8_t>(static_cast<int>((*rng)() % 3) - 1);
  return codes;
}

TEST(ggufQuantsTest, Tq2_0ByteLayout) {
  std::vector<int8_t> codes(256, 0);
  codes[0] = 1;     // byte 0, bits 0-1
  codes[32] = -1;   // byte 0, bits 2-3
  codes[133] = 1;   // 128 + 5: byte 32 + 5, bits 0-1
  codes[255] = -1;  // byte 32 + 31, bits 6-7
  codes[100] = 1;   // byte 4, bits 6-7 (100 = 3·32 + 4)
  uint8_t block[66];
  pack_tq2_0(codes.data(), 256, 1.0f, block);
  for (int b = 0; b < 64; ++b) {
    uint8_t expected = 0x55;       // four fields of code 0 → 01 01 01 01
    if (b == 0) expected = 0x52;   // 01 01 00 10
    if (b == 37) expected = 0x56;  // 01 01 01 10
    if (b == 63) expected = 0x15;  // 00 01 01 01
    if (b == 4) expected = 0x95;   // 10 01 01 01
    EXPECT_EQ(block[b], expected) << "byte " << b;
  }
  EXPECT_EQ(block[64], 0x00);  // fp16(1.0) = 0x3c00, little-endian
  EXPECT_EQ(block[65], 0x3c);

  std::vector<int8_t> back(256);
  float scale = 0;
  unpack_tq2_0(block, 256, back.data(), &scale);
  EXPECT_EQ(back, codes);
  EXPECT_EQ(scale, 1.0f);

  // A field of 3 (never written by ggml) decodes to +2, as ggml's dequantizer does.
  block[10] = 0xff;
  unpack_tq2_0(block, 256, back.data(), nullptr);
  EXPECT_EQ(back[10], 2);
  EXPECT_EQ(back[10 + 96], 2);
}

TEST(ggufQuantsTest, Tq1_0ByteLayout) {
  std::vector<int8_t> codes(256, 0);
  uint8_t block[54];
  pack_tq1_0(codes.data(), 256, 0.5f, block);
  // All trits 1: base-3 11111 = 121 → ceil(121·256/243) = 128; qh 1111(0) = 120 → 127.
  for (int b = 0; b < 48; ++b) EXPECT_EQ(block[b], 128) << b;
  for (int b = 48; b < 52; ++b) EXPECT_EQ(block[b], 127) << b;
  EXPECT_EQ(block[52], 0x00);  // fp16(0.5) = 0x3800
  EXPECT_EQ(block[53], 0x38);

  codes[0] = 1;     // byte 0, most significant trit → 21111 = 202 → ceil(51712/243) = 213
  codes[159] = -1;  // byte 31, least significant trit → 11110 = 120 → 127
  codes[160] = -1;  // byte 32, most significant trit → 01111 = 40 → ceil(10240/243) = 43
  codes[239] = 1;   // 160 + 79: byte 32 + 15, trit 4 → 11112 = 122 → ceil(31232/243) = 129
  codes[255] = -1;  // 240 + 15: byte 48 + 3, trit 3 → 1110(0) = 117 → ceil(29952/243) = 124
  codes[240] = 1;   // byte 48, trit 0 → 2111(0) = 201 → ceil(51456/243) = 212
  pack_tq1_0(codes.data(), 256, 0.5f, block);
  EXPECT_EQ(block[0], 213);
  EXPECT_EQ(block[31], 127);
  EXPECT_EQ(block[32], 43);
  EXPECT_EQ(block[47], 129);
  EXPECT_EQ(block[51], 124);
  EXPECT_EQ(block[48], 212);
  EXPECT_EQ(block[1], 128);

  std::vector<int8_t> back(256);
  float scale = 0;
  unpack_tq1_0(block, 256, back.data(), &scale);
  EXPECT_EQ(back, codes);
  EXPECT_EQ(scale, 0.5f);

  // Every byte value decodes to trits in {0, 1, 2}: garbage never leaves the ternary set.
  for (int v = 0; v < 256; ++v) {
    std::memset(block, v, 52);
    unpack_tq1_0(block, 256, back.data(), nullptr);
    for (const int8_t c : back) ASSERT_TRUE(c >= -1 && c <= 1) << v;
  }
}

TEST(ggufQuantsTest, TernaryPackUnpackExactOnRandomCodes) {
  std::mt19937 rng(42);
  const int64_t n = 256 * 64;
  const std::vector<int8_t> codes = random_codes(&rng, n);
  for (const GgmlType type : {GgmlType::kTQ1_0, GgmlType::kTQ2_0}) {
    const float scale = 0.0371f;
    std::vector<uint8_t> packed(row_bytes(type, n).value());
    std::vector<int8_t> back(static_cast<size_t>(n));
    std::vector<float> scales(static_cast<size_t>(n / 256));
    if (type == GgmlType::kTQ1_0) {
      pack_tq1_0(codes.data(), n, scale, packed.data());
      unpack_tq1_0(packed.data(), n, back.data(), scales.data());
    } else {
      pack_tq2_0(codes.data(), n, scale, packed.data());
      unpack_tq2_0(packed.data(), n, back.data(), scales.data());
    }
    EXPECT_EQ(back, codes) << type_name(type);
    const float d = fp16_to_fp32(fp32_to_fp16(scale));
    for (const float s : scales) EXPECT_EQ(s, d);

    // The generic dequantizer agrees with code · d.
    std::vector<float> x(static_cast<size_t>(n));
    dequantize_row(type, packed.data(), n, x.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(x[i], static_cast<float>(codes[i]) * d) << i;

    // Quantizing code · scale (fp32) gives identical bytes: every random block has a nonzero
    // code, so its absmax is exactly the scale.
    std::vector<float> exact(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) exact[i] = static_cast<float>(codes[i]) * scale;
    std::vector<uint8_t> requantized(packed.size());
    quantize_row(type, exact.data(), n, requantized.data());
    EXPECT_EQ(requantized, packed) << type_name(type);
  }
}

TEST(ggufQuantsTest, TernaryQuantizeOfZeroBlockIsZeroScale) {
  std::vector<float> zeros(256, 0.0f);
  for (const GgmlType type : {GgmlType::kTQ1_0, GgmlType::kTQ2_0}) {
    std::vector<uint8_t> packed(static_cast<size_t>(block_bytes(type)));
    quantize_row(type, zeros.data(), 256, packed.data());
    std::vector<float> back(256, 1.0f);
    dequantize_row(type, packed.data(), 256, back.data());
    for (const float v : back) EXPECT_EQ(v, 0.0f);
    EXPECT_EQ(packed[packed.size() - 1], 0);
    EXPECT_EQ(packed[packed.size() - 2], 0);
  }
}

TEST(ggufQuantsTest, DequantizeOfQuantizeIsWithinBounds) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 256 * 8;
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = normal(rng) * 3.0f;
  for (const GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0,
                              GgmlType::kTQ1_0, GgmlType::kTQ2_0}) {
    std::vector<uint8_t> packed(row_bytes(type, n).value());
    quantize_row(type, x.data(), n, packed.data());
    std::vector<float> y(static_cast<size_t>(n));
    dequantize_row(type, packed.data(), n, y.data());
    const int64_t bs = block_size(type);
    for (int64_t b = 0; b < n / bs; ++b) {
      float amax = 0;
      for (int64_t j = 0; j < bs; ++j) amax = std::max(amax, std::fabs(x[b * bs + j]));
      for (int64_t j = 0; j < bs; ++j) {
        const float v = x[b * bs + j];
        const float err = std::fabs(v - y[b * bs + j]);
        float bound = 0;
        switch (type) {
          case GgmlType::kF32:
            bound = 0;
            break;
          case GgmlType::kF16:
            bound = std::fabs(v) * 0x1p-11f + 0x1p-25f;
            break;
          case GgmlType::kBF16:
            bound = std::fabs(v) * 0x1p-8f;
            break;
          case GgmlType::kQ8_0:  // half a step, plus 127 steps of fp16 error in d
            bound = amax / 127 * (0.5f + 127 * 0x1p-11f) + 1e-6f;
            break;
          default:  // ternary: half the block's absmax, plus fp16 error in d
            bound = amax * (0.5f + 0x1p-11f) + 1e-6f;
            break;
        }
        ASSERT_LE(err, bound) << type_name(type) << " element " << b * bs + j;
      }
    }
  }
}

TEST(ggufQuantsTest, NonFiniteInputIsDeterministic) {
  std::vector<float> x(256, 0.25f);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[7] = -0.5f;
  for (const GgmlType type : {GgmlType::kQ8_0, GgmlType::kTQ1_0, GgmlType::kTQ2_0}) {
    std::vector<uint8_t> a(row_bytes(type, 256).value());
    std::vector<uint8_t> b(a.size());
    quantize_row(type, x.data(), 256, a.data());
    quantize_row(type, x.data(), 256, b.data());
    EXPECT_EQ(a, b);
    std::vector<float> y(256);
    dequantize_row(type, a.data(), 256, y.data());
    EXPECT_EQ(y[3], 0.0f) << type_name(type);  // NaN → code 0
    EXPECT_TRUE(std::isfinite(y[7]));
  }
}

}  // namespace
}  // namespace tern
