// Row pieces of a softmax on vectors (internal to kernels/cpu), shared by the
// attention and cross-entropy kernels: the row max, and the exponentials with
// their sum in ref::sum's 8-lane order, so results keep the references' bits.
// Included by a Highway per-target translation unit; the guard is Highway's, so
// the header is re-read once per target.
#if defined(TERN_KERNELS_CPU_SOFTMAX_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef TERN_KERNELS_CPU_SOFTMAX_INL_H_
#undef TERN_KERNELS_CPU_SOFTMAX_INL_H_
#else
#define TERN_KERNELS_CPU_SOFTMAX_INL_H_
#endif

#include <hwy/highway.h>

#include <cmath>
#include <cstdint>

#include "kernels/cpu/exp-inl.h"
#include "kernels/ref/dot.h"
#include "kernels/ref/exp.h"

HWY_BEFORE_NAMESPACE();
namespace tern::cpu {
namespace HWY_NAMESPACE {

#if HWY_TARGET != HWY_SCALAR
// The vectors that hold ref::sum's 8 lanes: one of 8 floats on AVX2 and
// AVX-512 (a 256-bit tag), two of 4 on 128-bit targets.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
using SumTag = hwy::HWY_NAMESPACE::FixedTag<float, 8>;
#else
using SumTag = hwy::HWY_NAMESPACE::FixedTag<float, 4>;
#endif
inline constexpr int64_t kSumPart = static_cast<int64_t>(hwy::HWY_NAMESPACE::MaxLanes(SumTag()));
inline constexpr int kSumParts = static_cast<int>(8 / kSumPart);
#endif

// Largest of s[0, n): the references' running max for non-NaN input (a max is
// exact in any order).
HWY_INLINE float RowMax(const float* s, int64_t n) {
  float m = -INFINITY;
  int64_t j = 0;
#if HWY_TARGET != HWY_SCALAR
  namespace hn = hwy::HWY_NAMESPACE;
  const SumTag d;
  if (n >= kSumPart) {
    auto vm = hn::Set(d, -INFINITY);
    for (; j + kSumPart <= n; j += kSumPart) vm = hn::Max(vm, hn::LoadU(d, s + j));
    m = hn::GetLane(hn::MaxOfLanes(d, vm));
  }
#endif
  for (; j < n; ++j) {
    if (s[j] > m) m = s[j];
  }
  return m;
}

// e[j] = ref::exp_f32(s[j] − shift) for j < n, stored when kStore (e may equal
// s); returns Σ e[j] in ref::sum's order: element j into lane j mod 8, the
// lanes folded pairwise.
template <bool kStore>
HWY_INLINE float ExpRowSum(float* e, const float* s, int64_t n, float shift) {
  float lanes[8] = {};
#if HWY_TARGET == HWY_SCALAR
  for (int64_t j = 0; j < n; ++j) {
    const float v = ref::exp_f32(s[j] - shift);
    if constexpr (kStore) e[j] = v;
    lanes[j % 8] += v;
  }
#else
  namespace hn = hwy::HWY_NAMESPACE;
  const SumTag d;
  const auto vshift = hn::Set(d, shift);
  hn::Vec<SumTag> acc[kSumParts];
  for (int p = 0; p < kSumParts; ++p) acc[p] = hn::Zero(d);
  // Eight elements from x into the lanes (and to out when kStore).
  auto block = [&](const float* x, float* out) {
    for (int p = 0; p < kSumParts; ++p) {
      const auto v = ExpF32(d, hn::Sub(hn::LoadU(d, x + p * kSumPart), vshift));
      if constexpr (kStore) hn::StoreU(v, d, out + p * kSumPart);
      acc[p] = hn::Add(acc[p], v);
    }
  };
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) block(s + j, kStore ? e + j : nullptr);
  if (j < n) {
    // The tail padded with −inf, whose exponential 0 leaves its lanes' bits
    // unchanged (they are sums of non-negative terms, never −0).
    float tail[8], out[8];
    const int64_t rest = n - j;
    for (int64_t l = 0; l < 8; ++l) tail[l] = l < rest ? s[j + l] : -INFINITY;
    block(tail, out);
    if constexpr (kStore) {
      for (int64_t l = 0; l < rest; ++l) e[j + l] = out[l];
    }
  }
  for (int p = 0; p < kSumParts; ++p) hn::StoreU(acc[p], d, lanes + p * kSumPart);
#endif
  return ref::fold_lanes(lanes);
}

}  // namespace HWY_NAMESPACE
}  // namespace tern::cpu
HWY_AFTER_NAMESPACE();

#endif  // TERN_KERNELS_CPU_SOFTMAX_INL_H_
