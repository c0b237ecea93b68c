#include "kernels/ref/linear.h"

#include "core/thread_pool.h"
#include "kernels/ref/dot.h"

namespace tern::ref {

template <typename T>
void linear_forward(T* y, const T* x, const T* w, int64_t n, int64_t in, int64_t out) {
  // Split over output features: each thread streams x and keeps its rows of W hot.
  parallel_for(out, [&](int64_t o_begin, int64_t o_end) {
    for (int64_t o = o_begin; o < o_end; ++o) {
      const T* w_row = w + o * in;
      for (int64_t i = 0; i < n; ++i) y[i * out + o] = dot(x + i * in, w_row, in);
    }
  });
}

template <typename T>
void linear_backward_input(T* dx, const T* dy, const T* w, int64_t n, int64_t in, int64_t out) {
  parallel_for(n, [&](int64_t i_begin, int64_t i_end) {
    for (int64_t i = i_begin; i < i_end; ++i) {
      T* dx_row = dx + i * in;
      for (int64_t k = 0; k < in; ++k) dx_row[k] = T(0);
      for (int64_t o = 0; o < out; ++o) {
        const T g = dy[i * out + o];
        const T* w_row = w + o * in;
        for (int64_t k = 0; k < in; ++k) dx_row[k] += g * w_row[k];
      }
    }
  });
}

template <typename T>
void linear_backward_weight(T* dw, const T* dy, const T* x, int64_t n, int64_t in, int64_t out) {
  parallel_for(out, [&](int64_t o_begin, int64_t o_end) {
    for (int64_t o = o_begin; o < o_end; ++o) {
      T* dw_row = dw + o * in;
      for (int64_t i = 0; i < n; ++i) {
        const T g = dy[i * out + o];
        const T* x_row = x + i * in;
        for (int64_t k = 0; k < in; ++k) dw_row[k] += g * x_row[k];
      }
    }
  });
}

#define TERN_INSTANTIATE(T)                                                                  \
  template void linear_forward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);        \
  template void linear_backward_input<T>(T*, const T*, const T*, int64_t, int64_t, int64_t); \
  template void linear_backward_weight<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);
TERN_INSTANTIATE(float)
TERN_INSTANTIATE(double)
#undef TERN_INSTANTIATE

}  // namespace tern::ref
