// Ternary (BitNet b1.58) kernels with run-time SIMD dispatch.
//
// Same contracts as the scalar references in kernels/ref/ternary.h, and the
// same bits: activation codes and scales are computed with the same float
// operations, ternary × int8 products are exact integer sums, and the fp32
// input gradient accumulates dy·q in o order per element as the reference does.
// Tests compare every attainable target with the reference on odd shapes.
//
// x86 targets use pmaddubsw-style u8 × s8 products on the codes q+1 (so the
// weights are never widened) and subtract Σx afterwards; other targets widen to
// int16. Work is split over the default thread pool by output rows; scratch is
// allocated once per call, never inside the loops.
#pragma once

#include <cstdint>

#include "kernels/ref/ternary.h"

namespace tern::cpu {

// codes[n, d], scale[n] from x[n, d] (absmax per row), as ref::quantize_activations_absmax.
void quantize_activations_absmax(int8_t* codes, float* scale, const float* x, int64_t n, int64_t d);

// y[n, out] = x̃ · W̃ᵀ = (Σ codes·q) · (gamma / s), as ref::bitlinear_forward. n = 1 is
// the decode (matrix-vector) case.
void bitlinear_forward(float* y, const int8_t* x_codes, const float* x_scale,
                       const ref::TernaryMatrix& w, int64_t n);

// dx[n, in] = dy[n, out] · W̃ in fp32, bit-identical to ref::bitlinear_backward_input.
void bitlinear_backward_input(float* dx, const float* dy, const ref::TernaryMatrix& w, int64_t n);

// dx[n, in] = (Σ_o dy_codes·q) · (gamma / dy_scale), as ref::bitlinear_backward_input_int8.
// Runs as a forward product on w.transposed when it is built (w.has_transposed()),
// otherwise on a temporary transpose (slower: build it once with w.build_transposed()).
void bitlinear_backward_input_int8(float* dx, const int8_t* dy_codes, const float* dy_scale,
                                   const ref::TernaryMatrix& w, int64_t n);

}  // namespace tern::cpu
