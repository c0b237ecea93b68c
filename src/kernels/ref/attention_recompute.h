// Causal GQA attention that never stores the probability matrix, scalar reference.
//
// Same shapes and conventions as attention.h. attention_forward_nocache writes
// only the output; attention_backward_recompute recomputes each query's
// probability row from q and k when it needs it. Both follow the arithmetic of
// attention_forward / attention_backward step for step, so the results have the
// same bits as the caching kernels: memory drops from [batch, heads, seq, seq]
// to one row per thread, at the price of computing the scores twice.
// Threads: split over (batch, head) in forward and (batch, kv head) in backward.
#pragma once

#include "kernels/ref/attention.h"

namespace tern::ref {

// out [batch, seq, heads, head_dim].
template <typename T>
void attention_forward_nocache(T* out, const T* q, const T* k, const T* v,
                               const AttentionShape& shape);

// dq, dk, dv (overwritten, shapes of q, k, v) from dout [batch, seq, heads, head_dim].
template <typename T>
void attention_backward_recompute(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                  const T* v, const AttentionShape& shape);

}  // namespace tern::ref
