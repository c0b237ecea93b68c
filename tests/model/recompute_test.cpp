// The memory-lean paths give the same bits as the plain ones:
//  - ActivationMemory::kRecompute (checkpoint segments, chunked per-token work,
//    recomputed attention probabilities, chunked head) against kCache, on
//    ternary and dense configs, batch > 1, token counts that are not a multiple
//    of the chunk, odd layer counts (uneven segments);
//  - F16 frozen storage against fp32 storage of the same values;
//  - the kernels behind them against the reference kernels they mirror;
//  - RandomInitSource's streamed ternary/F16 reads against the whole-tensor path,
//    and its values against Rng::normal() one at a time.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "format/ggml_quants.h"
#include "kernels/ref/attention.h"
#include "kernels/ref/embedding.h"
#include "kernels/ref/f16_linear.h"
#include "kernels/ref/linear.h"
#include "kernels/ref/ternary.h"
#include "model/bitnet.h"
#include "optim/adamw.h"
#include "support/micro_model.h"

namespace tern::recompute_test {
namespace {

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<float> random_floats(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// Ternary BitNet block: ReLU², GQA, sub-norms, tied head; 5 layers → segments 2, 2, 1.
ModelConfig ternary_config() {
  return testing::small_ternary_config(5, 40, 64);
}

// Plain Llama: dense, SiLU, no sub-norms, untied head, interleaved RoPE.
ModelConfig dense_config() {
  ModelConfig c = testing::as_dense_llama(ternary_config());
  c.layers = 3;
  c.kv_heads = 4;
  return c;
}

struct Batch {
  int64_t batch, seq;
  std::vector<int32_t> tokens, labels;
};

Batch make_batch(int64_t batch, int64_t seq, int64_t vocab, uint64_t seed) {
  Batch b{batch, seq, {}, {}};
  Rng rng(seed);
  for (int64_t i = 0; i < batch * seq; ++i) {
    b.tokens.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab))));
    // Some ignored labels, so the count differs from N.
    b.labels.push_back(i % 7 == 3 ? -1 : static_cast<int32_t>(rng.below(vocab)));
  }
  return b;
}

struct StepResult {
  std::vector<float> losses;
  std::vector<std::vector<float>> grads;  // per step, the whole gradient buffer
  std::vector<float> logits;              // of the first forward
};

// Three AdamW steps on varying batch shapes (the workspace is re-sized between).
StepResult train(BitNetModel& model, const std::vector<Batch>& batches) {
  StepResult r;
  AdamW adamw(model.layout(), AdamWConfig{});
  for (const Batch& b : batches) {
    model.grads().zero();
    r.losses.push_back(model.forward(b.tokens, b.labels, b.batch, b.seq));
    if (r.logits.empty()) r.logits.assign(model.logits().begin(), model.logits().end());
    model.backward(0.5f);
    r.grads.emplace_back(model.grads().span().begin(), model.grads().span().end());
    adamw.step(model.params(), model.grads(), 1e-2);
  }
  return r;
}

void expect_same(const StepResult& a, const StepResult& b) {
  ASSERT_EQ(a.losses.size(), b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i) {
    EXPECT_EQ(std::memcmp(&a.losses[i], &b.losses[i], sizeof(float)), 0)
        << "step " << i << ": " << a.losses[i] << " vs " << b.losses[i];
    EXPECT_TRUE(same_bits(a.grads[i], b.grads[i])) << "gradients differ at step " << i;
  }
  EXPECT_TRUE(same_bits(a.logits, b.logits));
}

void check_recompute_matches_cache(const ModelConfig& c, const LoraConfig& lora, bool f16) {
  // N = 74 and 69: chunks of 32 leave tails; batch > 1 puts chunk edges mid-sequence.
  const std::vector<Batch> batches = {make_batch(2, 37, c.vocab, 11),
                                      make_batch(3, 23, c.vocab, 12),
                                      make_batch(2, 37, c.vocab, 13)};
  RandomInitSource init(7, 0.2f, f16);
  BitNetModel lean = BitNetModel::create_lora(c, lora, init, 3).value();
  BitNetModel cached = BitNetModel::create_lora(c, lora, init, 3).value();
  EXPECT_EQ(lean.activation_memory(), ActivationMemory::kRecompute);  // the LoRA default
  cached.set_activation_memory(ActivationMemory::kCache);
  const StepResult a = train(lean, batches);
  const StepResult b = train(cached, batches);
  expect_same(a, b);
  // Non-trivial: the adapters moved the loss.
  EXPECT_NE(a.losses[0], a.losses[2]);
  EXPECT_LT(lean.memory_use().workspace_bytes, cached.memory_use().workspace_bytes);
}

LoraConfig all_targets() {
  LoraConfig lora;
  lora.rank = 3;
  lora.targets = {LinearId::kQ,    LinearId::kK,  LinearId::kV,   LinearId::kO,
                  LinearId::kGate, LinearId::kUp, LinearId::kDown};
  return lora;
}

TEST(RecomputeTest, TernaryMatchesCacheBitForBit) {
  check_recompute_matches_cache(ternary_config(), all_targets(), /*f16=*/false);
}

TEST(RecomputeTest, DenseMatchesCacheBitForBit) {
  check_recompute_matches_cache(dense_config(), LoraConfig{}, /*f16=*/false);
}

TEST(RecomputeTest, F16BaseMatchesCacheBitForBit) {
  check_recompute_matches_cache(dense_config(), all_targets(), /*f16=*/true);
  check_recompute_matches_cache(ternary_config(), LoraConfig{}, /*f16=*/true);
}

TEST(RecomputeTest, AutoCachesExactlyWhenTheCacheFitsTheBudget) {
  const ModelConfig c = ternary_config();
  const std::vector<Batch> batches = {make_batch(2, 37, c.vocab, 31)};
  RandomInitSource init(7, 0.2f);
  BitNetModel cached = BitNetModel::create_lora(c, all_targets(), init, 3).value();
  BitNetModel lean = BitNetModel::create_lora(c, all_targets(), init, 3).value();
  cached.set_activation_memory(ActivationMemory::kCache);
  const StepResult want = train(cached, batches);
  train(lean, batches);
  const int64_t cache_bytes = cached.memory_use().workspace_bytes;
  const int64_t lean_bytes = lean.memory_use().workspace_bytes;
  ASSERT_LT(lean_bytes, cache_bytes);

  // A budget of exactly the cached workspace caches; one byte less recomputes.
  for (const int64_t budget : {cache_bytes, cache_bytes - 1}) {
    BitNetModel model = BitNetModel::create_lora(c, all_targets(), init, 3).value();
    model.set_activation_memory(ActivationMemory::kAuto, budget);
    const StepResult got = train(model, batches);
    expect_same(got, want);
    const bool fits = budget == cache_bytes;
    EXPECT_EQ(model.activation_memory(), ActivationMemory::kAuto);
    EXPECT_EQ(model.activation_memory_in_use(),
              fits ? ActivationMemory::kCache : ActivationMemory::kRecompute)
        << "budget " << budget;
    EXPECT_EQ(model.memory_use().workspace_bytes, fits ? cache_bytes : lean_bytes);
  }

  // A new budget takes effect at the next forward on the same shape.
  BitNetModel model = BitNetModel::create_lora(c, all_targets(), init, 3).value();
  model.set_activation_memory(ActivationMemory::kAuto, 0);
  train(model, batches);
  EXPECT_EQ(model.activation_memory_in_use(), ActivationMemory::kRecompute);
  model.set_activation_memory(ActivationMemory::kAuto, cache_bytes);
  train(model, batches);
  EXPECT_EQ(model.activation_memory_in_use(), ActivationMemory::kCache);
}

TEST(RecomputeTest, ForwardWithoutLabelsGivesTheCachedLogits) {
  const ModelConfig c = ternary_config();
  RandomInitSource init(5, 0.2f);
  BitNetModel lean = BitNetModel::create_frozen(c, init).value();
  BitNetModel cached = BitNetModel::create_frozen(c, init).value();
  cached.set_activation_memory(ActivationMemory::kCache);
  const Batch b = make_batch(2, 37, c.vocab, 4);
  lean.forward(b.tokens, {}, b.batch, b.seq);
  cached.forward(b.tokens, {}, b.batch, b.seq);
  EXPECT_TRUE(same_bits(lean.logits(), cached.logits()));
}

// Delegates to an F16 random source but reports fp32, so the model stores fp32.
class AsF32 final : public WeightSource {
 public:
  explicit AsF32(WeightSource& inner) : inner_(inner) {}
  Status read(std::string_view name, std::span<const int64_t> shape,
              std::span<float> out) override {
    return inner_.read(name, shape, out);
  }

 private:
  WeightSource& inner_;
};

TEST(F16StorageTest, SameBitsAsFp32StorageAndHalfTheBytes) {
  const ModelConfig c = dense_config();
  const std::vector<Batch> batches = {make_batch(2, 37, c.vocab, 21)};
  RandomInitSource f16(9, 0.2f, /*f16=*/true);
  AsF32 f32(f16);
  BitNetModel half = BitNetModel::create_lora(c, LoraConfig{}, f16, 3).value();
  BitNetModel full = BitNetModel::create_lora(c, LoraConfig{}, f32, 3).value();
  expect_same(train(half, batches), train(full, batches));

  const BitNetModel::MemoryUse h = half.memory_use(), f = full.memory_use();
  // Embedding, head and 7 dense linears per layer move from fp32 to F16.
  const int64_t q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
  const int64_t moved = 2 * c.vocab * c.hidden +
                        c.layers * (2 * c.hidden * q + 2 * c.hidden * kv + 3 * c.hidden * c.ffn);
  EXPECT_EQ(h.f16_bytes, 2 * moved);
  EXPECT_EQ(f.f16_bytes, 0);
  EXPECT_GE(f.frozen_f32_bytes - h.frozen_f32_bytes, 4 * moved);
  // base_tensors() hands the F16 bits out as stored.
  int f16_tensors = 0;
  for (const BitNetModel::BaseTensor& t : half.base_tensors()) {
    if (t.f16.empty()) continue;
    ++f16_tensors;
    EXPECT_TRUE(t.values.empty() && t.packed == nullptr) << t.name;
  }
  EXPECT_EQ(f16_tensors, 2 + 7 * c.layers);
}

TEST(F16KernelTest, WideningIsExactForEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float got = ref::f16_to_f32(static_cast<uint16_t>(h));
    const float want = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(std::memcmp(&got, &want, sizeof(float)), 0) << h;
    }
  }
}

TEST(F16KernelTest, LinearAndEmbeddingMatchFp32KernelsOnWidenedWeights) {
  for (const auto& [n, in, out] :
       {std::tuple{5, 19, 7}, std::tuple{1, 8, 3}, std::tuple{9, 33, 17}}) {
    const std::vector<float> x = random_floats(static_cast<size_t>(n * in), 1);
    const std::vector<float> dy = random_floats(static_cast<size_t>(n * out), 2);
    std::vector<uint16_t> w16(static_cast<size_t>(out * in));
    std::vector<float> w(w16.size());
    const std::vector<float> w_src = random_floats(w16.size(), 3);
    for (size_t i = 0; i < w16.size(); ++i) {
      w16[i] = fp32_to_fp16(w_src[i]);
      w[i] = fp16_to_fp32(w16[i]);
    }
    std::vector<float> y(static_cast<size_t>(n * out)), y_ref(y.size());
    ref::linear_f16_forward(y.data(), x.data(), w16.data(), n, in, out);
    ref::linear_forward(y_ref.data(), x.data(), w.data(), n, in, out);
    EXPECT_TRUE(same_bits(y, y_ref));
    std::vector<float> dx(x.size()), dx_ref(x.size());
    ref::linear_f16_backward_input(dx.data(), dy.data(), w16.data(), n, in, out);
    ref::linear_backward_input(dx_ref.data(), dy.data(), w.data(), n, in, out);
    EXPECT_TRUE(same_bits(dx, dx_ref));
    // The weight matrix as an embedding table of `out` rows.
    const std::vector<int32_t> tokens = {2, 0, static_cast<int32_t>(out - 1), 2};
    std::vector<float> e(tokens.size() * static_cast<size_t>(in)), e_ref(e.size());
    ref::embedding_f16_forward(e.data(), w16.data(), tokens.data(), 4, out, in);
    ref::embedding_forward(e_ref.data(), w.data(), tokens.data(), 4, out, in);
    EXPECT_TRUE(same_bits(e, e_ref));
  }
}

TEST(AttentionRecomputeTest, MatchesCachingKernels) {
  for (const ref::AttentionShape s :
       {ref::AttentionShape{2, 13, 4, 2, 6}, ref::AttentionShape{1, 5, 3, 3, 4},
        ref::AttentionShape{3, 9, 6, 1, 8}}) {
    const size_t q_n = static_cast<size_t>(s.batch * s.seq * s.heads * s.head_dim);
    const size_t kv_n = static_cast<size_t>(s.batch * s.seq * s.kv_heads * s.head_dim);
    const std::vector<float> q = random_floats(q_n, 1), k = random_floats(kv_n, 2),
                             v = random_floats(kv_n, 3), dout = random_floats(q_n, 4);
    std::vector<float> out(q_n), out_ref(q_n);
    std::vector<float> probs(static_cast<size_t>(s.batch * s.heads * s.seq * s.seq));
    ref::attention_forward_nocache(out.data(), q.data(), k.data(), v.data(), s);
    ref::attention_forward(out_ref.data(), probs.data(), q.data(), k.data(), v.data(), s);
    EXPECT_TRUE(same_bits(out, out_ref));
    std::vector<float> dq(q_n), dk(kv_n), dv(kv_n), dq_ref(q_n), dk_ref(kv_n), dv_ref(kv_n);
    ref::attention_backward_recompute(dq.data(), dk.data(), dv.data(), dout.data(), q.data(),
                                      k.data(), v.data(), s);
    ref::attention_backward(dq_ref.data(), dk_ref.data(), dv_ref.data(), dout.data(), probs.data(),
                            q.data(), k.data(), v.data(), s);
    EXPECT_TRUE(same_bits(dq, dq_ref));
    EXPECT_TRUE(same_bits(dk, dk_ref));
    EXPECT_TRUE(same_bits(dv, dv_ref));
  }
}

// The whole-tensor default of WeightSource, reached through a plain wrapper.
class WholeTensor final : public WeightSource {
 public:
  explicit WholeTensor(WeightSource& inner) : inner_(inner) {}
  Status read(std::string_view name, std::span<const int64_t> shape,
              std::span<float> out) override {
    return inner_.read(name, shape, out);
  }
  StoredType stored_type(std::string_view name) const override { return inner_.stored_type(name); }

 private:
  WeightSource& inner_;
};

TEST(RandomSourceTest, StreamedReadsMatchWholeTensorReads) {
  for (const bool f16 : {false, true}) {
    RandomInitSource streamed(4, 0.05f, f16);
    WholeTensor whole(streamed);
    const ref::TernaryMatrix a = streamed.read_ternary("blk.0.ffn_up.weight", 13, 27).value();
    const ref::TernaryMatrix b = whole.read_ternary("blk.0.ffn_up.weight", 13, 27).value();
    EXPECT_EQ(a.packed, b.packed);
    EXPECT_EQ(a.scale, b.scale);
    if (!f16) continue;
    const int64_t shape[] = {6, 11};
    std::vector<uint16_t> h1(66), h2(66);
    ASSERT_TRUE(streamed.read_f16("token_embd.weight", shape, h1).ok());
    ASSERT_TRUE(whole.read_f16("token_embd.weight", shape, h2).ok());
    EXPECT_EQ(h1, h2);
    EXPECT_EQ(streamed.stored_type("blk.0.attn_norm.weight"), StoredType::kF32);
  }
}

// The values are drawn in 64 Ki blocks; across block edges (and an odd tail)
// they must still be Rng::normal()'s sequence of the tensor's derived seed.
TEST(RandomSourceTest, ValuesAreTheTensorsNormalSequenceAcrossBlocks) {
  RandomInitSource source(6, 0.05f);
  const int64_t shape[] = {3, 65537};
  std::vector<float> got(3 * 65537);
  ASSERT_TRUE(source.read("blk.1.attn_q.weight", shape, got).ok());
  Rng rng(derive_seed(6, "blk.1.attn_q.weight"));
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], static_cast<float>(rng.normal() * 0.05f)) << i;
  }
  // The ternary path's two passes read the same stream, and its codes, packed
  // on the pool by 128-column groups, are the quantizer's: block edges inside a
  // group of a long row (3 × 65537) and of many short rows (700 × 100, 1000 × 200).
  const int64_t ternary_shapes[][2] = {{3, 65537}, {700, 100}, {1000, 200}};
  for (const auto& [rows, cols] : ternary_shapes) {
    SCOPED_TRACE(std::to_string(rows) + " x " + std::to_string(cols));
    const ref::TernaryMatrix streamed =
        source.read_ternary("blk.1.attn_q.weight", rows, cols).value();
    Rng values_rng(derive_seed(6, "blk.1.attn_q.weight"));
    std::vector<float> values(static_cast<size_t>(rows * cols));
    for (float& v : values) v = static_cast<float>(values_rng.normal() * 0.05f);
    ref::TernaryMatrix whole;
    ref::quantize_weights_absmean(&whole, values.data(), rows, cols);
    EXPECT_EQ(streamed.packed, whole.packed);
    EXPECT_EQ(streamed.scale, whole.scale);
  }
  // And the F16 path: binary16 of the same sequence.
  RandomInitSource f16(6, 0.05f, /*f16=*/true);
  const int64_t half_shape[] = {2, 40000};
  std::vector<uint16_t> bits(80000);
  ASSERT_TRUE(f16.read_f16("blk.1.attn_k.weight", half_shape, bits).ok());
  Rng half_rng(derive_seed(6, "blk.1.attn_k.weight"));
  for (size_t i = 0; i < bits.size(); ++i) {
    ASSERT_EQ(bits[i], fp32_to_fp16(static_cast<float>(half_rng.normal() * 0.05f))) << i;
  }
}

TEST(RandomSourceTest, DefaultF16ReadRefusesValuesF16CannotHold) {
  RandomInitSource fp32(4, 0.05f);
  WholeTensor whole(fp32);
  const int64_t shape[] = {4, 4};
  std::vector<uint16_t> out(16);
  const Status s = whole.read_f16("token_embd.weight", shape, out);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("read 'token_embd.weight' as F16"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace tern::recompute_test
