// Cross-entropy over sparse labels with run-time SIMD dispatch: the contracts
// of kernels/ref/cross_entropy.h (float only) and the same bits, on every
// target and thread count. Per row the max, the exponentials (ref::exp_f32 on
// vectors) and their sum in ref::sum's 8-lane order are those of the
// reference; rows are split over the default pool.
#pragma once

#include <cstdint>

#include "kernels/ref/cross_entropy.h"

namespace tern::cpu {

// As ref::cross_entropy_forward<float>.
ref::CrossEntropyTotals cross_entropy_forward(const float* logits, const int32_t* labels, int64_t n,
                                              int64_t vocab);

// As ref::cross_entropy_backward<float>; dlogits may alias logits.
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* labels, int64_t n,
                            int64_t vocab, float scale);

}  // namespace tern::cpu
