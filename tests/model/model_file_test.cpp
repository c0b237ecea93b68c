// Model and LoRA-adapter GGUF files: exact round trips through tern's writer and
// reader, llama.cpp's layouts, the non-256 row rule, and real llama.cpp files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "model/model_file.h"
#include "optim/adamw.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace tern::model_file_test {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("tern_model_" + name)).string();
}

std::string shared_data(const std::string& rel) {
  return std::string(TERN_SOURCE_DIR) + "/../shared/data/" + rel;
}

ModelConfig config_with_hidden(int64_t hidden, int64_t ffn) {
  ModelConfig c;
  c.hidden = hidden;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = hidden / 4;
  c.ffn = ffn;
  c.vocab = 300;
  c.max_seq = 32;
  c.tied_embeddings = false;
  return c;
}

std::vector<float> logits_of(BitNetModel& m, int64_t vocab) {
  std::vector<int32_t> tokens(12);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37 + 5) % vocab);
  m.forward(tokens, {}, 2, 6);
  return {m.logits().begin(), m.logits().end()};
}

struct RoundTrip {
  ModelConfig config;
  const char* label;
};

class ModelGgufTest : public ::testing::TestWithParam<RoundTrip> {};

TEST_P(ModelGgufTest, gguf_ternary_model_round_trip_is_exact) {
  const ModelConfig config = GetParam().config;
  RandomInitSource init(9, 0.05f);
  BitNetModel original = BitNetModel::create_full(config, init).value();
  const std::vector<float> want = logits_of(original, config.vocab);

  for (TernaryFileType type : {TernaryFileType::kTQ2_0, TernaryFileType::kTQ1_0}) {
    const std::string path = temp_path(std::string(GetParam().label) + ".gguf");
    ModelWriteOptions options;
    options.ternary_type = type;
    ASSERT_TRUE(write_model_gguf(path, original, options).ok());

    auto source = GgufModelSource::open(path);
    ASSERT_TRUE(source.ok()) << source.status().message();
    EXPECT_EQ(model_config_to_json(source.value()->config()), model_config_to_json(config));
    // A LoRA model reads the ternary codes straight from the file: same logits, bit for bit.
    LoraConfig lora;
    lora.rank = 2;
    BitNetModel reloaded =
        BitNetModel::create_lora(source.value()->config(), lora, *source.value(), 1).value();
    const std::vector<float> got = logits_of(reloaded, config.vocab);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);

    // Writing what was read gives the same bytes.
    const std::string again = temp_path(std::string(GetParam().label) + "_again.gguf");
    ASSERT_TRUE(write_model_gguf(again, reloaded, options).ok());
    const auto a = gguf::GgufFile::open(path).value(), b = gguf::GgufFile::open(again).value();
    ASSERT_EQ(a.bytes().size(), b.bytes().size());
    EXPECT_EQ(std::memcmp(a.bytes().data(), b.bytes().data(), a.bytes().size()), 0);
    std::remove(path.c_str());
    std::remove(again.c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ModelGgufTest,
    ::testing::Values(RoundTrip{config_with_hidden(256, 512), "tq_rows"},      // TQ blocks
                      RoundTrip{config_with_hidden(24, 40), "f16_fallback"}),  // rows % 256 != 0
    [](const auto& info) { return std::string(info.param.label); });

TEST(ModelGgufFileTest, gguf_layout_matches_llama_cpp_names) {
  ModelConfig c = config_with_hidden(256, 512);
  c.activation = ref::Activation::kSiLU;
  RandomInitSource init(2);
  BitNetModel model = BitNetModel::create_full(c, init).value();
  const std::string path = temp_path("names.gguf");
  ASSERT_TRUE(write_model_gguf(path, model).ok());
  const gguf::GgufFile f = gguf::GgufFile::open(path).value();
  EXPECT_EQ(f.get_string("general.architecture").value(), "bitnet");
  EXPECT_EQ(f.get_int("bitnet.block_count").value(), 2);
  EXPECT_EQ(f.get_int("bitnet.embedding_length").value(), 256);
  EXPECT_EQ(f.get_int("bitnet.attention.head_count_kv").value(), 2);
  const gguf::TensorInfo* q = f.find_tensor("blk.1.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, GgmlType::kTQ2_0);
  EXPECT_EQ(q->dims, (std::vector<int64_t>{256, 256}));  // ne0 = input features
  ASSERT_NE(f.find_tensor("blk.1.attn_q.scale"), nullptr);
  ASSERT_NE(f.find_tensor("blk.0.ffn_sub_norm.weight"), nullptr);
  EXPECT_EQ(f.find_tensor("token_embd.weight")->dims, (std::vector<int64_t>{256, 300}));
  std::remove(path.c_str());
}

TEST(ModelGgufFileTest, gguf_lora_adapter_round_trip) {
  const ModelConfig c = config_with_hidden(24, 40);
  RandomInitSource init(4);
  LoraConfig lora;
  lora.rank = 3;
  lora.alpha = 6.0f;
  lora.targets = {LinearId::kQ, LinearId::kV, LinearId::kDown};
  BitNetModel trained = BitNetModel::create_lora(c, lora, init, 7).value();
  // Train a little so B is no longer zero.
  AdamW adamw(trained.layout(), AdamWConfig{});
  std::vector<int32_t> tokens(12), labels(12);
  for (int i = 0; i < 12; ++i) tokens[i] = labels[(i + 11) % 12] = (i * 13) % 300;
  for (int s = 0; s < 3; ++s) {
    trained.grads().zero();
    trained.forward(tokens, labels, 2, 6);
    trained.backward(1.0f);
    adamw.step(trained.params(), trained.grads(), 1e-2);
  }
  const std::string path = temp_path("adapter.gguf");
  ASSERT_TRUE(write_lora_adapter(path, trained).ok());

  const gguf::GgufFile f = gguf::GgufFile::open(path).value();
  EXPECT_EQ(f.get_string("general.type").value(), "adapter");
  EXPECT_EQ(f.get_string("adapter.type").value(), "lora");
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("adapter.lora.alpha").value()), 6.0f);
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight.lora_a")->dims, (std::vector<int64_t>{24, 3}));
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight.lora_b")->dims, (std::vector<int64_t>{3, 24}));
  const LoraConfig read = lora_config_from_adapter(f, c).value();
  EXPECT_EQ(read.rank, 3);
  EXPECT_EQ(read.targets, lora.targets);

  RandomInitSource same_base(4);
  BitNetModel reloaded = BitNetModel::create_lora(c, read, same_base, 99).value();
  ASSERT_TRUE(load_lora_adapter(path, reloaded).ok());
  const std::vector<float> a = logits_of(trained, c.vocab), b = logits_of(reloaded, c.vocab);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);

  // An adapter for other targets is refused with a message.
  LoraConfig other = lora;
  other.targets = {LinearId::kQ};
  RandomInitSource base3(4);
  BitNetModel mismatched = BitNetModel::create_lora(c, other, base3, 1).value();
  EXPECT_NE(load_lora_adapter(path, mismatched).message().find("differ"), std::string::npos);
  std::remove(path.c_str());
}

TEST(ModelGgufFileTest, gguf_bad_model_files_are_named_errors) {
  gguf::GgufWriter w;
  w.set_string("general.architecture", "gpt2");
  const std::string path = temp_path("bad.gguf");
  ASSERT_TRUE(w.write(path).ok());
  EXPECT_NE(GgufModelSource::open(path).status().message().find("'gpt2' is not supported"),
            std::string::npos);
  w.set_string("general.architecture", "bitnet");
  w.set_u32("bitnet.embedding_length", 32);
  ASSERT_TRUE(w.write(path).ok());
  EXPECT_NE(GgufModelSource::open(path).status().message().find("bitnet.block_count"),
            std::string::npos);
  // Metadata claiming a huge model in a tiny file is refused before any allocation.
  w.set_u32("bitnet.block_count", 4096);
  w.set_u32("bitnet.feed_forward_length", 1 << 20);
  w.set_u32("bitnet.attention.head_count", 4);
  w.set_u32("bitnet.context_length", 64);
  w.add_tensor("token_embd.weight", GgmlType::kF32, {32, 10}, std::vector<uint8_t>(32 * 10 * 4));
  ASSERT_TRUE(w.write(path).ok());
  EXPECT_NE(GgufModelSource::open(path).status().message().find("cannot hold"), std::string::npos)
      << GgufModelSource::open(path).status().message();
  std::remove(path.c_str());
  EXPECT_FALSE(GgufModelSource::open(temp_path("missing.gguf")).ok());
}

TEST(ModelGgufFileTest, gguf_reads_llama_cpp_llama_models) {
  const std::string stories = shared_data("tiny-models/stories260K.gguf");
  const std::string random = shared_data("tiny-models/llama-2-tiny-random.gguf");
  if (!std::filesystem::exists(stories) || !std::filesystem::exists(random)) {
    GTEST_SKIP() << "../shared/data/tiny-models is missing (needs ../shared beside the repo)";
  }
  auto source = GgufModelSource::open(stories);
  ASSERT_TRUE(source.ok()) << source.status().message();
  const ModelConfig& c = source.value()->config();
  EXPECT_EQ(c.linear, LinearKind::kDense);
  EXPECT_EQ(c.layers, 5);
  EXPECT_EQ(c.hidden, 64);
  EXPECT_EQ(c.heads, 8);
  EXPECT_EQ(c.kv_heads, 4);
  EXPECT_EQ(c.ffn, 172);
  EXPECT_EQ(c.vocab, 512);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(c.rope_style, ref::RopeStyle::kInterleaved);
  BitNetModel model = BitNetModel::create_full(c, *source.value()).value();
  for (float v : logits_of(model, c.vocab)) ASSERT_TRUE(std::isfinite(v));

  auto f16 = GgufModelSource::open(random);
  ASSERT_TRUE(f16.ok()) << f16.status().message();
  EXPECT_EQ(f16.value()->config().vocab, 32000);
  EXPECT_EQ(f16.value()->config().layers, 1);
  BitNetModel tiny = BitNetModel::create_full(f16.value()->config(), *f16.value()).value();
  for (float v : logits_of(tiny, 32000)) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace tern::model_file_test

namespace tern::model_file_test {
namespace {

// End to end through llama.cpp's files: stories260K (a real trained Llama) with
// its own SentencePiece vocabulary predicts a TinyStories-style sentence far
// better than chance — and only with llama.cpp's interleaved RoPE pairing.
TEST(ModelGgufFileTest, gguf_stories260k_predicts_story_text) {
  const std::string path = shared_data("tiny-models/stories260K.gguf");
  if (!std::filesystem::exists(path)) {
    GTEST_SKIP() << "../shared/data/tiny-models is missing (needs ../shared beside the repo)";
  }
  auto source = GgufModelSource::open(path);
  ASSERT_TRUE(source.ok()) << source.status().message();
  const Tokenizer tokenizer =
      Tokenizer::create(vocab_from_gguf(source.value()->file()).value()).value();
  const std::vector<int32_t> ids = tokenizer.encode(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park with her friends.",
      /*add_special=*/true, /*parse_special=*/false);
  ASSERT_GT(ids.size(), 10u);
  const int64_t seq = static_cast<int64_t>(ids.size()) - 1;
  const std::vector<int32_t> tokens(ids.begin(), ids.end() - 1), labels(ids.begin() + 1, ids.end());

  auto loss_with = [&](ref::RopeStyle style) {
    ModelConfig c = source.value()->config();
    c.rope_style = style;
    BitNetModel model = BitNetModel::create_full(c, *source.value()).value();
    return model.forward(tokens, labels, 1, seq);
  };
  const float right = loss_with(ref::RopeStyle::kInterleaved);
  const float wrong = loss_with(ref::RopeStyle::kNeox);
  std::cout << "[stories260K] loss " << right << " (neox pairing: " << wrong << ", uniform "
            << std::log(512.0) << ")\n";
  RecordProperty("stories260k_loss", std::to_string(right));
  EXPECT_LT(right, 0.5 * std::log(512.0));
  EXPECT_LT(right, wrong);
}

}  // namespace
}  // namespace tern::model_file_test

namespace tern::model_file_test {
namespace {

// Continued pretraining from a ternary file: the fp32 latents tern derives must
// quantize back to the stored codes and scale, so the full model computes what
// the file holds (the packed, frozen model's logits, to γ's last ulp).
TEST(ModelGgufFileTest, gguf_full_training_from_ternary_file_starts_exactly) {
  const ModelConfig config = config_with_hidden(256, 512);
  RandomInitSource init(13, 0.05f);
  BitNetModel original = BitNetModel::create_full(config, init).value();
  const std::string path = temp_path("latents.gguf");
  ASSERT_TRUE(write_model_gguf(path, original).ok());
  auto source = GgufModelSource::open(path).value();
  BitNetModel frozen = BitNetModel::create_frozen(source->config(), *source).value();
  BitNetModel full = BitNetModel::create_full(source->config(), *source).value();
  const std::vector<float> a = logits_of(frozen, config.vocab), b = logits_of(full, config.vocab);
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += a[i] * a[i];
  }
  EXPECT_LT(std::sqrt(diff / norm), 1e-6);
  // Without the latent correction every scale would shrink by the non-zero fraction.
  RandomInitSource unused(0);
  for (const BitNetModel::BaseTensor& t : frozen.base_tensors()) {
    if (!t.ternary) continue;
    std::vector<float> latents(static_cast<size_t>(t.shape[0] * t.shape[1]));
    ASSERT_TRUE(source->read(t.name, t.shape, latents).ok());
    ref::TernaryMatrix q;
    ref::quantize_weights_absmean(&q, latents.data(), t.shape[0], t.shape[1]);
    EXPECT_EQ(q.packed, t.packed->packed) << t.name;
    EXPECT_LE(std::fabs(q.scale - t.packed->scale), 1e-6f * t.packed->scale) << t.name;
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tern::model_file_test

namespace tern::model_file_test {
namespace {

// A TQ2_0 byte with the unused field value 3 decodes to +2 in ggml; tern must
// refuse it as input instead of tripping its own ternary invariants.
TEST(ModelGgufFileTest, gguf_non_ternary_tq2_code_is_an_error) {
  const ModelConfig config = config_with_hidden(256, 512);
  RandomInitSource init(3, 0.05f);
  BitNetModel model = BitNetModel::create_full(config, init).value();
  const std::string path = temp_path("bad_code.gguf");
  ASSERT_TRUE(write_model_gguf(path, model).ok());
  std::vector<uint8_t> bytes;
  {
    const gguf::GgufFile f = gguf::GgufFile::open(path).value();
    const gguf::TensorInfo* q = f.find_tensor("blk.0.attn_q.weight");
    ASSERT_EQ(q->type, GgmlType::kTQ2_0);
    bytes.assign(f.bytes().begin(), f.bytes().end());
    bytes[f.data_offset() + q->offset + 5] = 0xFF;  // four fields of value 3
  }
  {
    std::FILE* out = std::fopen(path.c_str(), "wb");
    std::fwrite(bytes.data(), 1, bytes.size(), out);
    std::fclose(out);
  }
  auto source = GgufModelSource::open(path);
  ASSERT_TRUE(source.ok());
  LoraConfig lora;
  const Result<BitNetModel> loaded =
      BitNetModel::create_lora(source.value()->config(), lora, *source.value(), 1);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("not ternary"), std::string::npos)
      << loaded.status().message();
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tern::model_file_test
