#include "format/ggml_quants.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

namespace tern {
namespace {

static_assert(std::endian::native == std::endian::little,
              "GGUF/ggml data is little-endian; tern reads it in place");

constexpr int64_t kTq1QsBytes = 48;  // (256 - 4·256/64) / 5
constexpr int64_t kTq1QhBytes = 4;   // 256 / 64
constexpr int64_t kTq2QsBytes = 64;  // 256 / 4

struct TypeTraits {
  GgmlType type;
  const char* name;
  int64_t block_size;
  int64_t block_bytes;
};

constexpr TypeTraits kTraits[] = {
    {GgmlType::kF32, "F32", 1, 4},
    {GgmlType::kF16, "F16", 1, 2},
    {GgmlType::kQ8_0, "Q8_0", kQ8_0BlockSize, 2 + kQ8_0BlockSize},
    {GgmlType::kBF16, "BF16", 1, 2},
    {GgmlType::kTQ1_0, "TQ1_0", kTernaryBlockSize, kTq1QsBytes + kTq1QhBytes + 2},
    {GgmlType::kTQ2_0, "TQ2_0", kTernaryBlockSize, kTq2QsBytes + 2},
};

const TypeTraits& traits(GgmlType type) {
  for (const TypeTraits& t : kTraits) {
    if (t.type == type) return t;
  }
  TERN_CHECK(false, "unknown GgmlType ", static_cast<uint32_t>(type));
  return kTraits[0];  // unreachable
}

uint16_t load_u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
void store_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

// amax that ignores NaN (ggml's MAX would let a NaN through and then hit undefined behaviour).
float block_absmax(const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  return amax;
}

// lroundf(v) clamped to [lo, hi]; NaN → 0. For the finite in-range values ggml produces this is
// exactly lroundf (and roundf, which rounds halves the same way: away from zero).
int round_clamped(float v, int lo, int hi) {
  if (std::isnan(v)) return 0;
  if (v <= static_cast<float>(lo)) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(std::lround(v));
}

void check_codes_ternary(const int8_t* codes, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    TERN_CHECK(codes[i] >= -1 && codes[i] <= 1, "code ", int{codes[i]}, " at ", i,
               " is not ternary");
  }
}

void check_blocks(GgmlType type, int64_t n) {
  TERN_CHECK(n >= 0 && n % block_size(type) == 0, type_name(type), ": ", n,
             " elements is not a multiple of the block size ", block_size(type));
}

// TQ2_0: position of element e (0..255) inside the 64 code bytes.
int64_t tq2_byte(int64_t e) {
  return 32 * (e / 128) + e % 32;
}
int tq2_shift(int64_t e) {
  return static_cast<int>(2 * ((e % 128) / 32));
}

// TQ1_0: byte and trit index (0 = most significant) of element e (0..255) within the block's
// first 52 bytes (qs then qh).
void tq1_position(int64_t e, int64_t* byte, int* trit) {
  if (e < 160) {
    *byte = e % 32;
    *trit = static_cast<int>(e / 32);
  } else if (e < 240) {
    *byte = 32 + (e - 160) % 16;
    *trit = static_cast<int>((e - 160) / 16);
  } else {
    *byte = kTq1QsBytes + (e - 240) % 4;
    *trit = static_cast<int>((e - 240) / 4);
  }
}

// Packs the block's trits t = code+1 (t[256] in element order) into the 52 qs/qh bytes.
void tq1_pack_trits(const uint8_t* t, uint8_t* out) {
  // Accumulate each byte's five-trit base-3 number, most significant trit first. qh bytes only
  // get four trits; their fifth (least significant) stays 0, as in ggml.
  int value[kTq1QsBytes + kTq1QhBytes] = {};
  int trits_in[kTq1QsBytes + kTq1QhBytes] = {};
  for (int64_t e = 0; e < kTernaryBlockSize; ++e) {
    int64_t byte;
    int trit;
    tq1_position(e, &byte, &trit);
    TERN_CHECK(trit == trits_in[byte], "tq1 layout visits trits out of order");
    value[byte] = value[byte] * 3 + t[e];
    ++trits_in[byte];
  }
  for (int64_t b = 0; b < kTq1QsBytes + kTq1QhBytes; ++b) {
    int v = value[b];
    for (int k = trits_in[b]; k < 5; ++k) v *= 3;
    // Fixed-point 256/243 with ceiling, so decoding by multiply-and-shift recovers every trit.
    out[b] = static_cast<uint8_t>((v * 256 + 242) / 243);
  }
}

int tq1_trit(uint8_t byte, int trit) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const auto q = static_cast<uint8_t>(byte * kPow3[trit]);  // wraps mod 256 on purpose
  return (q * 3) >> 8;
}

void tq1_unpack_trits(const uint8_t* in, int8_t* codes) {
  for (int64_t e = 0; e < kTernaryBlockSize; ++e) {
    int64_t byte;
    int trit;
    tq1_position(e, &byte, &trit);
    codes[e] = static_cast<int8_t>(tq1_trit(in[byte], trit) - 1);
  }
}

void tq2_pack_codes(const int8_t* codes, uint8_t* out) {
  std::memset(out, 0, kTq2QsBytes);
  for (int64_t e = 0; e < kTernaryBlockSize; ++e) {
    out[tq2_byte(e)] |= static_cast<uint8_t>((codes[e] + 1) << tq2_shift(e));
  }
}

void tq2_unpack_codes(const uint8_t* in, int8_t* codes) {
  for (int64_t e = 0; e < kTernaryBlockSize; ++e) {
    codes[e] = static_cast<int8_t>(((in[tq2_byte(e)] >> tq2_shift(e)) & 3) - 1);
  }
}

// Ternary codes of one block as ggml's reference quantizer picks them; returns d.
float ternary_block_codes(const float* x, int8_t* codes) {
  const float d = block_absmax(x, kTernaryBlockSize);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int64_t j = 0; j < kTernaryBlockSize; ++j) {
    codes[j] = static_cast<int8_t>(round_clamped(x[j] * id, -1, 1));
  }
  return d;
}

}  // namespace

int64_t block_size(GgmlType type) {
  return traits(type).block_size;
}
int64_t block_bytes(GgmlType type) {
  return traits(type).block_bytes;
}
const char* type_name(GgmlType type) {
  return traits(type).name;
}

const char* ggml_type_id_name(uint32_t id) {
  // ggml.h's enum ggml_type; ids 4 and 5 were removed, 31-33 and 36-38 are gone or unassigned.
  static constexpr const char* kNames[] = {
      "F32",     "F16",    "Q4_0",    "Q4_1",  "?",      "?",     "Q5_0",  "Q5_1",
      "Q8_0",    "Q8_1",   "Q2_K",    "Q3_K",  "Q4_K",   "Q5_K",  "Q6_K",  "Q8_K",
      "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
      "I8",      "I16",    "I32",     "I64",   "F64",    "IQ1_M", "BF16",  "?",
      "?",       "?",      "TQ1_0",   "TQ2_0", "?",      "?",     "?",     "MXFP4",
  };
  return id < std::size(kNames) ? kNames[id] : "?";
}

Result<GgmlType> parse_ggml_type(uint32_t id) {
  for (const TypeTraits& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == id) return t.type;
  }
  return Status::Error("unsupported ggml type " + std::to_string(id) + " (" +
                       ggml_type_id_name(id) +
                       "); tern supports F32, F16, Q8_0, BF16, TQ1_0, TQ2_0");
}

Result<uint64_t> row_bytes(GgmlType type, int64_t ne0) {
  const TypeTraits& t = traits(type);
  if (ne0 < 0) {
    return Status::Error(std::string(t.name) + " row of " + std::to_string(ne0) + " elements");
  }
  if (ne0 % t.block_size != 0) {
    return Status::Error(std::string(t.name) + " row of " + std::to_string(ne0) +
                         " elements is not a multiple of the block size " +
                         std::to_string(t.block_size));
  }
  const auto blocks = static_cast<uint64_t>(ne0 / t.block_size);
  const auto bytes = static_cast<uint64_t>(t.block_bytes);
  if (blocks > std::numeric_limits<uint64_t>::max() / bytes) {
    return Status::Error(std::string(t.name) + " row of " + std::to_string(ne0) +
                         " elements overflows 64-bit byte counts");
  }
  return blocks * bytes;
}

uint16_t fp32_to_fp16(float f) {
  const auto x = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;  // NaN
  // 65520 is halfway between 65504 (max half) and 65536; ties-to-even picks 65536 = inf.
  if (abs >= 0x477ff000u) return sign | 0x7c00u;
  if (abs >= 0x38800000u) {  // |f| ≥ 2^-14: normal half
    // Round the 13 dropped mantissa bits to nearest even; a carry ripples into the exponent,
    // which is exactly right. Then rebias the exponent from 127 to 15.
    const uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((rounded - (112u << 23)) >> 13));
  }
  // Subnormal half (or zero): count units of 2^-24. Adding 0.5f puts the value where the float
  // ulp is 2^-24, so the FPU's round-to-nearest-even does the rounding; 1024 units (a carry into
  // the exponent) is the smallest normal half, which the bit pattern encodes correctly.
  const float shifted = std::bit_cast<float>(abs) + 0.5f;
  return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(shifted) - 0x3f000000u));
}

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
  // Zero or subnormal: mant · 2^-24 is exact in float.
  const float magnitude = static_cast<float>(mant) * 0x1p-24f;
  return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(magnitude));
}

uint16_t fp32_to_bf16(float f) {
  const auto x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

float bf16_to_fp32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

void pack_tq2_0(const int8_t* codes, int64_t n, float scale, uint8_t* out) {
  check_blocks(GgmlType::kTQ2_0, n);
  check_codes_ternary(codes, n);
  const uint16_t d = fp32_to_fp16(scale);
  for (int64_t b = 0; b < n / kTernaryBlockSize; ++b) {
    uint8_t* block = out + b * block_bytes(GgmlType::kTQ2_0);
    tq2_pack_codes(codes + b * kTernaryBlockSize, block);
    store_u16(block + kTq2QsBytes, d);
  }
}

void unpack_tq2_0(const uint8_t* in, int64_t n, int8_t* codes, float* block_scales) {
  check_blocks(GgmlType::kTQ2_0, n);
  for (int64_t b = 0; b < n / kTernaryBlockSize; ++b) {
    const uint8_t* block = in + b * block_bytes(GgmlType::kTQ2_0);
    tq2_unpack_codes(block, codes + b * kTernaryBlockSize);
    if (block_scales != nullptr) block_scales[b] = fp16_to_fp32(load_u16(block + kTq2QsBytes));
  }
}

void pack_tq1_0(const int8_t* codes, int64_t n, float scale, uint8_t* out) {
  check_blocks(GgmlType::kTQ1_0, n);
  check_codes_ternary(codes, n);
  const uint16_t d = fp32_to_fp16(scale);
  uint8_t trits[kTernaryBlockSize];
  for (int64_t b = 0; b < n / kTernaryBlockSize; ++b) {
    uint8_t* block = out + b * block_bytes(GgmlType::kTQ1_0);
    for (int64_t e = 0; e < kTernaryBlockSize; ++e) {
      trits[e] = static_cast<uint8_t>(codes[b * kTernaryBlockSize + e] + 1);
    }
    tq1_pack_trits(trits, block);
    store_u16(block + kTq1QsBytes + kTq1QhBytes, d);
  }
}

void unpack_tq1_0(const uint8_t* in, int64_t n, int8_t* codes, float* block_scales) {
  check_blocks(GgmlType::kTQ1_0, n);
  for (int64_t b = 0; b < n / kTernaryBlockSize; ++b) {
    const uint8_t* block = in + b * block_bytes(GgmlType::kTQ1_0);
    tq1_unpack_trits(block, codes + b * kTernaryBlockSize);
    if (block_scales != nullptr) {
      block_scales[b] = fp16_to_fp32(load_u16(block + kTq1QsBytes + kTq1QhBytes));
    }
  }
}

void quantize_row(GgmlType type, const float* x, int64_t n, uint8_t* out) {
  check_blocks(type, n);
  switch (type) {
    case GgmlType::kF32:
      if (n > 0) std::memcpy(out, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) store_u16(out + 2 * i, fp32_to_fp16(x[i]));
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) store_u16(out + 2 * i, fp32_to_bf16(x[i]));
      return;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < n / kQ8_0BlockSize; ++b) {
        const float* xb = x + b * kQ8_0BlockSize;
        uint8_t* block = out + b * block_bytes(type);
        const float d = block_absmax(xb, kQ8_0BlockSize) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(block, fp32_to_fp16(d));
        for (int64_t j = 0; j < kQ8_0BlockSize; ++j) {
          block[2 + j] =
              static_cast<uint8_t>(static_cast<int8_t>(round_clamped(xb[j] * id, -127, 127)));
        }
      }
      return;
    case GgmlType::kTQ1_0:
    case GgmlType::kTQ2_0: {
      int8_t codes[kTernaryBlockSize];
      uint8_t trits[kTernaryBlockSize];
      for (int64_t b = 0; b < n / kTernaryBlockSize; ++b) {
        uint8_t* block = out + b * block_bytes(type);
        const float d = ternary_block_codes(x + b * kTernaryBlockSize, codes);
        if (type == GgmlType::kTQ2_0) {
          tq2_pack_codes(codes, block);
          store_u16(block + kTq2QsBytes, fp32_to_fp16(d));
        } else {
          for (int64_t e = 0; e < kTernaryBlockSize; ++e) {
            trits[e] = static_cast<uint8_t>(codes[e] + 1);
          }
          tq1_pack_trits(trits, block);
          store_u16(block + kTq1QsBytes + kTq1QhBytes, fp32_to_fp16(d));
        }
      }
      return;
    }
  }
  TERN_CHECK(false, "unknown GgmlType ", static_cast<uint32_t>(type));
}

void dequantize_row(GgmlType type, const uint8_t* in, int64_t n, float* out) {
  check_blocks(type, n);
  switch (type) {
    case GgmlType::kF32:
      if (n > 0) std::memcpy(out, in, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(load_u16(in + 2 * i));
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(load_u16(in + 2 * i));
      return;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < n / kQ8_0BlockSize; ++b) {
        const uint8_t* block = in + b * block_bytes(type);
        const float d = fp16_to_fp32(load_u16(block));
        for (int64_t j = 0; j < kQ8_0BlockSize; ++j) {
          out[b * kQ8_0BlockSize + j] = static_cast<float>(static_cast<int8_t>(block[2 + j])) * d;
        }
      }
      return;
    case GgmlType::kTQ1_0:
    case GgmlType::kTQ2_0: {
      int8_t codes[kTernaryBlockSize];
      const int64_t scale_at = type == GgmlType::kTQ2_0 ? kTq2QsBytes : kTq1QsBytes + kTq1QhBytes;
      for (int64_t b = 0; b < n / kTernaryBlockSize; ++b) {
        const uint8_t* block = in + b * block_bytes(type);
        if (type == GgmlType::kTQ2_0) {
          tq2_unpack_codes(block, codes);
        } else {
          tq1_unpack_trits(block, codes);
        }
        const float d = fp16_to_fp32(load_u16(block + scale_at));
        for (int64_t e = 0; e < kTernaryBlockSize; ++e) {
          out[b * kTernaryBlockSize + e] = static_cast<float>(codes[e]) * d;
        }
      }
      return;
    }
  }
  TERN_CHECK(false, "unknown GgmlType ", static_cast<uint32_t>(type));
}

}  // namespace tern
