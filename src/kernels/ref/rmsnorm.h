// RMSNorm over the last dimension, scalar reference (fp32 and fp64).
//
// y = x · rsqrt(mean(x²) + eps) · w, per row of x [n, d]. Forward caches
// inv_rms [n] for backward. Threads: rows split over the default pool.
#pragma once

#include <cstdint>

namespace tern::ref {

// y[n, d], inv_rms[n] from x[n, d] and w[d]. y may alias x.
template <typename T>
void rmsnorm_forward(T* y, T* inv_rms, const T* x, const T* w, int64_t n, int64_t d, T eps);

// dx[n, d] (overwritten, may alias dy) and dw[d] (accumulated) from dy[n, d].
template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const T* inv_rms,
                      int64_t n, int64_t d);

}  // namespace tern::ref
