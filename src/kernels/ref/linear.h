// Dense linear layer y = x · Wᵀ, scalar reference (fp32 and fp64 for gradchecks).
//
// x [n, in], W [out, in] row-major (torch layout), y [n, out]. Each output element
// is one fixed-order dot product, so results are independent of thread count.
// Threads: splits work over the default pool; buffers must not alias.
#pragma once

#include <cstdint>

namespace tern::ref {

// y[n, out] = x[n, in] · w[out, in]ᵀ  (overwrites y)
template <typename T>
void linear_forward(T* y, const T* x, const T* w, int64_t n, int64_t in, int64_t out);

// dx[n, in] = dy[n, out] · w[out, in]  (overwrites dx)
template <typename T>
void linear_backward_input(T* dx, const T* dy, const T* w, int64_t n, int64_t in, int64_t out);

// dw[out, in] += dy[n, out]ᵀ · x[n, in]  (accumulates, rows of x in order)
template <typename T>
void linear_backward_weight(T* dw, const T* dy, const T* x, int64_t n, int64_t in, int64_t out);

}  // namespace tern::ref
