// Hugging Face → GGUF conversion, tensor by tensor, for the synthetic checkpoints
// in tests/fixtures/hf (BitNet 2B-4T packed and bf16, 1bitLLM, Llama). Each
// fixture's expected.safetensors holds, under GGUF names, the fp32 values a
// correct reader must see (codes × scale for packed weights, latents otherwise).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "model/hf_convert.h"

namespace tern {
namespace {

std::string fixture(const std::string& name) {
  return std::string(TERN_SOURCE_DIR) + "/tests/fixtures/hf/" + name;
}

// expected.safetensors as a weight source (GGUF names, HF row order).
class ExpectedSource final : public WeightSource {
 public:
  explicit ExpectedSource(const std::string& dir)
      : file_(safetensors::SafetensorsFile::open(dir + "/expected.safetensors").value()) {}
  Status read(std::string_view name, std::span<const int64_t>, std::span<float> out) override {
    const safetensors::TensorInfo* t = file_.find(name);
    if (t == nullptr) return Status::Error("expected: no '" + std::string(name) + "'");
    return file_.read_f32(*t, out);
  }
  std::vector<float> values(const std::string& name) {
    const safetensors::TensorInfo* t = file_.find(name);
    TERN_CHECK(t != nullptr, name);
    std::vector<float> v(static_cast<size_t>(t->elements()));
    TERN_CHECK(file_.read_f32(*t, v).ok());
    return v;
  }

 private:
  safetensors::SafetensorsFile file_;
};

bool is_linear(const std::string& name) {
  for (const char* stem :
       {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
    if (name.find(std::string(".") + stem + ".weight") != std::string::npos) return true;
  }
  return false;
}

struct Case {
  const char* dir;
  bool ternary;
  bool packed;
};

class ConvertTest : public ::testing::TestWithParam<Case> {};

TEST_P(ConvertTest, convert_matches_expected_tensor_by_tensor) {
  const Case c = GetParam();
  auto hf = HfWeightSource::open(fixture(c.dir));
  ASSERT_TRUE(hf.ok()) << hf.status().message();
  const ModelConfig config = hf.value()->config();
  EXPECT_EQ(config.linear == LinearKind::kTernary, c.ternary);

  const std::string out =
      (std::filesystem::temp_directory_path() / (std::string("tern_convert_") + c.dir + ".gguf"))
          .string();
  const Status converted = convert_hf_to_gguf(fixture(c.dir), out);
  ASSERT_TRUE(converted.ok()) << converted.message();
  auto gguf = GgufModelSource::open(out);
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  EXPECT_EQ(model_config_to_json(gguf.value()->config()), model_config_to_json(config));

  ExpectedSource expected(fixture(c.dir));
  RandomInitSource unused(0);
  const BitNetModel layout = BitNetModel::create_frozen(config, unused).value();
  int checked = 0;
  for (const BitNetModel::BaseTensor& t : layout.base_tensors()) {
    const std::vector<float> want = expected.values(t.name);
    if (c.ternary && is_linear(t.name)) {
      const ref::TernaryMatrix got =
          gguf.value()->read_ternary(t.name, t.shape[0], t.shape[1]).value();
      ref::TernaryMatrix reference;
      if (c.packed) {  // expected = code × scale: exact codes and scale
        std::vector<float> dequantized(want.size());
        ref::dequantize_weights(dequantized.data(), got);
        EXPECT_EQ(dequantized, want) << t.name;
      } else {  // latent weights: absmean quantization of the latents
        ref::quantize_weights_absmean(&reference, want.data(), t.shape[0], t.shape[1]);
        EXPECT_EQ(got.packed, reference.packed) << t.name;
        EXPECT_EQ(got.scale, reference.scale) << t.name;
      }
    } else {
      std::vector<float> got(want.size());
      ASSERT_TRUE(gguf.value()->read(t.name, t.shape, got).ok()) << t.name;
      const bool permuted =
          !c.ternary && (t.name.ends_with("attn_q.weight") || t.name.ends_with("attn_k.weight"));
      if (!permuted) {
        EXPECT_EQ(got, want) << t.name;
      } else {  // same rows, llama.cpp's interleaved order
        std::vector<float> sorted_got = got, sorted_want = want;
        std::sort(sorted_got.begin(), sorted_got.end());
        std::sort(sorted_want.begin(), sorted_want.end());
        EXPECT_EQ(sorted_got, sorted_want) << t.name;
        EXPECT_NE(got, want) << t.name;
      }
    }
    ++checked;
  }
  EXPECT_GT(checked, 10);
  std::remove(out.c_str());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ConvertTest,
                         ::testing::Values(Case{"bitnet_2b4t_packed", true, true},
                                           Case{"bitnet_2b4t_bf16", true, false},
                                           Case{"1bitllm", true, false},
                                           Case{"llama", false, false}),
                         [](const auto& info) { return std::string(info.param.dir); });

TEST(ConvertLlamaTest, convert_permuted_llama_computes_the_same_function) {
  // HF order with neox pairing and llama.cpp order with interleaved pairing are
  // the same model: logits agree to rounding.
  auto hf = HfWeightSource::open(fixture("llama"));
  ASSERT_TRUE(hf.ok());
  BitNetModel converted = BitNetModel::create_full(hf.value()->config(), *hf.value()).value();
  ModelConfig neox = hf.value()->config();
  neox.rope_style = ref::RopeStyle::kNeox;
  ExpectedSource expected(fixture("llama"));
  BitNetModel original = BitNetModel::create_full(neox, expected).value();
  const std::vector<int32_t> tokens = {1, 5, 9, 33, 2, 17, 60, 4};
  converted.forward(tokens, {}, 1, 8);
  original.forward(tokens, {}, 1, 8);
  const auto a = converted.logits(), b = original.logits();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  EXPECT_LT(std::sqrt(diff / norm), 1e-5);
}

TEST(ConvertErrorsTest, convert_bad_checkpoints_are_named_errors) {
  const std::string dir = (std::filesystem::temp_directory_path() / "tern_convert_bad").string();
  std::filesystem::create_directories(dir);
  EXPECT_FALSE(HfWeightSource::open(dir).ok());  // no config.json / weights
  std::filesystem::copy(
      fixture("llama"), dir,
      std::filesystem::copy_options::overwrite_existing | std::filesystem::copy_options::recursive);
  {
    std::FILE* f = std::fopen((dir + "/config.json").c_str(), "w");
    std::fputs("{\"architectures\": [\"GPT2LMHeadModel\"]}", f);
    std::fclose(f);
  }
  const Status s = HfWeightSource::open(dir).status();
  EXPECT_NE(s.message().find("'GPT2LMHeadModel' is not supported"), std::string::npos)
      << s.message();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tern

namespace tern {
namespace {

TEST(ConvertPackedTest, convert_packed_weights_start_full_training_exactly) {
  auto hf = HfWeightSource::open(fixture("bitnet_2b4t_packed"));
  ASSERT_TRUE(hf.ok());
  BitNetModel frozen = BitNetModel::create_frozen(hf.value()->config(), *hf.value()).value();
  BitNetModel full = BitNetModel::create_full(hf.value()->config(), *hf.value()).value();
  const std::vector<int32_t> tokens = {1, 5, 9, 33, 2, 17, 60, 4};
  frozen.forward(tokens, {}, 1, 8);
  full.forward(tokens, {}, 1, 8);
  const auto a = frozen.logits(), b = full.logits();
  double diff = 0, norm = 0;  // γ may come back one ulp off (see ternary_latents)
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += a[i] * a[i];
  }
  EXPECT_LT(std::sqrt(diff / norm), 1e-6);
}

}  // namespace
}  // namespace tern
