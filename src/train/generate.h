// Text generation: a KV-cache decoder, a token sampler and a streaming generate loop.
//
// KvDecoder runs a BitNetModel one position at a time (or a prompt in chunks) and
// keeps each layer's keys (after RoPE) and values for every position seen, so a
// new token costs one pass through the weights instead of a forward over the
// whole sequence. It uses the reference kernels exactly as BitNetModel::forward
// does — per-token absmax int8 activations + BitLinear for ternary linears (dense
// linear otherwise), RMSNorm, optional sub-norms, RoPE at the absolute position,
// causal GQA attention (cpu::attention_forward_last: the full attention's rows
// for the new positions, keys and values from the cache), gated ReLU²/SiLU, the
// fp32 head, and LoRA y += (alpha/r)·B(A x) on the unquantized x — so its logits
// equal the full forward's at every position. Ternary weights are used packed: a
// frozen base as the model holds it, a full-training model's fp32 latents
// quantized once at construction (ref::quantize_weights_absmean, as each forward
// does), so later training of the model is not seen by an existing decoder.
// The cache holds up to config().max_seq positions; appending beyond it is an
// error, never a silent slide. Its storage grows with the positions used (to
// what a prefill needs, at least doubling, capped at max_seq), so a short
// generation does not pay for the whole context: a 4096-position cache of
// bitnet-2b-4t is 629 MB in fp32. Other buffers are allocated at construction,
// and a token that does not grow the cache allocates nothing in this code (the
// kernels keep their own per-call scratch).
//
// The decoder reads the model's tensors in place: the model must outlive it and
// must not be modified while it is used. One thread drives a decoder at a time;
// kernels fan out over the default pool. Several decoders may share one model.
//
// Sampler: temperature, top-k and top-p (nucleus) over the logits, drawn with a
// seeded tern::Rng. Candidates are ordered by logit, ties by lower token id, so
// a seed gives the same tokens on every platform. temperature 0 (or top_k 1) is
// greedy: the highest logit, lowest id on ties. NaN logits rank below all others.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/flat_buffer.h"
#include "core/rng.h"
#include "core/status.h"
#include "kernels/ref/rope.h"
#include "kernels/ref/ternary.h"
#include "model/bitnet.h"
#include "tokenizer/tokenizer.h"

namespace tern {

class KvDecoder {
 public:
  // Fails only for a model whose tensors are stored in a form the decoder cannot
  // read (it reads fp32, F16 and packed ternary tensors).
  static Result<KvDecoder> create(const BitNetModel& model);

  KvDecoder(KvDecoder&&) noexcept = default;
  KvDecoder& operator=(KvDecoder&&) noexcept = default;

  const ModelConfig& config() const { return config_; }
  // Positions in the cache: the next token goes to this position.
  int64_t position() const { return position_; }
  int64_t capacity() const { return config_.max_seq; }
  // Positions the cache has storage for now (≤ capacity()).
  int64_t cache_positions() const { return cache_positions_; }
  // Bytes of model weights the decoder reads (packed ternary codes and scales,
  // fp32 and F16 tensors, LoRA matrices; a tied head counted once).
  int64_t weight_bytes() const { return weight_bytes_; }

  // Appends tokens (at least one) at position() and returns the logits [vocab]
  // that predict the token after the last of them. Errors — an empty prompt, a
  // token outside the vocabulary, or more tokens than the cache has room for —
  // name the bad value and leave the decoder unchanged. The span stays valid
  // until the next call.
  Result<std::span<const float>> prefill(std::span<const int32_t> tokens);
  // prefill of one token.
  Result<std::span<const float>> step(int32_t token);
  // Forgets positions [position, position()) so decoding continues from
  // `position` (0 ≤ position ≤ position(), CHECKed): e.g. to drop tokens that
  // started a stop string.
  void truncate(int64_t position);
  void reset() { truncate(0); }

 private:
  // A dense weight matrix: fp32, or the binary16 bits of a frozen F16 tensor.
  struct Matrix {
    const float* f32 = nullptr;
    const uint16_t* f16 = nullptr;
  };
  struct Linear {
    int64_t in = 0, out = 0;
    Matrix dense;                                // [out, in] when not ternary
    const ref::TernaryMatrix* packed = nullptr;  // when ternary
    const float* lora_a = nullptr;               // [rank, in]; null without LoRA
    const float* lora_b = nullptr;               // [out, rank]
  };
  struct Layer {
    const float* attn_norm = nullptr;      // [H]
    const float* attn_sub_norm = nullptr;  // [heads·hd]; null without sub-norms
    const float* ffn_norm = nullptr;       // [H]
    const float* ffn_sub_norm = nullptr;   // [F]; null without sub-norms
    Linear q, k, v, o, gate, up, down;
  };

  KvDecoder() = default;
  // Grows the caches' storage to hold at least `positions` (≤ max_seq), keeping
  // the rows of positions before position_.
  void reserve_cache(int64_t positions);
  // Runs n ≤ kChunk validated tokens at position_, filling the cache; leaves the
  // last token's final hidden state in h_.
  void run_chunk(const int32_t* tokens, int64_t n);
  // y[n, out] = lin(x) for x[n, in] with codes/scales its quantization (ternary).
  void apply(const Linear& lin, const float* x, const int8_t* codes, const float* scales, float* y,
             int64_t n);
  void quantize(const float* x, int64_t n, int64_t dim);
  // y[n, out] = x[n, in] · wᵀ with the kernel for w's storage.
  static void matmul(float* y, const float* x, const Matrix& w, int64_t n, int64_t in, int64_t out);
  // Causal attention of n queries at positions position_ … over cache rows 0 … .
  void attend(float* out, const float* q, const float* k_cache, const float* v_cache, int64_t n);

  ModelConfig config_;
  bool ternary_ = false;
  float lora_scale_ = 0.0f;
  int64_t lora_rank_ = 0;
  Matrix token_embd_;                   // [V, H]
  Matrix output_;                       // [V, H]
  const float* output_norm_ = nullptr;  // [H]
  std::vector<Layer> layers_;
  // Quantizations of a full-training model's latents; Linear::packed points in
  // here (a vector's elements keep their address when the vector is moved).
  std::vector<ref::TernaryMatrix> quantized_;
  int64_t weight_bytes_ = 0;

  int64_t position_ = 0;
  int64_t cache_positions_ = 0;
  // 64-byte aligned, so attention reads the rows of a step in place.
  FlatBuffer k_cache_;                 // [layers, cache_positions_, kv_heads·hd] after RoPE
  FlatBuffer v_cache_;                 // [layers, cache_positions_, kv_heads·hd]
  ref::RopeTable<float> rope_window_;  // [n, hd/2]: RoPE of the current chunk's positions

  // Scratch for one chunk of up to kChunk tokens.
  std::vector<float> x_;       // [n, H] residual stream
  std::vector<float> h_;       // [n, max_dim] normalized input of a linear group
  std::vector<int8_t> codes_;  // [n, max_dim]
  std::vector<float> scales_;  // [n]
  std::vector<float> inv_;     // [n] inverse RMS (unused by inference, required by the kernel)
  std::vector<float> q_;       // [n, heads·hd]
  std::vector<float> kv_;      // [n, kv·hd] keys before they enter the cache
  std::vector<float> att_;     // [n, heads·hd]
  std::vector<float> delta_;   // [n, H] a block half's output before the residual add
  std::vector<float> gate_;    // [n, F]
  std::vector<float> up_;      // [n, F]
  std::vector<float> m_;       // [n, F] act(gate)·up
  std::vector<float> lora_t_;  // [n, rank]
  std::vector<float> lora_u_;  // [n, max_dim]
  std::vector<float> logits_;  // [V]
};

struct SamplerConfig {
  float temperature = 0.8f;  // 0 = greedy
  int64_t top_k = 40;        // 0 = no limit
  float top_p = 0.95f;       // (0, 1]; 1 = no limit
  uint64_t seed = 0;
  // Errors name the bad field and value.
  Status validate() const;
};

class Sampler {
 public:
  // config must pass validate() (CHECKed); vocab > 0.
  Sampler(const SamplerConfig& config, int64_t vocab);
  // A token id in [0, vocab) drawn from logits [vocab] (CHECKed size).
  int32_t sample(std::span<const float> logits);

 private:
  SamplerConfig config_;
  Rng rng_;
  std::vector<int32_t> order_;  // [vocab] candidate ids, best first
  std::vector<double> probs_;   // [vocab] probabilities of order_'s prefix
};

struct GenerateOptions {
  int64_t max_tokens = 256;
  // Generation stops before this text would be printed (empty: no stop string).
  std::string stop;
};

enum class StopReason { kEos, kMaxTokens, kStopString, kCacheFull };

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  // sampled, including an EOS or stop-string token
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
  StopReason stop = StopReason::kMaxTokens;
  // Text generated past the end of the kept cache, already passed to on_text:
  // after a stop string, the part of the answer in the tokens that were
  // truncated away because they also began the stop string.
  std::string uncached_text;
  double prefill_tokens_per_s() const;
  double decode_tokens_per_s() const;
};

// Prefills `prompt` (at least one token) at decoder.position(), then samples
// up to max_tokens tokens, passing decoded text to on_text as it becomes valid
// UTF-8 (the text continues the prompt: no dummy-prefix space is dropped).
// Sampled tokens are appended to the cache, an EOS included, so a conversation
// can continue after it. It stops at the vocabulary's EOS, after max_tokens,
// when the cache is full, or when the text would contain options.stop: then
// that text is never passed on and the cache is truncated to before the token
// whose text reached it. With a null tokenizer (speed measurements) no text is
// produced and only max_tokens and the cache end generation.
// Errors: a prompt the decoder rejects (empty, too long, bad ids); a
// max_tokens below 0.
Result<GenerateStats> generate(KvDecoder& decoder, Sampler& sampler, const Tokenizer* tokenizer,
                               std::span<const int32_t> prompt, const GenerateOptions& options,
                               const std::function<void(std::string_view)>& on_text);

}  // namespace tern
