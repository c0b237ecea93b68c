// ref::exp_f32 on vectors (internal to kernels/cpu): every lane gets the bits
// the scalar function gives, because each lane runs the same IEEE operations
// in the same order (Highway's Mul and Add are never fused). Included by a
// Highway per-target translation unit inside its HWY_NAMESPACE; the guard below
// is Highway's, so the header is re-read once per target.
#if defined(TERN_KERNELS_CPU_EXP_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef TERN_KERNELS_CPU_EXP_INL_H_
#undef TERN_KERNELS_CPU_EXP_INL_H_
#else
#define TERN_KERNELS_CPU_EXP_INL_H_
#endif

#include <hwy/highway.h>

#include "kernels/ref/exp.h"

HWY_BEFORE_NAMESPACE();
namespace tern::cpu {
namespace HWY_NAMESPACE {

// Lane i = ref::exp_f32(x[i]), for float vectors of any width.
template <class D>
HWY_INLINE hwy::HWY_NAMESPACE::Vec<D> ExpF32(D d, hwy::HWY_NAMESPACE::Vec<D> x) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::RebindToSigned<D> di;
  // Clamped first, so the conversion to integer below sees no out-of-range
  // lane; the lanes outside the range are replaced at the end.
  const auto xc =
      hn::Min(hn::Max(x, hn::Set(d, ref::kExpFlushBelow)), hn::Set(d, ref::kExpOverflow));
  const auto magic = hn::Set(d, ref::kExpRoundMagic);
  const auto n = hn::Sub(hn::Add(hn::Mul(xc, hn::Set(d, ref::kExpLog2e)), magic), magic);
  const auto r = hn::Sub(hn::Sub(xc, hn::Mul(n, hn::Set(d, ref::kExpLn2Hi))),
                         hn::Mul(n, hn::Set(d, ref::kExpLn2Lo)));
  auto q = hn::Set(d, ref::kExpC7);
  q = hn::Add(hn::Mul(q, r), hn::Set(d, ref::kExpC6));
  q = hn::Add(hn::Mul(q, r), hn::Set(d, ref::kExpC5));
  q = hn::Add(hn::Mul(q, r), hn::Set(d, ref::kExpC4));
  q = hn::Add(hn::Mul(q, r), hn::Set(d, ref::kExpC3));
  q = hn::Add(hn::Mul(q, r), hn::Set(d, ref::kExpC2));
  const auto p = hn::Add(hn::Add(hn::Mul(hn::Mul(r, r), q), r), hn::Set(d, 1.0f));
  const auto k = hn::ConvertTo(di, n);
  const auto half = hn::ShiftRight<1>(k);  // arithmetic: floor(k/2)
  const auto bias = hn::Set(di, 127);
  const auto pow_half = hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(half, bias)));
  const auto pow_rest = hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(hn::Sub(k, half), bias)));
  auto result = hn::Mul(hn::Mul(p, pow_half), pow_rest);
  result = hn::IfThenElse(hn::Ge(x, hn::Set(d, ref::kExpOverflow)), hn::Inf(d), result);
  result = hn::IfThenZeroElse(hn::Lt(x, hn::Set(d, ref::kExpFlushBelow)), result);
  return hn::IfThenElse(hn::IsNaN(x), x, result);
}

}  // namespace HWY_NAMESPACE
}  // namespace tern::cpu
HWY_AFTER_NAMESPACE();

#endif  // TERN_KERNELS_CPU_EXP_INL_H_
