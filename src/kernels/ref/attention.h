// Causal scaled-dot-product attention with grouped-query heads, scalar reference.
//
// q [batch, seq, heads, head_dim]; k, v [batch, seq, kv_heads, head_dim]; query
// head h reads kv head h / (heads / kv_heads). Scores are scaled by
// 1/sqrt(head_dim), masked to keys at or before the query, and softmaxed in T
// (exponentials by kernel_exp, kernels/ref/exp.h; their sum in ref::sum's order).
// attention_forward caches the probabilities [batch, heads, seq, seq] (upper
// triangle left zero) for attention_backward. The _nocache / _recompute pair
// never stores them: backward recomputes each query's probability row from q
// and k with the same code, so both pairs give the same bits, at the price of
// computing the scores twice (memory: one row per thread). Threads: split over (batch, head) in
// forward and over (batch, kv head) in backward, so shared kv gradients have a single writer.
#pragma once

#include <cstdint>

namespace tern::ref {

struct AttentionShape {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
};

// CHECKs that every size is positive and heads is a multiple of kv_heads.
void check_attention_shape(const AttentionShape& s);

// out [batch, seq, heads, head_dim]; probs [batch, heads, seq, seq].
template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v,
                       const AttentionShape& shape);

// dq, dk, dv (overwritten, shapes of q, k, v) from dout [batch, seq, heads, head_dim].
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k,
                        const T* v, const AttentionShape& shape);

// out [batch, seq, heads, head_dim], probabilities not stored.
template <typename T>
void attention_forward_nocache(T* out, const T* q, const T* k, const T* v,
                               const AttentionShape& shape);

// As attention_backward, recomputing the probabilities from q and k.
template <typename T>
void attention_backward_recompute(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                  const T* v, const AttentionShape& shape);

}  // namespace tern::ref
