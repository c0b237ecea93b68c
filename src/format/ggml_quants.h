// ggml tensor element types that tern reads and writes, bit-exact with ggml.
//
// Every layout and rounding rule here was checked against ggml's sources (ggml-common.h for the
// block structs, ggml-quants.c for quantize_row_*_ref / dequantize_row_*, ggml-impl.h for the
// fp16/bf16 conversions), so a file tern writes decodes identically in llama.cpp and vice versa.
//
//   type   id  elements/block  bytes/block  block layout
//   F32     0        1              4       little-endian IEEE binary32
//   F16     1        1              2       IEEE binary16
//   Q8_0    8       32             34       fp16 d, then 32 × int8 q;          x = d·q
//   BF16   30        1              2       top half of a binary32
//   TQ1_0  34      256             54       48 B base-3 qs, 4 B qh, fp16 d;   x = d·(t−1)
//   TQ2_0  35      256             66       64 B of 2-bit codes, fp16 d;      x = d·(c−1)
//
// Element order inside the ternary blocks is interleaved, not sequential (e = element index
// within its 256-element block):
//   TQ2_0: element e sits in byte 32·(e/128) + e%32 at bits 2·((e%128)/32); the code is q+1.
//   TQ1_0: a byte holds up to five trits t = q+1 as the base-3 number t0·81 + t1·27 + t2·9 +
//          t3·3 + t4 (t0 most significant), stored as ceil(number·256/243) so that trit n is
//          recovered as ((uint8)(byte·3^n)·3) >> 8. Elements 0..159 use bytes 0..31 (e in byte
//          e%32, trit e/32); elements 160..239 use bytes 32..47 (e' = e−160: byte 32 + e'%16,
//          trit e'/16); elements 240..255 use qh bytes 48..51 (e' = e−240: byte 48 + e'%4,
//          trit e'/4, the fifth trit always 0).
//
// Conversions: fp32→fp16 rounds to nearest even; overflow gives ±inf; NaN becomes the quiet NaN
// sign|0x7E00 (ggml's portable C path; its F16C path would keep payload bits, so NaN payloads are
// the one place ggml builds differ). fp32→bf16 rounds to nearest even and keeps subnormals; NaN
// keeps its top 16 bits with the quiet bit (0x40) forced on, as current ggml does.
//
// Quantizers follow ggml's reference row quantizers exactly for finite input: Q8_0 uses
// d = amax/127, id = d ? 1/d : 0, q = roundf(x·id); TQ1_0/TQ2_0 use d = amax of the block,
// t = lroundf(x·id) + 1. Non-finite input (where ggml's behaviour is undefined) gives a
// deterministic result: NaN never wins the amax, and a code that is NaN becomes 0, others clamp.
//
// All functions are pure and reentrant. Sizes that are not a multiple of the block size are a
// caller bug and hit TERN_CHECK; row_bytes() is the place to validate untrusted shapes.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace tern {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ8_0 = 8,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
};

inline constexpr int64_t kQ8_0BlockSize = 32;
inline constexpr int64_t kTernaryBlockSize = 256;  // QK_K, for TQ1_0 and TQ2_0

// Elements per block: 1, 1, 32, 1, 256, 256 in the order of the enum.
int64_t block_size(GgmlType type);
// Bytes per block: 4, 2, 34, 2, 54, 66.
int64_t block_bytes(GgmlType type);
// ggml's name: "F32", "F16", "Q8_0", "BF16", "TQ1_0", "TQ2_0".
const char* type_name(GgmlType type);
// ggml's name for any ggml type id, including ones tern does not support ("Q4_K"), or "?".
const char* ggml_type_id_name(uint32_t id);

// Validates an on-disk type id. Unsupported ids give an error naming the id (and its ggml name).
Result<GgmlType> parse_ggml_type(uint32_t id);

// Bytes of one row of ne0 elements. Errors if ne0 < 0, ne0 is not a multiple of the block size,
// or the byte count overflows.
Result<uint64_t> row_bytes(GgmlType type, int64_t ne0);

uint16_t fp32_to_fp16(float f);
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);
float bf16_to_fp32(uint16_t h);

// Exact ternary codes ↔ TQ blocks. n is a multiple of 256; codes are in {−1, 0, 1} (CHECKed);
// every block gets d = fp16(scale). unpack writes n codes and, if block_scales is not null, the
// n/256 per-block scales as fp32. A TQ2_0 field of 3 (never written by ggml) unpacks to +2, which
// is what ggml's dequantizer makes of it; TQ1_0 always yields ternary codes.
void pack_tq2_0(const int8_t* codes, int64_t n, float scale, uint8_t* out);
void unpack_tq2_0(const uint8_t* in, int64_t n, int8_t* codes, float* block_scales);
void pack_tq1_0(const int8_t* codes, int64_t n, float scale, uint8_t* out);
void unpack_tq1_0(const uint8_t* in, int64_t n, int8_t* codes, float* block_scales);

// x[n] → n/block_size(type) blocks in out, like ggml's reference quantizer for the type.
void quantize_row(GgmlType type, const float* x, int64_t n, uint8_t* out);
// Blocks → x[n], like ggml's dequantize_row_* for the type.
void dequantize_row(GgmlType type, const uint8_t* in, int64_t n, float* out);

}  // namespace tern
