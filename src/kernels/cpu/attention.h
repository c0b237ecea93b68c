// Blocked causal attention (grouped-query heads) with run-time SIMD dispatch.
//
// Same contracts, shapes and thread split as the scalar references in
// kernels/ref/attention.h (float only), and the same bits: every target
// repeats the reference's operations in the reference's order, so results equal
// ref::attention_* on every target (x86 and Arm) and thread count, and the
// recomputing pair equals the caching pair.
//   - q·k and dout·v: ref::dot's order, 8 interleaved lanes over head_dim folded
//     ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)). AVX2/AVX-512 hold the 8 lanes in one
//     256-bit vector, 128-bit targets (SSE4, NEON, SVE) in two passes of 4,
//     HWY_SCALAR calls ref::dot. Four dots are folded at once by a 4×4
//     transpose. Scores are then × 1/sqrt(head_dim).
//   - softmax: max (exact in any order), then ref::exp_f32 (vectorized, same
//     bits per lane, kernels/cpu/exp-inl.h) and their sum in ref::sum's 8-lane
//     order, then × 1/sum; Σ P·dP one key at a time in key order.
//   - P·V, dS·K (dq), dSᵀ·Q (dk), Pᵀ·dout (dv): per element, products added
//     in ascending key (resp. head, then query) order as a separate multiply
//     and add, never FMA.
// Blocking: per (batch, head) in forward and (batch, kv head) in backward, k
// and v are packed once into rows padded to a multiple of 8 floats; queries go
// 32 at a time against keys in blocks of 64, so a k/v tile stays in L1 while
// 2 query × 4 key (scores) or 2 row × 4 vector (weighted sums) register tiles
// reuse it. The forward reads k and v in place instead when head_dim is a
// multiple of 8 and their rows are vector-aligned (a decoder's cache). With one
// query per head (a decoder step) the forward goes per (batch, kv head), the
// group's heads being the rows of one block, so k and v are read once per
// group. Scratch is one buffer per thread, kept between calls and grown to the
// largest: forward up to 2·seq·head_dim + 32·seq floats, backward
// 4·seq·head_dim + 64·seq (rounded up to the padding).
#pragma once

#include "kernels/ref/attention.h"

namespace tern::cpu {

// out [batch, seq, heads, head_dim]; probs [batch, heads, seq, seq] (upper
// triangle zeroed); q [batch, seq, heads, head_dim]; k, v [batch, seq,
// kv_heads, head_dim]. As ref::attention_forward.
void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       const ref::AttentionShape& shape);

// dq, dk, dv (overwritten, shapes of q, k, v) from dout [batch, seq, heads,
// head_dim] and the probabilities attention_forward stored. As ref::attention_backward.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* probs,
                        const float* q, const float* k, const float* v,
                        const ref::AttentionShape& shape);

// As attention_forward without storing the probabilities; same bits in out.
void attention_forward_nocache(float* out, const float* q, const float* k, const float* v,
                               const ref::AttentionShape& shape);

// The rows of attention_forward_nocache for the queries at positions
// [first_query, seq) only (0 <= first_query < seq, CHECKed): q and out are
// [batch, seq − first_query, heads, head_dim], k and v the whole sequence. Same
// bits as those rows of the full call; a KV-cache decoder's step (batch 1,
// keys and values from its cache).
void attention_forward_last(float* out, const float* q, const float* k, const float* v,
                            const ref::AttentionShape& shape, int64_t first_query);

// As attention_backward, recomputing the probabilities from q and k; same bits.
void attention_backward_recompute(float* dq, float* dk, float* dv, const float* dout,
                                  const float* q, const float* k, const float* v,
                                  const ref::AttentionShape& shape);

}  // namespace tern::cpu
