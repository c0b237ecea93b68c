// Compiled once per SIMD target. Each function below mirrors one of
// core/portable_math.cpp's, restricted to the arguments Box–Muller gives it; the
// comments name the scalar steps so the two stay in step.
#include "kernels/cpu/box_muller.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/box_muller.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// Must come after foreach_target.h.
#include <hwy/highway.h>

#include <cstddef>
#include <numbers>

#include "core/portable_math_terms.h"
#include "core/rng.h"
#include "core/thread_pool.h"

HWY_BEFORE_NAMESPACE();
namespace tern::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_HAVE_FLOAT64
namespace terms = portable_math_terms;
using DD = hn::ScalableTag<double>;
using VD = hn::Vec<DD>;

// horner(): ((c[0]·x + c[1])·x + …) + c[n−1], a multiply then an add per step.
template <size_t N>
HWY_INLINE VD Horner(DD d, const double (&c)[N], VD x) {
  VD p = hn::Set(d, c[0]);
  for (size_t k = 1; k < N; ++k) p = hn::Add(hn::Mul(p, x), hn::Set(d, c[k]));
  return p;
}

// portable_log(x) for positive normal x (no special cases to take).
HWY_INLINE VD LogOfNormal(DD d, VD x) {
  const hn::RebindToUnsigned<DD> du;
  const auto bits = hn::BitCast(du, x);
  // The scalar code's integer exponent, here as a double: the biased exponent
  // placed in the low bits of 2^52, minus 2^52, minus the bias; all exact.
  const VD biased =
      hn::Sub(hn::BitCast(d, hn::Or(hn::ShiftRight<52>(bits), hn::Set(du, uint64_t{0x433} << 52))),
              hn::Set(d, 0x1p52));
  VD e = hn::Sub(biased, hn::Set(d, 1023.0));
  VD m = hn::BitCast(d, hn::Or(hn::And(bits, hn::Set(du, terms::kMantissaMask)),
                               hn::Set(du, uint64_t{1023} << 52)));  // [1, 2)
  const auto above = hn::Gt(m, hn::Set(d, terms::kSqrt2));
  m = hn::IfThenElse(above, hn::Mul(m, hn::Set(d, 0.5)), m);
  e = hn::IfThenElse(above, hn::Add(e, hn::Set(d, 1.0)), e);
  const VD f = hn::Sub(m, hn::Set(d, 1.0));
  const VD s = hn::Div(f, hn::Add(hn::Set(d, 2.0), f));
  const VD z = hn::Mul(s, s);
  const VD big_r = hn::Mul(z, Horner(d, terms::kLogTerms, z));
  const VD half_f2 = hn::Mul(hn::Mul(hn::Set(d, 0.5), f), f);
  // e·ln2_hi + (f − (f²/2 − (s·(f²/2 + R) + e·ln2_lo)))
  const VD tail =
      hn::Add(hn::Mul(s, hn::Add(half_f2, big_r)), hn::Mul(e, hn::Set(d, terms::kLn2Lo)));
  return hn::Add(hn::Mul(e, hn::Set(d, terms::kLn2Hi)), hn::Sub(f, hn::Sub(half_f2, tail)));
}

// portable_sincos(x) for finite 0 ≤ x ≤ kPortableTrigMaxArg: the same
// three-part reduction, sin_kernel, cos_kernel and quadrant swap.
HWY_INLINE void SinCosOf(DD d, VD x, VD& sin_x, VD& cos_x) {
  const VD one = hn::Set(d, 1.0);
  const VD half = hn::Set(d, 0.5);
  const VD n = hn::Round(hn::Mul(x, hn::Set(d, terms::kTwoOverPi)));  // ties to even
  const VD t = hn::Sub(x, hn::Mul(n, hn::Set(d, terms::kPio2Part1)));
  const VD w = hn::Mul(n, hn::Set(d, terms::kPio2Part2));
  const VD t_minus_w = hn::Sub(t, w);
  const VD correction =
      hn::Sub(hn::Mul(n, hn::Set(d, terms::kPio2Part3)), hn::Sub(hn::Sub(t, t_minus_w), w));
  const VD hi = hn::Sub(t_minus_w, correction);
  const VD lo = hn::Sub(hn::Sub(t_minus_w, hi), correction);
  const VD z = hn::Mul(hi, hi);
  // sin_kernel: hi + (hi·z·P(z) + lo·(1 − z/2))
  const VD s = hn::Add(hi, hn::Add(hn::Mul(hn::Mul(hi, z), Horner(d, terms::kSinTerms, z)),
                                   hn::Mul(lo, hn::Sub(one, hn::Mul(half, z)))));
  // cos_kernel: w + (((1 − w) − z/2) + (z²·Q(z) − hi·lo)) with w = 1 − z/2
  const VD half_z = hn::Mul(half, z);
  const VD w_cos = hn::Sub(one, half_z);
  const VD c = hn::Add(
      w_cos,
      hn::Add(hn::Sub(hn::Sub(one, w_cos), half_z),
              hn::Sub(hn::Mul(hn::Mul(z, z), Horner(d, terms::kCosTerms, z)), hn::Mul(hi, lo))));
  // Quadrant n mod 4 (the scalar code's int64 n & 3), exactly in doubles.
  const VD q = hn::Sub(n, hn::Mul(hn::Set(d, 4.0), hn::Floor(hn::Mul(n, hn::Set(d, 0.25)))));
  const auto odd = hn::Or(hn::Eq(q, one), hn::Eq(q, hn::Set(d, 3.0)));
  const VD sin_mag = hn::IfThenElse(odd, c, s);
  const VD cos_mag = hn::IfThenElse(odd, s, c);
  sin_x = hn::IfThenElse(hn::Ge(q, hn::Set(d, 2.0)), hn::Neg(sin_mag), sin_mag);
  cos_x =
      hn::IfThenElse(hn::Or(hn::Eq(q, one), hn::Eq(q, hn::Set(d, 2.0))), hn::Neg(cos_mag), cos_mag);
}
#endif  // HWY_HAVE_FLOAT64

void BoxMullerPairs(double* slots, int64_t begin, int64_t end) {
  int64_t k = begin;
#if HWY_HAVE_FLOAT64
  const DD d;
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  for (; k + lanes <= end; k += lanes) {
    VD u1, u2;
    hn::LoadInterleaved2(d, slots + 2 * k, u1, u2);
    // box_muller: √(−2·log u1) times cos and sin of 2π·u2.
    const VD radius = hn::Sqrt(hn::Mul(hn::Set(d, -2.0), LogOfNormal(d, u1)));
    VD sin_angle, cos_angle;
    SinCosOf(d, hn::Mul(hn::Set(d, 2.0 * std::numbers::pi), u2), sin_angle, cos_angle);
    hn::StoreInterleaved2(hn::Mul(radius, cos_angle), hn::Mul(radius, sin_angle), d, slots + 2 * k);
  }
#endif
  for (; k < end; ++k) {
    const NormalPair pair = box_muller(slots[2 * k], slots[2 * k + 1]);
    slots[2 * k] = pair.first;
    slots[2 * k + 1] = pair.second;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace tern::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tern::cpu {

HWY_EXPORT(BoxMullerPairs);

void box_muller_pairs(double* slots, int64_t pairs) {
  parallel_for(
      pairs,
      [&](int64_t begin, int64_t end) {
        HWY_DYNAMIC_DISPATCH(BoxMullerPairs)
        (slots, begin, end);
      },
      4096);
}

}  // namespace tern::cpu
#endif  // HWY_ONCE
