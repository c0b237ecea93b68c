#include "optim/adamw.h"

#include <cmath>

#include "core/check.h"
#include "core/portable_math.h"
#include "core/thread_pool.h"

namespace tern {

AdamW::AdamW(const TensorLayout& layout, const AdamWConfig& config)
    : layout_(layout), config_(config), m_(layout.buffer_size()), v_(layout.buffer_size()) {}

void AdamW::step(FlatBuffer& params, const FlatBuffer& grads, double lr) {
  TERN_CHECK(params.size() == layout_.buffer_size() && grads.size() == layout_.buffer_size());
  ++step_;
  // Scalars in double, as torch computes them in Python floats; the powers by
  // portable_pow, so they have the same bits on every platform.
  const double bias1 = 1.0 - portable_pow(config_.beta1, static_cast<double>(step_));
  const double bias2 = 1.0 - portable_pow(config_.beta2, static_cast<double>(step_));
  const auto step_size = static_cast<float>(lr / bias1);
  const auto bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  const auto lerp_weight = static_cast<float>(1.0 - config_.beta1);
  const auto beta2 = static_cast<float>(config_.beta2);
  const auto one_minus_beta2 = static_cast<float>(1.0 - config_.beta2);
  const auto eps = static_cast<float>(config_.eps);
  for (const TensorInfo& info : layout_.tensors()) {
    const bool decay = info.shape.size() >= 2 && config_.weight_decay != 0.0;
    const auto keep = static_cast<float>(1.0 - lr * config_.weight_decay);
    float* p = params.data() + info.offset;
    const float* g = grads.data() + info.offset;
    float* m = m_.data() + info.offset;
    float* v = v_.data() + info.offset;
    parallel_for(
        info.size,
        [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            if (decay) p[i] *= keep;
            m[i] += lerp_weight * (g[i] - m[i]);
            v[i] = v[i] * beta2 + one_minus_beta2 * g[i] * g[i];
            const float denom = std::sqrt(v[i]) / bias2_sqrt + eps;
            p[i] += -step_size * (m[i] / denom);
          }
        },
        4096);
  }
}

double clip_grad_norm(FlatBuffer& grads, const TensorLayout& layout, double max_norm) {
  double total_sq = 0.0;
  for (const TensorInfo& info : layout.tensors()) {
    double tensor_sq = 0.0;
    for (float g : grads.view(info)) tensor_sq += static_cast<double>(g) * g;
    total_sq += tensor_sq;
  }
  const double norm = std::sqrt(total_sq);
  const double coeff = max_norm / (norm + 1e-6);
  if (coeff < 1.0) {
    const auto c = static_cast<float>(coeff);
    for (const TensorInfo& info : layout.tensors()) {
      for (float& g : grads.view(info)) g *= c;
    }
  }
  return norm;
}

}  // namespace tern
