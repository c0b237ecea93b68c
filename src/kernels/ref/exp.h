// tern's own single-precision exponential, the one the softmaxes (attention,
// cross-entropy) and the SiLU gate use. Thread-safe (no state).
//
// Why not std::exp: libm's expf need not be correctly rounded, so each C
// library may round its own way (glibc's gives the same bits on x86-64 and
// aarch64; nothing promises that Apple's or MSVC's match it), and these
// exponentials feed every weight update: one different bit and two swarm
// members drift apart. exp_f32 uses only IEEE additions and multiplications in a fixed order
// (the project builds with -ffp-contract=off, so none is fused), which every
// platform rounds the same way. kernels/cpu/exp-inl.h runs the same operations
// lane by lane, so a SIMD softmax keeps these bits.
//
// Method: n = round(x·log2 e) (ties to even, by adding and subtracting 1.5·2^23);
// r = x − n·ln 2 with ln 2 split in two parts (Cody and Waite), |r| ≤ 0.347;
// e^r = 1 + (r + r²·q(r)), q the Taylor terms of degree 2 to 7 divided by r²,
// in Horner form; then ·2^n as two power-of-two factors, so n = 128 (x just
// below the overflow bound) needs no special case. Within 1.01 ulp of e^x and
// correctly rounded for 90% of inputs (glibc's expf: 0.502 ulp, 99.9%; see
// docs/kernels.md); tests/kernels/exp_test.cpp checks the bound.
//
// Range: NaN gives NaN; x ≥ kExpOverflow gives +inf; x < kExpFlushBelow gives
// +0. Every other result is a normal float, never subnormal, so flush-to-zero
// modes cannot change a result.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/portable_math.h"

namespace tern::ref {

// The smallest float whose exponential rounds to +inf.
inline constexpr float kExpOverflow = 88.72283935546875f;
// Below this, e^x < 1.7e-38, near the smallest normal float: returned as 0.
inline constexpr float kExpFlushBelow = -87.0f;

inline constexpr float kExpLog2e = 1.44269502162933349609375f;  // log2 e rounded to float
inline constexpr float kExpRoundMagic = 12582912.0f;            // 1.5·2^23
inline constexpr float kExpLn2Hi = 0.693359375f;  // 355/512: n·kExpLn2Hi is exact for |n| ≤ 2^15
inline constexpr float kExpLn2Lo = -2.12194440e-4f;  // ln 2 − kExpLn2Hi
// 1/k! for k = 2..7.
inline constexpr float kExpC2 = 1.0f / 2.0f;
inline constexpr float kExpC3 = 1.0f / 6.0f;
inline constexpr float kExpC4 = 1.0f / 24.0f;
inline constexpr float kExpC5 = 1.0f / 120.0f;
inline constexpr float kExpC6 = 1.0f / 720.0f;
inline constexpr float kExpC7 = 1.0f / 5040.0f;

// 2^k for −126 ≤ k ≤ 127.
inline float exp_pow2(int32_t k) {
  return std::bit_cast<float>(static_cast<uint32_t>(k + 127) << 23);
}

inline float exp_f32(float x) {
  if (x != x) return x;
  if (x >= kExpOverflow) return std::numeric_limits<float>::infinity();
  if (x < kExpFlushBelow) return 0.0f;
  const float n = (x * kExpLog2e + kExpRoundMagic) - kExpRoundMagic;  // in [−126, 128]
  const float r = (x - n * kExpLn2Hi) - n * kExpLn2Lo;
  float q = kExpC7;
  q = q * r + kExpC6;
  q = q * r + kExpC5;
  q = q * r + kExpC4;
  q = q * r + kExpC3;
  q = q * r + kExpC2;
  // 1 is added last, to the small part r + r²·q, which keeps its low bits.
  const float p = (r * r * q + r) + 1.0f;
  const int32_t k = static_cast<int32_t>(n);
  const int32_t half = k >> 1;  // floor(k/2): both factors stay in [−63, 64]
  return p * exp_pow2(half) * exp_pow2(k - half);
}

// The exponential of the templated reference kernels: exp_f32 for float;
// portable_exp (core/portable_math.h) for double, which the gradient checks run.
template <typename T>
T kernel_exp(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return exp_f32(x);
  } else {
    return portable_exp(x);
  }
}

}  // namespace tern::ref
