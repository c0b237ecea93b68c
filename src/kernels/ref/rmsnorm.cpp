#include "kernels/ref/rmsnorm.h"

#include <cmath>

#include "core/thread_pool.h"
#include "kernels/ref/dot.h"

namespace tern::ref {

template <typename T>
void rmsnorm_forward(T* y, T* inv_rms, const T* x, const T* w, int64_t n, int64_t d, T eps) {
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T* x_row = x + i * d;
      T* y_row = y + i * d;
      const T mean_square = dot(x_row, x_row, d) / static_cast<T>(d);
      const T inv = T(1) / std::sqrt(mean_square + eps);
      inv_rms[i] = inv;
      for (int64_t j = 0; j < d; ++j) y_row[j] = (x_row[j] * inv) * w[j];
    }
  });
}

template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const T* inv_rms,
                      int64_t n, int64_t d) {
  // dw first: it reads dy, which dx may overwrite. Rows in order keep dw deterministic.
  for (int64_t i = 0; i < n; ++i) {
    const T* x_row = x + i * d;
    const T* dy_row = dy + i * d;
    const T inv = inv_rms[i];
    for (int64_t j = 0; j < d; ++j) dw[j] += dy_row[j] * (x_row[j] * inv);
  }
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T* x_row = x + i * d;
      const T* dy_row = dy + i * d;
      T* dx_row = dx + i * d;
      const T inv = inv_rms[i];
      // With g = dy·w: dx = inv·g − inv³ · x · mean(g·x).
      T g_dot_x = T(0);
      for (int64_t j = 0; j < d; ++j) g_dot_x += (dy_row[j] * w[j]) * x_row[j];
      const T coeff = inv * inv * inv * g_dot_x / static_cast<T>(d);
      for (int64_t j = 0; j < d; ++j) dx_row[j] = inv * (dy_row[j] * w[j]) - coeff * x_row[j];
    }
  });
}

#define TERN_INSTANTIATE(T)                                                                  \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, T);         \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, \
                                    int64_t);
TERN_INSTANTIATE(float)
TERN_INSTANTIATE(double)
#undef TERN_INSTANTIATE

}  // namespace tern::ref
