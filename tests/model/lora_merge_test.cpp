// Merging an adapter into its base: for a dense base the merged model computes
// what base + LoRA computed; for a ternary base the merged latent weights are
// exactly γ·q + (alpha/r)·B·A before re-quantization.
#include "model/lora_merge.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "support/micro_model.h"

namespace tern {
namespace {

BitNetModel lora_model(const ModelConfig& config) {
  RandomInitSource base(3, 0.1f);
  LoraConfig lora;
  lora.rank = 4;
  lora.alpha = 8.0f;
  lora.targets = {LinearId::kQ, LinearId::kV, LinearId::kDown};
  BitNetModel model = BitNetModel::create_lora(config, lora, base, 4).value();
  // B starts at zero; give it values so the merge has something to merge.
  Rng rng(9);
  for (const TensorInfo& t : model.layout().tensors()) {
    if (t.name.ends_with(".lora_b")) {
      for (float& v : model.params().view(t)) v = static_cast<float>(rng.normal() * 0.05);
    }
  }
  return model;
}

TEST(LoraMergeTest, DenseMergeKeepsTheLogits) {
  const ModelConfig config = testing::as_dense_llama(testing::small_ternary_config(2, 50, 16));
  BitNetModel lora = lora_model(config);
  BitNetModel merged = merge_lora(lora).value();
  EXPECT_FALSE(merged.is_lora());
  std::vector<int32_t> tokens(12);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((7 * i + 1) % 50);
  lora.forward(tokens, {}, 1, 12);
  const std::vector<float> expected(lora.logits().begin(), lora.logits().end());
  merged.forward(tokens, {}, 1, 12);
  const std::span<const float> actual = merged.logits();
  double worst = 0.0, scale = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::fabs(actual[i] - expected[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(expected[i])));
  }
  EXPECT_LE(worst, 1e-5 * scale) << "max |Δ| " << worst << " of " << scale;
  // A control: without the delta the logits would differ clearly.
  RandomInitSource base(3, 0.1f);
  BitNetModel plain = BitNetModel::create_frozen(config, base).value();
  plain.forward(tokens, {}, 1, 12);
  double moved = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    moved = std::max(moved, static_cast<double>(std::fabs(plain.logits()[i] - expected[i])));
  }
  EXPECT_GT(moved, 100 * worst + 1e-6);
}

TEST(LoraMergeTest, TernaryMergeAddsTheDeltaToTheDequantizedBase) {
  const ModelConfig config = testing::small_ternary_config(1, 50, 16);
  BitNetModel lora = lora_model(config);
  BitNetModel merged = merge_lora(lora).value();
  const std::string name = linear_tensor_name(0, LinearId::kQ);
  const ref::TernaryMatrix& packed = lora.packed_weights(0, LinearId::kQ);
  std::vector<float> base(static_cast<size_t>(packed.rows * packed.cols));
  ref::dequantize_weights(base.data(), packed);
  const TensorInfo& a = lora.layout().get(name + ".lora_a");
  const TensorInfo& b = lora.layout().get(name + ".lora_b");
  const int64_t rank = a.shape[0], in = a.shape[1];
  const std::span<const float> merged_w = merged.params().view(merged.layout().get(name));
  for (int64_t o = 0; o < packed.rows; o += 5) {
    for (int64_t i = 0; i < in; i += 3) {
      double delta = 0.0;
      for (int64_t r = 0; r < rank; ++r) {
        delta += static_cast<double>(lora.params().view(b)[static_cast<size_t>(o * rank + r)]) *
                 lora.params().view(a)[static_cast<size_t>(r * in + i)];
      }
      const float want = base[static_cast<size_t>(o * in + i)] +
                         static_cast<float>(lora.lora_config().scale() * delta);
      EXPECT_FLOAT_EQ(merged_w[static_cast<size_t>(o * in + i)], want) << o << "," << i;
    }
  }
}

}  // namespace
}  // namespace tern
