// Gated FFN activation m = act(gate) ⊙ up with run-time SIMD dispatch: the
// contracts of kernels/ref/gated_activation.h (float only) and the same bits on
// every target, each element computed with the reference's operations in the
// reference's order (SiLU's exponential is ref::exp_f32 on vectors). Elementwise;
// split over the default pool.
#pragma once

#include <cstdint>

#include "kernels/ref/gated_activation.h"

namespace tern::cpu {

// As ref::gated_activation_forward<float>.
void gated_activation_forward(float* m, const float* gate, const float* up, int64_t n,
                              ref::Activation act);

// As ref::gated_activation_backward<float>.
void gated_activation_backward(float* dgate, float* dup, const float* dm, const float* gate,
                               const float* up, int64_t n, ref::Activation act);

}  // namespace tern::cpu
