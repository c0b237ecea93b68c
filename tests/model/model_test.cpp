// BitNetModel behaviour beyond the golden files: presets, config errors, batch
// validation, gradient accumulation, thread-count determinism, LoRA start point.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "model/bitnet.h"
#include "support/micro_model.h"

namespace tern {
namespace {

ModelConfig small_config() {
  return testing::small_ternary_config(2, 50, 16);
}

BitNetModel make_full(const ModelConfig& c, uint64_t seed = 1) {
  RandomInitSource init(seed, 0.1f);
  return BitNetModel::create_full(c, init).value();
}

std::vector<int32_t> ramp(size_t n, int mul, int vocab) {
  std::vector<int32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>((i * mul + 3) % vocab);
  return v;
}

TEST(PresetTest, ParameterCountsMatchTheirNames) {
  EXPECT_EQ(preset_config("medium").value().num_params(), 4003840);
  EXPECT_NEAR(preset_config("bitnet-125m").value().num_params(), 125e6, 0.05 * 125e6);
  EXPECT_NEAR(preset_config("bitnet-1b").value().num_params(), 1e9, 0.1e9);
  // BitNet b1.58 2B-4T has ~2.4B parameters including its 128k-token embedding.
  EXPECT_NEAR(preset_config("bitnet-2b-4t").value().num_params(), 2.41e9, 0.05e9);
  for (const std::string& name : preset_names())
    EXPECT_TRUE(preset_config(name).value().validate().ok()) << name;
  const Status unknown = preset_config("huge").status();
  EXPECT_NE(unknown.message().find("unknown preset 'huge'"), std::string::npos);
}

TEST(ConfigTest, BadFieldsAreNamed) {
  ModelConfig c = small_config();
  c.kv_heads = 3;
  EXPECT_NE(c.validate().message().find("heads = 4 is not a multiple of kv_heads = 3"),
            std::string::npos);
  c = small_config();
  c.head_dim = 7;
  EXPECT_NE(c.validate().message().find("head_dim = 7"), std::string::npos);
  EXPECT_NE(parse_model_config("{\"hidden\": \"big\"}")
                .status()
                .message()
                .find("'hidden' must be an integer"),
            std::string::npos);
  EXPECT_NE(parse_model_config("{\"activation\": \"gelu\"}").status().message().find("\"gelu\""),
            std::string::npos);
  EXPECT_FALSE(parse_model_config("not json").ok());
  EXPECT_NE(parse_model_config("{\"hiden\": 5}").status().message().find("unknown key 'hiden'"),
            std::string::npos);
  EXPECT_NE(parse_model_config("{\"hidden\": -5}").status().message().find("hidden = -5"),
            std::string::npos);
}

TEST(ConfigTest, JsonRoundTrip) {
  const ModelConfig c = preset_config("llama-tiny").value();
  const ModelConfig back = parse_model_config(model_config_to_json(c)).value();
  EXPECT_EQ(model_config_to_json(back), model_config_to_json(c));
  EXPECT_EQ(back.activation, ref::Activation::kSiLU);
  EXPECT_EQ(back.rope_style, ref::RopeStyle::kInterleaved);
}

TEST(ModelTest, CheckBatchRejectsBadTokens) {
  const BitNetModel model = make_full(small_config());
  std::vector<int32_t> tokens = ramp(8, 1, 50), labels = ramp(8, 1, 50);
  EXPECT_TRUE(model.check_batch(tokens, labels, 2, 4).ok());
  tokens[5] = 50;
  EXPECT_NE(model.check_batch(tokens, labels, 2, 4).message().find("token 50 at position 5"),
            std::string::npos);
  tokens[5] = 1;
  labels[2] = 77;
  EXPECT_NE(model.check_batch(tokens, labels, 2, 4).message().find("label 77"), std::string::npos);
  EXPECT_FALSE(model.check_batch(tokens, labels, 1, 17).ok());  // beyond max_seq and size
}

TEST(ModelTest, GradientAccumulationMatchesOneBatch) {
  for (LinearKind kind : {LinearKind::kTernary, LinearKind::kDense}) {
    ModelConfig c = small_config();
    c.linear = kind;
    BitNetModel whole = make_full(c), halves = make_full(c);
    const std::vector<int32_t> tokens = ramp(16, 7, 50), labels = ramp(16, 11, 50);
    whole.grads().zero();
    whole.forward(tokens, labels, 2, 8);
    whole.backward(1.0f);
    halves.grads().zero();
    for (int half = 0; half < 2; ++half) {
      const std::span<const int32_t> t(tokens.data() + 8 * half, 8), l(labels.data() + 8 * half, 8);
      halves.forward(t, l, 1, 8);
      halves.backward(0.5f);
    }
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < whole.grads().size(); ++i) {
      const double d = whole.grads().data()[i] - halves.grads().data()[i];
      diff += d * d;
      norm += static_cast<double>(whole.grads().data()[i]) * whole.grads().data()[i];
    }
    EXPECT_GT(norm, 0.0);
    EXPECT_LT(std::sqrt(diff / norm), 1e-5);
  }
}

TEST(ModelTest, ThreadCountDoesNotChangeBits) {
  const ModelConfig c = small_config();
  const std::vector<int32_t> tokens = ramp(32, 5, 50), labels = ramp(32, 9, 50);
  std::vector<float> grads[2];
  float losses[2];
  for (int run = 0; run < 2; ++run) {
    set_num_threads(run == 0 ? 1 : 3);
    BitNetModel model = make_full(c);
    model.grads().zero();
    losses[run] = model.forward(tokens, labels, 4, 8);
    model.backward(1.0f);
    grads[run].assign(model.grads().data(), model.grads().data() + model.grads().size());
  }
  set_num_threads(2);
  EXPECT_EQ(std::memcmp(&losses[0], &losses[1], sizeof(float)), 0);
  EXPECT_EQ(grads[0], grads[1]);
}

TEST(ModelTest, LoraStartsExactlyAtTheBase) {
  // B = 0 at start, so a LoRA model must reproduce the base model's logits bit for bit.
  const ModelConfig c = small_config();
  BitNetModel full = make_full(c, 4);
  RandomInitSource init(4, 0.1f);
  LoraConfig lora;
  lora.rank = 4;
  BitNetModel adapted = BitNetModel::create_lora(c, lora, init, 9).value();
  const std::vector<int32_t> tokens = ramp(16, 3, 50);
  full.forward(tokens, {}, 2, 8);
  adapted.forward(tokens, {}, 2, 8);
  const auto a = full.logits(), b = adapted.logits();
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  // Only adapters are trainable.
  for (const TensorInfo& info : adapted.layout().tensors()) {
    EXPECT_TRUE(info.name.ends_with(".lora_a") || info.name.ends_with(".lora_b")) << info.name;
  }
  EXPECT_EQ(adapted.layout().count(), static_cast<size_t>(c.layers * 4 * 2));
}

TEST(ModelTest, MissingTensorIsAnError) {
  class Empty final : public WeightSource {
   public:
    Status read(std::string_view name, std::span<const int64_t>, std::span<float>) override {
      return Status::Error("no tensor '" + std::string(name) + "'");
    }
  } empty;
  const Result<BitNetModel> model = BitNetModel::create_full(small_config(), empty);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("token_embd.weight"), std::string::npos);
}

}  // namespace
}  // namespace tern
