// Compiled once per SIMD target. Per element, the operations of
// kernels/ref/gated_activation.cpp in its order; tails run the reference's
// scalar code.
#include "kernels/cpu/gated_activation.h"

#include "core/thread_pool.h"
#include "kernels/ref/exp.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/gated_activation.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// Must come after foreach_target.h.
#include <hwy/highway.h>

#include "kernels/cpu/exp-inl.h"

HWY_BEFORE_NAMESPACE();
namespace tern::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// 1 / (1 + e^−x), as ref's sigmoid.
HWY_INLINE VF Sigmoid(DF d, VF x) {
  const VF one = hn::Set(d, 1.0f);
  return hn::Div(one, hn::Add(one, ExpF32(d, hn::Neg(x))));
}

// act(x): x > 0 ? x·x : 0 (ReLU²), or x·sigmoid(x) (SiLU).
HWY_INLINE VF Activate(DF d, VF x, ref::Activation act) {
  if (act == ref::Activation::kReLU2) {
    return hn::IfThenElseZero(hn::Gt(x, hn::Zero(d)), hn::Mul(x, x));
  }
  return hn::Mul(x, Sigmoid(d, x));
}

// act'(x): x > 0 ? 2·x : 0, or s·(1 + x·(1 − s)) with s = sigmoid(x).
HWY_INLINE VF ActivateDerivative(DF d, VF x, ref::Activation act) {
  if (act == ref::Activation::kReLU2) {
    return hn::IfThenElseZero(hn::Gt(x, hn::Zero(d)), hn::Mul(hn::Set(d, 2.0f), x));
  }
  const VF one = hn::Set(d, 1.0f);
  const VF s = Sigmoid(d, x);
  return hn::Mul(s, hn::Add(one, hn::Mul(x, hn::Sub(one, s))));
}

// Elements [begin, end) whose count is a multiple of the lane count.
void ForwardSpan(float* m, const float* gate, const float* up, int64_t begin, int64_t end,
                 ref::Activation act) {
  const DF d;
  for (int64_t i = begin; i < end; i += static_cast<int64_t>(hn::Lanes(d))) {
    hn::StoreU(hn::Mul(Activate(d, hn::LoadU(d, gate + i), act), hn::LoadU(d, up + i)), d, m + i);
  }
}

void BackwardSpan(float* dgate, float* dup, const float* dm, const float* gate, const float* up,
                  int64_t begin, int64_t end, ref::Activation act) {
  const DF d;
  for (int64_t i = begin; i < end; i += static_cast<int64_t>(hn::Lanes(d))) {
    const VF g = hn::LoadU(d, gate + i);
    const VF dmi = hn::LoadU(d, dm + i);
    hn::StoreU(hn::Mul(hn::Mul(dmi, hn::LoadU(d, up + i)), ActivateDerivative(d, g, act)), d,
               dgate + i);
    hn::StoreU(hn::Mul(dmi, Activate(d, g, act)), d, dup + i);
  }
}

int64_t Lanes() {
  return static_cast<int64_t>(hn::Lanes(DF()));
}

}  // namespace HWY_NAMESPACE
}  // namespace tern::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tern::cpu {

HWY_EXPORT(ForwardSpan);
HWY_EXPORT(BackwardSpan);
HWY_EXPORT(Lanes);

namespace {

constexpr int64_t kMinChunk = 4096;  // as the reference's split

// Runs body(begin, end) on whole vectors and tail(begin, end) on the rest, over the pool.
template <typename Body, typename Tail>
void split_elements(int64_t n, const Body& body, const Tail& tail) {
  const int64_t lanes = HWY_DYNAMIC_DISPATCH(Lanes)();
  parallel_for(
      n,
      [&](int64_t begin, int64_t end) {
        const int64_t vector_end = begin + (end - begin) / lanes * lanes;
        body(begin, vector_end);
        if (vector_end < end) tail(vector_end, end);
      },
      kMinChunk);
}

}  // namespace

void gated_activation_forward(float* m, const float* gate, const float* up, int64_t n,
                              ref::Activation act) {
  const auto vectors = [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(ForwardSpan)(m, gate, up, b, e, act);
  };
  const auto tail = [&](int64_t b, int64_t e) {
    ref::gated_activation_forward(m + b, gate + b, up + b, e - b, act);
  };
  split_elements(n, vectors, tail);
}

void gated_activation_backward(float* dgate, float* dup, const float* dm, const float* gate,
                               const float* up, int64_t n, ref::Activation act) {
  const auto vectors = [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(BackwardSpan)(dgate, dup, dm, gate, up, b, e, act);
  };
  const auto tail = [&](int64_t b, int64_t e) {
    ref::gated_activation_backward(dgate + b, dup + b, dm + b, gate + b, up + b, e - b, act);
  };
  split_elements(n, vectors, tail);
}

}  // namespace tern::cpu
#endif  // HWY_ONCE
