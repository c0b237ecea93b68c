#include "kernels/ref/gated_activation.h"

#include "core/thread_pool.h"
#include "kernels/ref/exp.h"

namespace tern::ref {
namespace {

constexpr int64_t kMinChunk = 4096;

template <typename T>
T sigmoid(T x) {
  return T(1) / (T(1) + kernel_exp(-x));
}

template <typename T>
T activate(T x, Activation act) {
  if (act == Activation::kReLU2) return x > T(0) ? x * x : T(0);
  return x * sigmoid(x);
}

template <typename T>
T activate_derivative(T x, Activation act) {
  if (act == Activation::kReLU2) return x > T(0) ? T(2) * x : T(0);
  const T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

}  // namespace

template <typename T>
void gated_activation_forward(T* m, const T* gate, const T* up, int64_t n, Activation act) {
  parallel_for(
      n,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) m[i] = activate(gate[i], act) * up[i];
      },
      kMinChunk);
}

template <typename T>
void gated_activation_backward(T* dgate, T* dup, const T* dm, const T* gate, const T* up, int64_t n,
                               Activation act) {
  parallel_for(
      n,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const T g = gate[i];
          dgate[i] = dm[i] * up[i] * activate_derivative(g, act);
          dup[i] = dm[i] * activate(g, act);
        }
      },
      kMinChunk);
}

#define TERN_INSTANTIATE(T)                                                                 \
  template void gated_activation_forward<T>(T*, const T*, const T*, int64_t, Activation);   \
  template void gated_activation_backward<T>(T*, T*, const T*, const T*, const T*, int64_t, \
                                             Activation);
TERN_INSTANTIATE(float)
TERN_INSTANTIATE(double)
#undef TERN_INSTANTIATE

}  // namespace tern::ref
