// ModelConfig: the architecture of a BitNet b1.58 / Llama-style decoder.
//
// One config covers Microsoft's BitNet b1.58 2B-4T (ternary, ReLU², sub-norms,
// GQA), the 1bitLLM models (ternary, SiLU, sub-norms) and plain Llama models
// (dense, SiLU, no sub-norms). Configs from files or flags are untrusted:
// validate() and parse_model_config() return a Status naming the bad field.
// Plain value types; not synchronized.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "kernels/ref/gated_activation.h"
#include "kernels/ref/rope.h"

namespace tern {

enum class LinearKind { kTernary, kDense };

struct ModelConfig {
  int64_t hidden = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t ffn = 0;
  int64_t vocab = 0;
  int64_t max_seq = 0;
  double rope_theta = 10000.0;
  float norm_eps = 1e-5f;
  ref::Activation activation = ref::Activation::kReLU2;
  bool tied_embeddings = true;
  LinearKind linear = LinearKind::kTernary;
  bool sub_norms = true;
  ref::RopeStyle rope_style = ref::RopeStyle::kNeox;

  Status validate() const;
  // Parameters of the full model (latent fp32 count), tied head counted once.
  int64_t num_params() const;
};

// The projections of one block, in execution order.
enum class LinearId { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumLinears = 7;
// "q", "k", "v", "o", "gate", "up", "down".
std::string_view linear_short_name(LinearId id);
// GGUF-style tensor name, e.g. "blk.3.attn_q.weight".
std::string linear_tensor_name(int64_t layer, LinearId id);
// Parses a short name ("q" … "down"); error names the bad value.
Result<LinearId> parse_linear_id(std::string_view short_name);

struct LoraConfig {
  int64_t rank = 8;
  float alpha = 16.0f;
  std::vector<LinearId> targets = {LinearId::kQ, LinearId::kK, LinearId::kV, LinearId::kO};

  Status validate() const;
  bool targets_linear(LinearId id) const;
  float scale() const { return alpha / static_cast<float>(rank); }
};

// Named presets: "tiny", "small", "medium", "bitnet-125m", "bitnet-1b", "bitnet-2b-4t",
// "llama-tiny".
std::vector<std::string> preset_names();
Result<ModelConfig> preset_config(std::string_view name);

// JSON with the keys of ModelConfig (activation "relu2"|"silu", linear
// "ternary"|"dense", rope_style "neox"|"interleaved"). Missing keys keep defaults.
Result<ModelConfig> parse_model_config(std::string_view json_text);
std::string model_config_to_json(const ModelConfig& config);

}  // namespace tern
