#include "train/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include "core/portable_math.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/gated_activation.h"
#include "kernels/cpu/ternary.h"
#include "kernels/ref/embedding.h"
#include "kernels/ref/f16_linear.h"
#include "kernels/ref/linear.h"
#include "kernels/ref/rmsnorm.h"

namespace tern {
namespace {

// Prompt tokens run through the layers together in chunks of this many, so each
// weight row is read once per chunk; it bounds the scratch buffers.
constexpr int64_t kChunk = 32;

}  // namespace

Result<KvDecoder> KvDecoder::create(const BitNetModel& model) {
  const ModelConfig& c = model.config();
  KvDecoder d;
  d.config_ = c;
  d.ternary_ = c.linear == LinearKind::kTernary;
  if (model.is_lora()) {
    d.lora_scale_ = model.lora_config().scale();
    d.lora_rank_ = model.lora_config().rank;
  }

  std::map<std::string, BitNetModel::BaseTensor, std::less<>> base;
  for (BitNetModel::BaseTensor& t : model.base_tensors()) base.emplace(t.name, std::move(t));
  auto find = [&](const std::string& name) -> const BitNetModel::BaseTensor& {
    const auto it = base.find(name);
    TERN_CHECK(it != base.end(), "base tensor ", name, " missing");
    return it->second;
  };
  auto fp32 = [&](const std::string& name) -> Result<const float*> {
    const BitNetModel::BaseTensor& t = find(name);
    if (t.values.empty()) {
      return Status::Error("decoder: tensor '" + name + "' is not stored as fp32");
    }
    d.weight_bytes_ += static_cast<int64_t>(t.values.size() * sizeof(float));
    return t.values.data();
  };
  auto matrix = [&](const std::string& name) -> Result<Matrix> {
    const BitNetModel::BaseTensor& t = find(name);
    if (!t.f16.empty()) {
      d.weight_bytes_ += static_cast<int64_t>(t.f16.size() * sizeof(uint16_t));
      return Matrix{nullptr, t.f16.data()};
    }
    TERN_ASSIGN_OR_RETURN(const float* values, fp32(name));
    return Matrix{values, nullptr};
  };
  size_t ternary_latents = 0;
  for (const auto& [name, t] : base) ternary_latents += t.ternary && t.packed == nullptr;
  d.quantized_.reserve(ternary_latents);  // Linear::packed points into it
  auto linear = [&](int64_t l, LinearId id) -> Result<Linear> {
    const std::string name = linear_tensor_name(l, id);
    const BitNetModel::BaseTensor& t = find(name);
    Linear lin;
    lin.out = t.shape[0];
    lin.in = t.shape[1];
    if (t.packed != nullptr) {
      lin.packed = t.packed;
      d.weight_bytes_ += static_cast<int64_t>(t.packed->byte_size() + sizeof(float));
    } else if (t.ternary && !t.values.empty()) {
      // What every full-training forward does with the latents, done once.
      ref::TernaryMatrix& m = d.quantized_.emplace_back();
      ref::quantize_weights_absmean(&m, t.values.data(), lin.out, lin.in);
      lin.packed = &m;
      d.weight_bytes_ += static_cast<int64_t>(m.byte_size() + sizeof(float));
    } else {
      TERN_ASSIGN_OR_RETURN(lin.dense, matrix(name));
    }
    if (const TensorInfo* a = model.layout().find(name + ".lora_a")) {
      const TensorInfo& b = model.layout().get(name + ".lora_b");
      lin.lora_a = model.params().view(*a).data();
      lin.lora_b = model.params().view(b).data();
      d.weight_bytes_ += (a->size + b.size) * static_cast<int64_t>(sizeof(float));
    }
    return lin;
  };

  TERN_ASSIGN_OR_RETURN(d.token_embd_, matrix("token_embd.weight"));
  if (c.tied_embeddings) {
    d.output_ = d.token_embd_;
  } else {
    TERN_ASSIGN_OR_RETURN(d.output_, matrix("output.weight"));
  }
  TERN_ASSIGN_OR_RETURN(d.output_norm_, fp32("output_norm.weight"));
  d.layers_.resize(static_cast<size_t>(c.layers));
  for (int64_t l = 0; l < c.layers; ++l) {
    Layer& layer = d.layers_[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    TERN_ASSIGN_OR_RETURN(layer.attn_norm, fp32(p + "attn_norm.weight"));
    TERN_ASSIGN_OR_RETURN(layer.ffn_norm, fp32(p + "ffn_norm.weight"));
    if (c.sub_norms) {
      TERN_ASSIGN_OR_RETURN(layer.attn_sub_norm, fp32(p + "attn_sub_norm.weight"));
      TERN_ASSIGN_OR_RETURN(layer.ffn_sub_norm, fp32(p + "ffn_sub_norm.weight"));
    }
    TERN_ASSIGN_OR_RETURN(layer.q, linear(l, LinearId::kQ));
    TERN_ASSIGN_OR_RETURN(layer.k, linear(l, LinearId::kK));
    TERN_ASSIGN_OR_RETURN(layer.v, linear(l, LinearId::kV));
    TERN_ASSIGN_OR_RETURN(layer.o, linear(l, LinearId::kO));
    TERN_ASSIGN_OR_RETURN(layer.gate, linear(l, LinearId::kGate));
    TERN_ASSIGN_OR_RETURN(layer.up, linear(l, LinearId::kUp));
    TERN_ASSIGN_OR_RETURN(layer.down, linear(l, LinearId::kDown));
  }

  const int64_t q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim;
  const int64_t max_dim = std::max({c.hidden, q_dim, c.ffn});
  const auto n = static_cast<size_t>(std::min(kChunk, c.max_seq));
  auto sized = [](size_t count) { return std::vector<float>(count); };
  // Room for a full chunk up front, so the window is never reallocated.
  ref::fill_rope_rows(&d.rope_window_, 0, static_cast<int64_t>(n), c.head_dim, c.rope_theta);
  d.x_ = sized(n * static_cast<size_t>(c.hidden));
  d.h_ = sized(n * static_cast<size_t>(max_dim));
  d.codes_.resize(n * static_cast<size_t>(max_dim));
  d.scales_ = sized(n);
  d.inv_ = sized(n);
  d.q_ = sized(n * static_cast<size_t>(q_dim));
  d.kv_ = sized(n * static_cast<size_t>(kv_dim));
  d.att_ = sized(n * static_cast<size_t>(q_dim));
  d.delta_ = sized(n * static_cast<size_t>(c.hidden));
  d.m_ = sized(n * static_cast<size_t>(c.ffn));
  d.gate_ = sized(n * static_cast<size_t>(c.ffn));
  d.up_ = sized(n * static_cast<size_t>(c.ffn));
  d.lora_t_ = sized(n * static_cast<size_t>(d.lora_rank_));
  d.lora_u_ = sized(d.lora_rank_ > 0 ? n * static_cast<size_t>(max_dim) : 0);
  d.logits_ = sized(static_cast<size_t>(c.vocab));
  return d;
}

void KvDecoder::reserve_cache(int64_t positions) {
  const ModelConfig& c = config_;
  TERN_CHECK(positions <= c.max_seq, "cache of ", positions, " positions, context ", c.max_seq);
  if (positions <= cache_positions_) return;
  // Doubling keeps a token-by-token decode to a logarithmic number of copies.
  constexpr int64_t kMinPositions = 16;
  const int64_t rows =
      std::min(c.max_seq, std::max({positions, 2 * cache_positions_, kMinPositions}));
  const int64_t kv_dim = c.kv_heads * c.head_dim;
  FlatBuffer k(c.layers * rows * kv_dim), v(k.size());
  for (int64_t l = 0; l < c.layers && position_ > 0; ++l) {
    const int64_t kept = position_ * kv_dim;
    std::copy_n(k_cache_.data() + l * cache_positions_ * kv_dim, kept,
                k.data() + l * rows * kv_dim);
    std::copy_n(v_cache_.data() + l * cache_positions_ * kv_dim, kept,
                v.data() + l * rows * kv_dim);
  }
  k_cache_ = std::move(k);
  v_cache_ = std::move(v);
  cache_positions_ = rows;
}

void KvDecoder::truncate(int64_t position) {
  TERN_CHECK(position >= 0 && position <= position_, "truncate to ", position, " of ", position_);
  position_ = position;
}

void KvDecoder::quantize(const float* x, int64_t n, int64_t dim) {
  if (ternary_) cpu::quantize_activations_absmax(codes_.data(), scales_.data(), x, n, dim);
}

void KvDecoder::matmul(float* y, const float* x, const Matrix& w, int64_t n, int64_t in,
                       int64_t out) {
  if (w.f16 != nullptr) {
    cpu::linear_f16_forward(y, x, w.f16, n, in, out);
  } else {
    cpu::linear_forward(y, x, w.f32, n, in, out);
  }
}

void KvDecoder::apply(const Linear& lin, const float* x, const int8_t* codes, const float* scales,
                      float* y, int64_t n) {
  if (lin.packed != nullptr) {
    cpu::bitlinear_forward(y, codes, scales, *lin.packed, n);
  } else {
    matmul(y, x, lin.dense, n, lin.in, lin.out);
  }
  if (lin.lora_a != nullptr) {
    // Same association as BitNetModel: y += s · ((x·Aᵀ)·Bᵀ), x unquantized.
    cpu::linear_forward(lora_t_.data(), x, lin.lora_a, n, lin.in, lora_rank_);
    cpu::linear_forward(lora_u_.data(), lora_t_.data(), lin.lora_b, n, lora_rank_, lin.out);
    for (int64_t i = 0; i < n * lin.out; ++i) y[i] += lora_scale_ * lora_u_[static_cast<size_t>(i)];
  }
}

void KvDecoder::attend(float* out, const float* q, const float* k_cache, const float* v_cache,
                       int64_t n) {
  // The last n rows of causal attention over positions 0 … position_ + n − 1,
  // keys and values from the cache: the bits of the full forward's rows.
  const ModelConfig& c = config_;
  const ref::AttentionShape shape{1, position_ + n, c.heads, c.kv_heads, c.head_dim};
  cpu::attention_forward_last(out, q, k_cache, v_cache, shape, position_);
}

void KvDecoder::run_chunk(const int32_t* tokens, int64_t n) {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden, F = c.ffn, hd = c.head_dim;
  const int64_t q_dim = c.heads * hd, kv_dim = c.kv_heads * hd;
  float* x = x_.data();  // [n, H]
  float* h = h_.data();  // [n, max_dim]
  const int8_t* codes = codes_.data();
  const float* scales = scales_.data();
  float* delta = delta_.data();  // [n, H] output of a block half, before the residual add

  // RoPE rows for positions position_ … position_ + n − 1, so the kernel (which
  // rotates row r by the table's row r) turns at the absolute positions.
  ref::fill_rope_rows(&rope_window_, position_, n, c.head_dim, c.rope_theta);

  if (token_embd_.f16 != nullptr) {
    ref::embedding_f16_forward(x, token_embd_.f16, tokens, n, c.vocab, H);
  } else {
    ref::embedding_forward(x, token_embd_.f32, tokens, n, c.vocab, H);
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& layer = layers_[l];
    float* k_cache = k_cache_.data() + static_cast<int64_t>(l) * cache_positions_ * kv_dim;
    float* v_cache = v_cache_.data() + static_cast<int64_t>(l) * cache_positions_ * kv_dim;
    // Attention half.
    ref::rmsnorm_forward(h, inv_.data(), x, layer.attn_norm, n, H, c.norm_eps);
    quantize(h, n, H);
    apply(layer.q, h, codes, scales, q_.data(), n);
    apply(layer.k, h, codes, scales, kv_.data(), n);
    ref::rope_forward(kv_.data(), rope_window_, c.rope_style, 1, n, c.kv_heads, hd);
    std::copy_n(kv_.data(), n * kv_dim, k_cache + position_ * kv_dim);
    apply(layer.v, h, codes, scales, v_cache + position_ * kv_dim, n);
    ref::rope_forward(q_.data(), rope_window_, c.rope_style, 1, n, c.heads, hd);
    attend(att_.data(), q_.data(), k_cache, v_cache, n);
    const float* a = att_.data();
    if (layer.attn_sub_norm != nullptr) {
      ref::rmsnorm_forward(h, inv_.data(), att_.data(), layer.attn_sub_norm, n, q_dim, c.norm_eps);
      a = h;
    }
    quantize(a, n, q_dim);
    apply(layer.o, a, codes, scales, delta, n);
    for (int64_t i = 0; i < n * H; ++i) x[i] += delta[i];
    // FFN half.
    ref::rmsnorm_forward(h, inv_.data(), x, layer.ffn_norm, n, H, c.norm_eps);
    quantize(h, n, H);
    apply(layer.gate, h, codes, scales, gate_.data(), n);
    apply(layer.up, h, codes, scales, up_.data(), n);
    float* m = m_.data();  // [n, F] act(gate)·up
    cpu::gated_activation_forward(m, gate_.data(), up_.data(), n * F, c.activation);
    if (layer.ffn_sub_norm != nullptr) {
      ref::rmsnorm_forward(h, inv_.data(), m, layer.ffn_sub_norm, n, F, c.norm_eps);
      m = h;
    }
    quantize(m, n, F);
    apply(layer.down, m, codes, scales, delta, n);
    for (int64_t i = 0; i < n * H; ++i) x[i] += delta[i];
  }
  position_ += n;
}

Result<std::span<const float>> KvDecoder::prefill(std::span<const int32_t> tokens) {
  if (tokens.empty()) return Status::Error("decoder: prefill of no tokens");
  const auto n = static_cast<int64_t>(tokens.size());
  if (n > capacity() - position_) {
    return Status::Error("decoder: " + std::to_string(n) + " tokens at position " +
                         std::to_string(position_) + " exceed the context of " +
                         std::to_string(capacity()) + " tokens");
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.vocab) {
      return Status::Error("decoder: token " + std::to_string(tokens[i]) + " at index " +
                           std::to_string(i) + " outside vocab of " +
                           std::to_string(config_.vocab));
    }
  }
  reserve_cache(position_ + n);
  int64_t last = 0;  // rows in the last chunk
  for (int64_t begin = 0; begin < n; begin += kChunk) {
    last = std::min(kChunk, n - begin);
    run_chunk(tokens.data() + begin, last);
  }
  // Head on the final position only: the earlier ones predict tokens we already have.
  const ModelConfig& c = config_;
  const float* x_last = x_.data() + (last - 1) * c.hidden;
  ref::rmsnorm_forward(h_.data(), inv_.data(), x_last, output_norm_, 1, c.hidden, c.norm_eps);
  matmul(logits_.data(), h_.data(), output_, 1, c.hidden, c.vocab);
  return std::span<const float>(logits_);
}

Result<std::span<const float>> KvDecoder::step(int32_t token) {
  return prefill(std::span<const int32_t>(&token, 1));
}

Status SamplerConfig::validate() const {
  if (!std::isfinite(temperature) || temperature < 0.0f) {
    return Status::Error("sampler: temperature " + std::to_string(temperature) +
                         " must be a finite value ≥ 0");
  }
  if (top_k < 0) return Status::Error("sampler: top_k " + std::to_string(top_k) + " must be ≥ 0");
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return Status::Error("sampler: top_p " + std::to_string(top_p) + " must be in (0, 1]");
  }
  return Status::Ok();
}

Sampler::Sampler(const SamplerConfig& config, int64_t vocab)
    : config_(config),
      rng_(config.seed),
      order_(static_cast<size_t>(vocab)),
      probs_(static_cast<size_t>(vocab)) {
  const Status valid = config.validate();
  TERN_CHECK(valid.ok(), valid.message());
  TERN_CHECK(vocab > 0, "sampler vocab ", vocab);
}

int32_t Sampler::sample(std::span<const float> logits) {
  TERN_CHECK(logits.size() == order_.size(), "sampler: ", logits.size(), " logits for vocab ",
             order_.size());
  // A strict total order: higher logit first, NaN last, lower id on ties.
  auto key = [&](int32_t id) {
    const float v = logits[static_cast<size_t>(id)];
    return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v;
  };
  auto better = [&](int32_t a, int32_t b) {
    const float ka = key(a), kb = key(b);
    return ka != kb ? ka > kb : a < b;
  };
  const auto vocab = static_cast<int64_t>(order_.size());
  if (config_.temperature == 0.0f || config_.top_k == 1) {
    int32_t best = 0;
    for (int32_t id = 1; id < vocab; ++id) {
      if (better(id, best)) best = id;
    }
    return best;
  }
  for (int32_t id = 0; id < vocab; ++id) order_[static_cast<size_t>(id)] = id;
  const int64_t k = config_.top_k > 0 ? std::min(config_.top_k, vocab) : vocab;
  std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), better);
  // Softmax of logit/T over the k best, in double, in rank order.
  const double inv_t = 1.0 / static_cast<double>(config_.temperature);
  const double top = key(order_[0]);
  double total = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    const double v = key(order_[static_cast<size_t>(i)]);
    // exp(−inf) = 0 drops −inf/NaN logits; if every logit is −inf, keep the first.
    // portable_exp: the same seed samples the same tokens on every platform.
    probs_[static_cast<size_t>(i)] = std::isinf(top) ? (i == 0) : portable_exp((v - top) * inv_t);
    total += probs_[static_cast<size_t>(i)];
  }
  // Nucleus: the shortest prefix whose probability reaches top_p (at least one).
  int64_t kept = 0;
  double kept_mass = 0.0;
  while (kept < k) {
    kept_mass += probs_[static_cast<size_t>(kept)];
    ++kept;
    if (kept_mass >= static_cast<double>(config_.top_p) * total) break;
  }
  const double u = rng_.uniform() * kept_mass;
  double cumulative = 0.0;
  for (int64_t i = 0; i < kept; ++i) {
    cumulative += probs_[static_cast<size_t>(i)];
    if (u < cumulative) return order_[static_cast<size_t>(i)];
  }
  return order_[static_cast<size_t>(kept - 1)];  // u rounded up to kept_mass
}

double GenerateStats::prefill_tokens_per_s() const {
  return prefill_seconds > 0.0 ? static_cast<double>(prompt_tokens) / prefill_seconds : 0.0;
}

double GenerateStats::decode_tokens_per_s() const {
  return decode_seconds > 0.0 ? static_cast<double>(generated_tokens) / decode_seconds : 0.0;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Length of the longest proper prefix of `stop` that `text` ends with.
size_t partial_stop_suffix(std::string_view text, std::string_view stop) {
  for (size_t len = std::min(text.size(), stop.size() - 1); len > 0; --len) {
    if (text.substr(text.size() - len) == stop.substr(0, len)) return len;
  }
  return 0;
}

}  // namespace

Result<GenerateStats> generate(KvDecoder& decoder, Sampler& sampler, const Tokenizer* tokenizer,
                               std::span<const int32_t> prompt, const GenerateOptions& options,
                               const std::function<void(std::string_view)>& on_text) {
  if (options.max_tokens < 0) {
    return Status::Error("generate: max_tokens " + std::to_string(options.max_tokens) +
                         " must be ≥ 0");
  }
  GenerateStats stats;
  stats.prompt_tokens = static_cast<int64_t>(prompt.size());
  const auto prefill_start = std::chrono::steady_clock::now();
  TERN_ASSIGN_OR_RETURN(std::span<const float> logits, decoder.prefill(prompt));
  stats.prefill_seconds = seconds_since(prefill_start);

  const int64_t first_position = decoder.position();  // cache position of generated token 0
  const int32_t eos = tokenizer != nullptr ? tokenizer->vocab().eos_id : -1;
  std::optional<StreamingDecoder> text_decoder;
  if (tokenizer != nullptr) {
    text_decoder.emplace(*tokenizer, /*render_special=*/false, /*sequence_start=*/false);
  }
  std::string text;                 // everything decoded so far
  size_t emitted = 0;               // bytes of `text` passed to on_text
  std::vector<size_t> token_start;  // [generated] offset in `text` where each token's piece began
  const std::string_view stop = options.stop;
  auto emit = [&](size_t end) {
    if (end > emitted) on_text(std::string_view(text).substr(emitted, end - emitted));
    emitted = std::max(emitted, end);
  };

  const auto decode_start = std::chrono::steady_clock::now();
  for (;;) {
    if (stats.generated_tokens == options.max_tokens) {
      stats.stop = StopReason::kMaxTokens;
      break;
    }
    if (decoder.position() == decoder.capacity()) {
      stats.stop = StopReason::kCacheFull;
      break;
    }
    const int32_t token = sampler.sample(logits);
    ++stats.generated_tokens;
    // Every sampled token enters the cache, so it always holds prompt + output.
    TERN_ASSIGN_OR_RETURN(logits, decoder.step(token));
    if (token == eos) {
      stats.stop = StopReason::kEos;
      break;
    }
    if (!text_decoder.has_value()) continue;
    token_start.push_back(text.size());
    text += text_decoder->push(token);
    if (stop.empty()) {
      emit(text.size());
      continue;
    }
    const size_t found = text.find(stop, emitted);
    if (found != std::string::npos) {
      emit(found);
      // Drop the tokens from the one whose piece reached the stop string.
      size_t first = token_start.size() - 1;
      while (first > 0 && token_start[first] > found) --first;
      stats.uncached_text = text.substr(token_start[first], found - token_start[first]);
      decoder.truncate(first_position + static_cast<int64_t>(first));
      stats.stop = StopReason::kStopString;
      break;
    }
    emit(text.size() - partial_stop_suffix(text, stop));
  }
  if (text_decoder.has_value() && stats.stop != StopReason::kStopString) {
    text += text_decoder->finish();
    emit(text.size());
  }
  stats.decode_seconds = seconds_since(decode_start);
  return stats;
}

}  // namespace tern
