// TernaryBackward::kInt8 against kExact: the int8 input gradient is close to the
// fp32 one (it is an approximation, so not bit-equal), identical on the cached and
// recomputing paths, and full training rebuilds the transposed codes every step.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "model/bitnet.h"
#include "optim/adamw.h"
#include "support/micro_model.h"

namespace tern::ternary_backward_test {
namespace {

struct Batch {
  std::vector<int32_t> tokens, labels;
};

Batch make_batch(int64_t n, int64_t vocab, uint64_t seed) {
  Batch b;
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    b.tokens.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab))));
    b.labels.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab))));
  }
  return b;
}

std::vector<float> gradients(BitNetModel& model, const Batch& b, int64_t seq) {
  model.grads().zero();
  model.forward(b.tokens, b.labels, 1, seq);
  model.backward(1.0f);
  return {model.grads().span().begin(), model.grads().span().end()};
}

// ‖a − b‖ / ‖b‖.
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    norm += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff / norm);
}

LoraConfig all_targets() {
  LoraConfig lora;
  lora.rank = 4;
  lora.targets = {LinearId::kQ,    LinearId::kK,  LinearId::kV,   LinearId::kO,
                  LinearId::kGate, LinearId::kUp, LinearId::kDown};
  return lora;
}

TEST(TernaryBackwardTest, Int8LoraGradientsAreCloseToExact) {
  const ModelConfig c = testing::small_ternary_config(3, 64, 48);
  const int64_t seq = 40;
  const Batch b = make_batch(seq, c.vocab, 3);
  RandomInitSource init(9, 0.2f);
  BitNetModel exact = BitNetModel::create_lora(c, all_targets(), init, 5).value();
  BitNetModel int8 = BitNetModel::create_lora(c, all_targets(), init, 5).value();
  // B = 0 at init would leave A without gradient: move B first.
  Rng rng(4);
  for (float& v : exact.params().span()) v += static_cast<float>(0.05 * rng.normal());
  std::memcpy(int8.params().data(), exact.params().data(), exact.params().size() * sizeof(float));
  int8.set_ternary_backward(TernaryBackward::kInt8);
  EXPECT_GT(int8.memory_use().packed_linear_bytes, exact.memory_use().packed_linear_bytes);

  const std::vector<float> want = gradients(exact, b, seq);
  const std::vector<float> got = gradients(int8, b, seq);
  const double err = relative_error(got, want);
  EXPECT_GT(err, 0.0);   // a different computation...
  EXPECT_LT(err, 0.02);  // ...that stays close to the exact gradient

  // The recomputing path (LoRA default) and the cached path agree bit for bit.
  int8.set_activation_memory(ActivationMemory::kCache);
  const std::vector<float> cached = gradients(int8, b, seq);
  EXPECT_EQ(std::memcmp(cached.data(), got.data(), got.size() * sizeof(float)), 0);

  // Switching back drops the transposed codes and restores the exact gradient.
  int8.set_ternary_backward(TernaryBackward::kExact);
  EXPECT_EQ(int8.memory_use().packed_linear_bytes, exact.memory_use().packed_linear_bytes);
  const std::vector<float> again = gradients(int8, b, seq);
  EXPECT_EQ(std::memcmp(again.data(), want.data(), want.size() * sizeof(float)), 0);
}

TEST(TernaryBackwardTest, Int8FullTrainingTracksExactTraining) {
  // Full training re-quantizes the latent weights every step, so a stale transpose
  // would show up as a gradient far from the exact one after a few updates.
  const ModelConfig c = testing::small_ternary_config(2, 64, 48);
  const int64_t seq = 32;
  RandomInitSource init(3, 0.2f);
  BitNetModel exact = BitNetModel::create_full(c, init).value();
  BitNetModel int8 = BitNetModel::create_full(c, init).value();
  gradients(int8, make_batch(seq, c.vocab, 9), seq);  // packs the step-0 codes
  int8.set_ternary_backward(TernaryBackward::kInt8);  // transposes them
  AdamW opt_exact(exact.layout(), AdamWConfig{});
  AdamW opt_int8(int8.layout(), AdamWConfig{});
  for (int step = 0; step < 4; ++step) {
    const Batch b = make_batch(seq, c.vocab, 10 + static_cast<uint64_t>(step));
    // Both models hold the same weights at each step: compare, then copy exact's update.
    std::memcpy(int8.params().data(), exact.params().data(), exact.params().size() * sizeof(float));
    const std::vector<float> want = gradients(exact, b, seq);
    const std::vector<float> got = gradients(int8, b, seq);
    EXPECT_LT(relative_error(got, want), 0.05) << "step " << step;
    for (int64_t l = 0; l < c.layers; ++l) {
      for (int id = 0; id < kNumLinears; ++id) {
        const ref::TernaryMatrix* w = int8.quantization(l, static_cast<LinearId>(id)).weights;
        ref::TernaryMatrix fresh = *w;
        fresh.build_transposed();
        EXPECT_EQ(w->transposed, fresh.transposed) << "layer " << l << " linear " << id;
      }
    }
    opt_exact.step(exact.params(), exact.grads(), 2e-1);
  }
}

}  // namespace
}  // namespace tern::ternary_backward_test
