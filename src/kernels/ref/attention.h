// Causal scaled-dot-product attention with grouped-query heads, scalar reference.
//
// q [batch, seq, heads, head_dim]; k, v [batch, seq, kv_heads, head_dim]; query
// head h reads kv head h / (heads / kv_heads). Scores are scaled by
// 1/sqrt(head_dim), masked to keys at or before the query, and softmaxed in T.
// Forward caches the probabilities [batch, heads, seq, seq] (upper triangle left
// zero) for backward. Threads: split over (batch, head) in forward and over
// (batch, kv head) in backward, so shared kv gradients have a single writer.
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

// out [batch, seq, heads, head_dim]; probs [batch, heads, seq, seq].
template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v,
                       const AttentionShape& shape);

// dq, dk, dv (overwritten, shapes of q, k, v) from dout [batch, seq, heads, head_dim].
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k,
                        const T* v, const AttentionShape& shape);

}  // namespace tern::ref
