// AdamW with decoupled weight decay over flat buffers, and global-norm clipping.
//
// Matches torch.optim.AdamW's update order: θ ← θ(1 − lr·λ); m ← lerp(m, g, 1−β1);
// v ← β2·v + (1−β2)·g²; θ ← θ − (lr / (1−β1^t)) · m / (sqrt(v)/sqrt(1−β2^t) + ε).
// Weight decay applies to tensors of rank ≥ 2 (matrices, embeddings, LoRA) and
// never to norm weights. State (m, v) shares the parameters' TensorLayout.
// Not synchronized; kernels split each tensor over the default pool.
#pragma once

#include <cstdint>

#include "core/flat_buffer.h"

namespace tern {

struct AdamWConfig {
  // Doubles, as in torch, so the scalars derived from them round the same way.
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

class AdamW {
 public:
  AdamW(const TensorLayout& layout, const AdamWConfig& config);

  // One update with learning rate lr; increments step().
  void step(FlatBuffer& params, const FlatBuffer& grads, double lr);

  int64_t step_count() const { return step_; }
  // For resuming from a checkpoint (bias correction depends on the step).
  void set_step_count(int64_t step) { step_ = step; }
  FlatBuffer& first_moment() { return m_; }
  FlatBuffer& second_moment() { return v_; }
  const FlatBuffer& first_moment() const { return m_; }
  const FlatBuffer& second_moment() const { return v_; }
  const AdamWConfig& config() const { return config_; }

 private:
  const TensorLayout& layout_;
  AdamWConfig config_;
  FlatBuffer m_;
  FlatBuffer v_;
  int64_t step_ = 0;
};

// Scales grads so their global L2 norm is at most max_norm (torch's
// clip_grad_norm_: coefficient max_norm / (norm + 1e-6), capped at 1).
// Returns the norm before clipping. Sums per tensor, then over tensors, in
// layout order, in double.
double clip_grad_norm(FlatBuffer& grads, const TensorLayout& layout, double max_norm);

}  // namespace tern
