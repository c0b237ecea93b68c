// Perplexity evaluation against losses computed independently with
// BitNetModel::forward, loss-mask handling, and load_model round trips through
// model and adapter GGUF files with tokenizer metadata.
#include "train/eval.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/rng.h"
#include "format/gguf.h"
#include "model/model_file.h"
#include "support/micro_model.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"
#include "train/load_model.h"

namespace tern::eval_test {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("tern_eval_" + name)).string();
}

BitNetModel micro_model(uint64_t seed) {
  RandomInitSource init(seed, 0.2f);
  return BitNetModel::create_full(testing::micro_config(), init).value();
}

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t& t : v) t = static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab)));
  return v;
}

// Σ NLL and count, one forward per window of `seq` predictions, labels from the mask.
std::pair<double, int64_t> nll_by_forward(BitNetModel& model, const std::vector<int32_t>& tokens,
                                          const std::vector<uint8_t>& mask, int64_t seq) {
  double sum = 0.0;
  int64_t count = 0;
  const auto predictions = static_cast<int64_t>(tokens.size()) - 1;
  for (int64_t start = 0; start < predictions; start += seq) {
    const int64_t len = std::min(seq, predictions - start);
    std::vector<int32_t> in(tokens.begin() + start, tokens.begin() + start + len);
    std::vector<int32_t> labels(static_cast<size_t>(len));
    int64_t counted = 0;
    for (int64_t i = 0; i < len; ++i) {
      const auto target = static_cast<size_t>(start + i + 1);
      const bool is_target = mask.empty() || mask[target] != 0;
      labels[static_cast<size_t>(i)] = is_target ? tokens[target] : -1;
      counted += is_target;
    }
    const float mean = model.forward(in, labels, 1, len);
    sum += static_cast<double>(mean) * static_cast<double>(counted);
    count += counted;
  }
  return {sum, count};
}

TEST(EvalTest, PerplexityIsExpOfTheForwardLoss) {
  BitNetModel model = micro_model(1);
  const std::vector<int32_t> tokens = random_tokens(50, 256, 2);  // 49 predictions: 6×8 + 1
  const auto [sum, count] = nll_by_forward(model, tokens, {}, 8);
  ASSERT_EQ(count, 49);
  const TokenStream stream = TokenStream::owned(tokens);
  for (int64_t batch : {1, 3, 16}) {
    const EvalResult r = evaluate_stream(model, stream, {8, batch}).value();
    EXPECT_EQ(r.tokens, 49) << batch;
    EXPECT_NEAR(r.mean_nll, sum / 49.0, 1e-5 * r.mean_nll) << batch;
    EXPECT_DOUBLE_EQ(r.perplexity, std::exp(r.mean_nll));
  }
}

TEST(EvalTest, MaskedTargetsAreNotCounted) {
  BitNetModel model = micro_model(3);
  const std::vector<int32_t> tokens = random_tokens(40, 256, 4);
  std::vector<uint8_t> mask(tokens.size(), 1);
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = (i / 5) % 2;  // runs of 5 on and off
  int64_t targets = 0;
  for (size_t i = 1; i < mask.size(); ++i) targets += mask[i];
  const auto [sum, count] = nll_by_forward(model, tokens, mask, 6);
  ASSERT_EQ(count, targets);
  const EvalResult r = evaluate_stream(model, TokenStream::owned(tokens, mask), {6, 4}).value();
  EXPECT_EQ(r.tokens, targets);
  EXPECT_NEAR(r.mean_nll, sum / static_cast<double>(count), 1e-5 * r.mean_nll);
  // Counting the masked ones too would give another mean.
  const EvalResult unmasked = evaluate_stream(model, TokenStream::owned(tokens), {6, 4}).value();
  EXPECT_EQ(unmasked.tokens, 39);
  EXPECT_NE(unmasked.mean_nll, r.mean_nll);

  std::vector<uint8_t> none(tokens.size(), 0);
  none[0] = 1;  // the first token is never a prediction target
  EXPECT_NE(evaluate_stream(model, TokenStream::owned(tokens, none), {6, 4})
                .status()
                .message()
                .find("none of the 39 predicted tokens is a target"),
            std::string::npos);
}

TEST(EvalTest, BadInputsAreNamedErrors) {
  BitNetModel model = micro_model(5);
  const TokenStream stream = TokenStream::owned(random_tokens(20, 256, 6));
  EXPECT_NE(evaluate_stream(model, stream, {0, 1}).status().message().find("window length 0"),
            std::string::npos);
  EXPECT_NE(evaluate_stream(model, stream, {17, 1}).status().message().find("outside [1, 16]"),
            std::string::npos);
  EXPECT_NE(evaluate_stream(model, stream, {8, 0}).status().message().find("batch 0"),
            std::string::npos);
  EXPECT_NE(evaluate_stream(model, TokenStream::owned({7}), {8, 1})
                .status()
                .message()
                .find("1 tokens, need at least 2"),
            std::string::npos);
  std::vector<int32_t> bad = random_tokens(20, 256, 6);
  bad[13] = 300;
  EXPECT_NE(evaluate_stream(model, TokenStream::owned(bad), {8, 1}).status().message().find("300"),
            std::string::npos);
}

// Byte-level BPE over all 256 bytes (no merges) plus BOS, added at the start.
Vocab byte_vocab() {
  Vocab v;
  v.model = VocabModel::kBpe;
  v.pre = "gpt-2";
  for (int b = 0; b < 256; ++b) {
    v.tokens.emplace_back(tokenizer_detail::byte_to_unicode(static_cast<uint8_t>(b)));
  }
  v.tokens.emplace_back("<|bos|>");
  v.scores.assign(v.tokens.size(), 0.0f);
  v.token_types.assign(v.tokens.size(), TokenType::kNormal);
  v.token_types.back() = TokenType::kControl;
  v.bos_id = 256;
  v.add_bos = true;
  return v;
}

ModelConfig byte_model_config() {
  ModelConfig c = testing::micro_config();
  c.vocab = 257;
  c.max_seq = 32;
  return c;
}

TEST(EvalTest, TextFileIsOneDocumentWithBos) {
  const Tokenizer tok = Tokenizer::create(byte_vocab()).value();
  const std::string text = "one line\nanother line\n\nand a paragraph <|bos|> as plain text\n";
  const std::vector<int32_t> tokens = tokenize_eval_text(tok, text);
  ASSERT_EQ(tokens.size(), text.size() + 1);  // one token per byte, special text not parsed
  EXPECT_EQ(tokens[0], 256);
  EXPECT_EQ(tok.decode(std::span(tokens).subspan(1)), text);

  const std::string path = temp_path("text.txt");
  std::ofstream(path, std::ios::binary) << text;
  RandomInitSource init(7, 0.2f);
  BitNetModel model = BitNetModel::create_frozen(byte_model_config(), init).value();
  const EvalResult from_file = evaluate_text_file(model, tok, path, {16, 2}).value();
  const EvalResult from_stream =
      evaluate_stream(model, TokenStream::owned(tokens), {16, 2}).value();
  EXPECT_EQ(from_file.tokens, static_cast<int64_t>(text.size()));
  EXPECT_EQ(from_file.mean_nll, from_stream.mean_nll);
  std::remove(path.c_str());
  EXPECT_NE(evaluate_text_file(model, tok, path, {16, 2}).status().message().find(path),
            std::string::npos);
}

// The tokenizer.ggml.* entries add_vocab_to_gguf writes, as extra model metadata.
std::vector<std::pair<std::string, gguf::Value>> vocab_metadata(const Vocab& vocab) {
  gguf::GgufWriter w;
  add_vocab_to_gguf(vocab, w);
  const gguf::GgufFile f = gguf::GgufFile::parse(w.serialize()).value();
  return f.metadata();
}

std::vector<float> logits_of(BitNetModel& model) {
  const std::vector<int32_t> tokens = random_tokens(20, 257, 8);
  model.forward(tokens, {}, 2, 10);
  return {model.logits().begin(), model.logits().end()};
}

TEST(LoadModelTest, ModelAndAdapterRoundTripWithTokenizer) {
  const ModelConfig config = byte_model_config();
  LoraConfig lora;
  lora.rank = 3;
  lora.alpha = 6.0f;
  lora.targets = {LinearId::kQ, LinearId::kV, LinearId::kDown};
  RandomInitSource init(9, 0.2f);
  BitNetModel tuned = BitNetModel::create_lora(config, lora, init, 10).value();
  Rng rng(11);
  for (const TensorInfo& info : tuned.layout().tensors()) {
    for (float& v : tuned.params().view(info)) v += static_cast<float>(0.1 * rng.normal());
  }
  const std::string model_path = temp_path("model.gguf");
  const std::string adapter_path = temp_path("adapter.gguf");
  ModelWriteOptions options;
  options.extra_metadata = vocab_metadata(byte_vocab());
  ASSERT_TRUE(write_model_gguf(model_path, tuned, options).ok());
  ASSERT_TRUE(write_lora_adapter(adapter_path, tuned).ok());

  LoadedModel with_adapter = load_model(model_path, adapter_path).value();
  ASSERT_TRUE(with_adapter.model.is_lora());
  EXPECT_EQ(with_adapter.model.lora_config().rank, 3);
  EXPECT_EQ(with_adapter.model.lora_config().targets, lora.targets);
  ASSERT_TRUE(with_adapter.tokenizer.has_value());
  EXPECT_EQ(with_adapter.tokenizer->vocab().tokens, byte_vocab().tokens);
  EXPECT_EQ(logits_of(with_adapter.model), logits_of(tuned));

  LoadedModel base = load_model(model_path).value();
  EXPECT_FALSE(base.model.is_lora());
  EXPECT_TRUE(base.model.has_frozen_base());
  RandomInitSource same_init(9, 0.2f);
  BitNetModel frozen = BitNetModel::create_frozen(config, same_init).value();
  EXPECT_EQ(logits_of(base.model), logits_of(frozen));
  EXPECT_TRUE(require_tokenizer(base, model_path).ok());

  // Without tokenizer metadata: no tokenizer, and text commands get a clear message.
  ASSERT_TRUE(write_model_gguf(model_path, tuned).ok());
  LoadedModel bare = load_model(model_path).value();
  EXPECT_FALSE(bare.tokenizer.has_value());
  EXPECT_EQ(require_tokenizer(bare, model_path).status().message(),
            "model '" + model_path + "' has no tokenizer metadata");

  // Errors name the file.
  const std::string missing = temp_path("missing.gguf");
  EXPECT_NE(load_model(missing).status().message().find(missing), std::string::npos);
  EXPECT_NE(load_model(model_path, missing).status().message().find(missing), std::string::npos);
  std::remove(model_path.c_str());
  std::remove(adapter_path.c_str());
}

TEST(LoadModelTest, TokenizerLargerThanTheModelIsRefused) {
  ModelConfig config = byte_model_config();
  config.vocab = 256;  // one short of the vocabulary
  RandomInitSource init(12, 0.2f);
  BitNetModel model = BitNetModel::create_frozen(config, init).value();
  const std::string path = temp_path("small.gguf");
  ModelWriteOptions options;
  options.extra_metadata = vocab_metadata(byte_vocab());
  ASSERT_TRUE(write_model_gguf(path, model, options).ok());
  const Status s = load_model(path).status();
  EXPECT_NE(s.message().find("tokenizer has 257 tokens but the model's vocabulary is 256"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find(path), std::string::npos);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tern::eval_test
