// KvDecoder against the full forward, the sampler's guarantees, and the
// streaming generate loop (EOS, stop strings, cache limits).
#include "train/generate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "core/rng.h"
#include "support/micro_model.h"
#include "tokenizer/unicode.h"

namespace tern {
namespace {

// Longer than the decoder's prefill chunk (32), so prefill crosses a chunk border.
constexpr int64_t kSeq = 40;

ModelConfig ternary_relu2_gqa() {
  return testing::small_ternary_config(2, 61, 48);
}

ModelConfig dense_silu() {
  ModelConfig c = testing::as_dense_llama(ternary_relu2_gqa());
  c.kv_heads = 4;
  c.head_dim = 6;  // heads·head_dim = 24 and ffn below hidden: every buffer has its own width
  c.ffn = 24;
  return c;
}

std::vector<int32_t> ramp(int64_t n, int64_t vocab) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = static_cast<int32_t>((i * 17 + 5) % vocab);
  return v;
}

// max |a − b| / max |b| over one row of logits.
double relative_diff(std::span<const float> a, std::span<const float> b) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

// Prefills tokens[0, split), then steps through the rest, comparing the logits
// for every position with the full forward's.
void expect_decoder_matches_forward(BitNetModel& model, int64_t split) {
  const int64_t vocab = model.config().vocab;
  const std::vector<int32_t> tokens = ramp(kSeq, vocab);
  model.forward(tokens, {}, 1, kSeq);
  const std::vector<float> full(model.logits().begin(), model.logits().end());  // [kSeq, V]
  auto row = [&](int64_t pos) {
    return std::span<const float>(full).subspan(static_cast<size_t>(pos * vocab),
                                                static_cast<size_t>(vocab));
  };
  KvDecoder decoder = KvDecoder::create(model).value();
  Result<std::span<const float>> logits =
      decoder.prefill(std::span<const int32_t>(tokens).first(static_cast<size_t>(split)));
  ASSERT_TRUE(logits.ok()) << logits.status().message();
  EXPECT_LE(relative_diff(logits.value(), row(split - 1)), 1e-5) << "prefill of " << split;
  for (int64_t pos = split; pos < kSeq; ++pos) {
    logits = decoder.step(tokens[static_cast<size_t>(pos)]);
    ASSERT_TRUE(logits.ok()) << logits.status().message();
    EXPECT_LE(relative_diff(logits.value(), row(pos)), 1e-5) << "position " << pos;
  }
  EXPECT_EQ(decoder.position(), kSeq);
}

TEST(KvDecoderTest, TernaryReluGqaSubNormsMatchesForward) {
  RandomInitSource init(3, 0.1f);
  BitNetModel full = BitNetModel::create_full(ternary_relu2_gqa(), init).value();
  for (int64_t split : {int64_t{1}, int64_t{5}, int64_t{33}, kSeq})
    expect_decoder_matches_forward(full, split);
  RandomInitSource frozen_init(4, 0.1f);
  BitNetModel frozen = BitNetModel::create_frozen(ternary_relu2_gqa(), frozen_init).value();
  expect_decoder_matches_forward(frozen, 7);
}

// The cache's storage follows the positions used (doubling, at least 16, capped
// at the context); growing keeps what the cache held, which the forward
// comparisons above check across every growth (16 → 32 → 48 of kSeq = 40).
TEST(KvDecoderTest, CacheGrowsWithThePositionsUsed) {
  RandomInitSource init(8, 0.1f);
  BitNetModel model = BitNetModel::create_full(ternary_relu2_gqa(), init).value();
  KvDecoder decoder = KvDecoder::create(model).value();
  ASSERT_EQ(decoder.capacity(), 48);
  EXPECT_EQ(decoder.cache_positions(), 0);
  const std::vector<int32_t> tokens = ramp(48, model.config().vocab);
  ASSERT_TRUE(decoder.prefill(std::span<const int32_t>(tokens).first(3)).ok());
  EXPECT_EQ(decoder.cache_positions(), 16);
  for (size_t i = 3; i < 17; ++i) ASSERT_TRUE(decoder.step(tokens[i]).ok());
  EXPECT_EQ(decoder.cache_positions(), 32);
  decoder.truncate(2);  // rewinding keeps the storage
  EXPECT_EQ(decoder.cache_positions(), 32);
  ASSERT_TRUE(decoder.prefill(std::span<const int32_t>(tokens).subspan(2, 33)).ok());
  EXPECT_EQ(decoder.cache_positions(), 48);  // 35 needed, doubling capped at the context
  EXPECT_FALSE(decoder.prefill(std::span<const int32_t>(tokens).first(14)).ok());
  EXPECT_EQ(decoder.position(), 35);
}

TEST(KvDecoderTest, DenseSiluWithoutSubNormsMatchesForward) {
  RandomInitSource init(5, 0.1f);
  BitNetModel full = BitNetModel::create_full(dense_silu(), init).value();
  for (int64_t split : {1, 34}) expect_decoder_matches_forward(full, split);
}

TEST(KvDecoderTest, FrozenF16TensorsMatchForward) {
  // An "F16 checkpoint": embedding, head and dense linears stay binary16 in the model.
  for (const ModelConfig& config : {dense_silu(), ternary_relu2_gqa()}) {
    RandomInitSource init(12, 0.1f, /*f16=*/true);
    BitNetModel model = BitNetModel::create_frozen(config, init).value();
    expect_decoder_matches_forward(model, 3);
  }
}

TEST(KvDecoderTest, LoraWithNonZeroBMatchesForward) {
  for (const ModelConfig& config : {ternary_relu2_gqa(), dense_silu()}) {
    LoraConfig lora;
    lora.rank = 4;
    lora.alpha = 8.0f;
    lora.targets = {LinearId::kQ,    LinearId::kK,  LinearId::kV,   LinearId::kO,
                    LinearId::kGate, LinearId::kUp, LinearId::kDown};
    RandomInitSource init(6, 0.1f);
    BitNetModel model = BitNetModel::create_lora(config, lora, init, 7).value();
    Rng rng(8);
    for (const TensorInfo& info : model.layout().tensors()) {
      if (!info.name.ends_with(".lora_b")) continue;
      for (float& v : model.params().view(info)) v = static_cast<float>(0.2 * rng.normal());
    }
    // Without LoRA in the decoder the logits would now differ.
    RandomInitSource base_init(6, 0.1f);
    BitNetModel base = BitNetModel::create_frozen(config, base_init).value();
    const std::vector<int32_t> tokens = ramp(3, config.vocab);
    KvDecoder plain = KvDecoder::create(base).value();
    KvDecoder adapted = KvDecoder::create(model).value();
    EXPECT_GT(relative_diff(adapted.prefill(tokens).value(), plain.prefill(tokens).value()), 1e-3);
    expect_decoder_matches_forward(model, 9);
  }
}

TEST(KvDecoderTest, ErrorsLeaveTheCacheUnchanged) {
  RandomInitSource init(3, 0.1f);
  BitNetModel model = BitNetModel::create_frozen(ternary_relu2_gqa(), init).value();
  KvDecoder decoder = KvDecoder::create(model).value();
  const int64_t cap = decoder.capacity();
  EXPECT_EQ(cap, 48);
  EXPECT_NE(decoder.prefill({}).status().message().find("no tokens"), std::string::npos);
  const std::vector<int32_t> bad = {1, 61};
  EXPECT_NE(decoder.prefill(bad).status().message().find("token 61 at index 1 outside vocab of 61"),
            std::string::npos);
  EXPECT_EQ(decoder.position(), 0);

  const std::vector<int32_t> tokens = ramp(cap, 61);
  ASSERT_TRUE(decoder.prefill(tokens).ok());
  EXPECT_EQ(decoder.position(), cap);
  const Status full = decoder.step(0).status();
  EXPECT_NE(full.message().find("1 tokens at position 48 exceed the context of 48 tokens"),
            std::string::npos)
      << full.message();
  EXPECT_EQ(decoder.position(), cap);
}

TEST(KvDecoderTest, TruncateRewindsToAnEarlierPosition) {
  RandomInitSource init(3, 0.1f);
  BitNetModel model = BitNetModel::create_frozen(ternary_relu2_gqa(), init).value();
  KvDecoder decoder = KvDecoder::create(model).value();
  const std::vector<int32_t> tokens = ramp(10, 61);
  decoder.prefill(std::span(tokens).first(6)).value();
  const std::span<const float> at6 = decoder.step(tokens[6]).value();
  const std::vector<float> want(at6.begin(), at6.end());
  decoder.prefill(std::span(tokens).last(3)).value();  // different continuation
  decoder.truncate(6);
  EXPECT_EQ(decoder.position(), 6);
  const std::span<const float> again = decoder.step(tokens[6]).value();
  EXPECT_EQ(std::vector<float>(again.begin(), again.end()), want);
  decoder.reset();
  EXPECT_EQ(decoder.position(), 0);
}

SamplerConfig sampling(float temperature, int64_t top_k, float top_p, uint64_t seed) {
  SamplerConfig c;
  c.temperature = temperature;
  c.top_k = top_k;
  c.top_p = top_p;
  c.seed = seed;
  return c;
}

GenerateOptions options(int64_t max_tokens, std::string stop = "") {
  GenerateOptions o;
  o.max_tokens = max_tokens;
  o.stop = std::move(stop);
  return o;
}

std::vector<float> random_logits(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(rng.normal());
  return v;
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

TEST(SamplerTest, SameSeedSameTokensOtherSeedOtherTokens) {
  const std::vector<float> logits = random_logits(100, 1);
  SamplerConfig config{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 42};
  Sampler a(config, 100), b(config, 100);
  config.seed = 43;
  Sampler c(config, 100);
  std::vector<int32_t> sa, sb, sc;
  for (int i = 0; i < 200; ++i) {
    sa.push_back(a.sample(logits));
    sb.push_back(b.sample(logits));
    sc.push_back(c.sample(logits));
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  EXPECT_GT(std::set<int32_t>(sa.begin(), sa.end()).size(), 10u);  // it really samples
}

TEST(SamplerTest, GreedyCases) {
  std::vector<float> logits = random_logits(50, 2);
  const int32_t best = argmax(logits);
  for (const SamplerConfig& config :
       {sampling(0.0f, 0, 1.0f, 1), sampling(5.0f, 1, 1.0f, 1), sampling(5.0f, 0, 1e-6f, 1)}) {
    Sampler s(config, 50);
    for (int i = 0; i < 50; ++i) ASSERT_EQ(s.sample(logits), best);
  }
  // Ties go to the lower id; NaN never wins.
  std::vector<float> tied(8, 0.0f);
  tied[3] = tied[6] = 2.0f;
  tied[1] = NAN;
  Sampler greedy(sampling(0.0f, 0, 1.0f, 1), 8);
  EXPECT_EQ(greedy.sample(tied), 3);
}

TEST(SamplerTest, TopKNeverLeavesTheKBest) {
  const std::vector<float> logits = random_logits(64, 3);
  std::vector<int32_t> ids(64);
  for (int32_t i = 0; i < 64; ++i) ids[static_cast<size_t>(i)] = i;
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const std::set<int32_t> kept(ids.begin(), ids.begin() + 5);
  Sampler s(sampling(3.0f, 5, 1.0f, 9), 64);
  std::set<int32_t> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(s.sample(logits));
  EXPECT_EQ(seen, kept);  // only the 5 best, and (at this temperature) all of them
}

TEST(SamplerTest, TopPKeepsTheSmallestNucleus) {
  // Probabilities 0.4, 0.3, 0.2, 0.1 at temperature 1 (ids shuffled).
  std::vector<float> logits(6, -INFINITY);
  logits[4] = std::log(0.4f);
  logits[0] = std::log(0.3f);
  logits[5] = std::log(0.2f);
  logits[2] = std::log(0.1f);
  for (const auto& [p, want] : std::vector<std::pair<float, std::set<int32_t>>>{
           {0.5f, {4, 0}}, {0.75f, {4, 0, 5}}, {1.0f, {4, 0, 5, 2}}}) {
    Sampler s(sampling(1.0f, 0, p, 11), 6);
    std::set<int32_t> seen;
    for (int i = 0; i < 2000; ++i) seen.insert(s.sample(logits));
    EXPECT_EQ(seen, want) << "top_p " << p;
  }
}

TEST(SamplerTest, BadConfigsAreNamed) {
  EXPECT_NE(sampling(-1.0f, 40, 0.95f, 0).validate().message().find("temperature -1"),
            std::string::npos);
  EXPECT_FALSE(sampling(NAN, 40, 0.95f, 0).validate().ok());
  EXPECT_NE(sampling(0.8f, -2, 0.95f, 0).validate().message().find("top_k -2"), std::string::npos);
  EXPECT_NE(sampling(0.8f, 40, 0.0f, 0).validate().message().find("top_p 0"), std::string::npos);
  EXPECT_FALSE(sampling(0.8f, 40, 1.5f, 0).validate().ok());
  EXPECT_TRUE(SamplerConfig{}.validate().ok());
}

// A byte-level BPE vocabulary of single ASCII characters plus BOS/EOS, no merges.
Tokenizer ascii_tokenizer(int32_t eos_id) {
  Vocab v;
  v.model = VocabModel::kBpe;
  v.pre = "gpt-2";
  const std::string chars = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.:#\n";
  for (char ch : chars)
    v.tokens.emplace_back(tokenizer_detail::byte_to_unicode(static_cast<uint8_t>(ch)));
  v.tokens.emplace_back("<|bos|>");
  v.tokens.emplace_back("<|eos|>");
  v.scores.assign(v.tokens.size(), 0.0f);
  v.token_types.assign(v.tokens.size(), TokenType::kNormal);
  v.token_types[v.tokens.size() - 2] = v.token_types[v.tokens.size() - 1] = TokenType::kControl;
  v.bos_id = static_cast<int32_t>(v.tokens.size() - 2);
  v.eos_id = eos_id;
  return Tokenizer::create(std::move(v)).value();
}

// Greedy continuation of `prompt` by full forwards over the growing sequence.
std::vector<int32_t> greedy_by_forward(BitNetModel& model, std::vector<int32_t> seq, int n) {
  std::vector<int32_t> out;
  const int64_t vocab = model.config().vocab;
  for (int i = 0; i < n; ++i) {
    const auto t = static_cast<int64_t>(seq.size());
    model.forward(seq, {}, 1, t);
    const std::span<const float> last =
        model.logits().subspan(static_cast<size_t>((t - 1) * vocab));
    const int32_t next = argmax(std::vector<float>(last.begin(), last.end()));
    out.push_back(next);
    seq.push_back(next);
  }
  return out;
}

class GenerateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = ternary_relu2_gqa();
    config_.vocab = 59;  // ascii_tokenizer's size
    RandomInitSource init(21, 0.3f);
    model_.emplace(BitNetModel::create_frozen(config_, init).value());
    prompt_ = {7, 4, 11, 11, 14};  // "hello"
    expected_ = greedy_by_forward(*model_, prompt_, 12);
  }
  Result<GenerateStats> run(const Tokenizer& tok, const GenerateOptions& options,
                            KvDecoder& decoder, std::string* text) {
    Sampler greedy(sampling(0.0f, 40, 0.95f, 0), config_.vocab);
    return generate(decoder, greedy, &tok, prompt_, options,
                    [&](std::string_view piece) { *text += piece; });
  }
  ModelConfig config_;
  std::optional<BitNetModel> model_;
  std::vector<int32_t> prompt_;
  std::vector<int32_t> expected_;
};

TEST_F(GenerateTest, StreamsTheGreedyContinuation) {
  const Tokenizer tok = ascii_tokenizer(-1);
  KvDecoder decoder = KvDecoder::create(*model_).value();
  std::string text;
  const GenerateStats stats = run(tok, options(12), decoder, &text).value();
  EXPECT_EQ(text, tok.decode(expected_));
  EXPECT_EQ(stats.prompt_tokens, 5);
  EXPECT_EQ(stats.generated_tokens, 12);
  EXPECT_EQ(stats.stop, StopReason::kMaxTokens);
  EXPECT_EQ(decoder.position(), 5 + 12);
  EXPECT_GT(stats.decode_tokens_per_s(), 0.0);

  // Without a tokenizer (speed runs): the same tokens, no text.
  KvDecoder silent = KvDecoder::create(*model_).value();
  Sampler greedy(sampling(0.0f, 40, 0.95f, 0), config_.vocab);
  int calls = 0;
  const GenerateStats quiet =
      generate(silent, greedy, nullptr, prompt_, options(12), [&](std::string_view) {
        ++calls;
      }).value();
  EXPECT_EQ(quiet.generated_tokens, 12);
  EXPECT_EQ(calls, 0);
}

TEST_F(GenerateTest, StopsAtEos) {
  // Make the fourth greedy token the EOS id (if it occurs earlier, stop there).
  const int32_t eos = expected_[3];
  const auto first = std::find(expected_.begin(), expected_.end(), eos) - expected_.begin();
  const Tokenizer tok = ascii_tokenizer(eos);
  KvDecoder decoder = KvDecoder::create(*model_).value();
  std::string text;
  const GenerateStats stats = run(tok, options(12), decoder, &text).value();
  EXPECT_EQ(stats.stop, StopReason::kEos);
  EXPECT_EQ(stats.generated_tokens, first + 1);
  EXPECT_EQ(text, tok.decode(std::span(expected_).first(static_cast<size_t>(first))));
  EXPECT_EQ(decoder.position(), 5 + first + 1);  // the EOS is in the cache
}

TEST_F(GenerateTest, StopStringIsWithheldAndDroppedFromTheCache) {
  const Tokenizer tok = ascii_tokenizer(-1);
  const std::string all = tok.decode(expected_);
  ASSERT_EQ(all.size(), expected_.size());  // one character per token
  // A stop string made of greedy tokens 4..6; its first occurrence decides.
  const std::string stop = all.substr(4, 3);
  const size_t at = all.find(stop);
  KvDecoder decoder = KvDecoder::create(*model_).value();
  std::string text;
  const GenerateStats stats = run(tok, options(12, stop), decoder, &text).value();
  EXPECT_EQ(stats.stop, StopReason::kStopString);
  EXPECT_EQ(text, all.substr(0, at));
  EXPECT_EQ(stats.generated_tokens, static_cast<int64_t>(at + stop.size()));
  EXPECT_EQ(decoder.position(), 5 + static_cast<int64_t>(at));
  EXPECT_EQ(stats.uncached_text, "");
}

TEST_F(GenerateTest, StopsWhenTheCacheIsFull) {
  const Tokenizer tok = ascii_tokenizer(-1);
  KvDecoder decoder = KvDecoder::create(*model_).value();
  std::vector<int32_t> filler(static_cast<size_t>(decoder.capacity() - 5 - 3), 0);
  decoder.prefill(filler).value();
  std::string text;
  const GenerateStats stats = run(tok, options(100), decoder, &text).value();
  EXPECT_EQ(stats.stop, StopReason::kCacheFull);
  EXPECT_EQ(stats.generated_tokens, 3);
  EXPECT_EQ(decoder.position(), decoder.capacity());
  // A prompt that does not fit is an error, not a slide.
  EXPECT_FALSE(run(tok, options(256), decoder, &text).ok());
}

}  // namespace
}  // namespace tern
