#include "model/config.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <nlohmann/json.hpp>

namespace tern {
namespace {

constexpr std::array<std::string_view, kNumLinears> kShortNames = {"q",    "k",  "v",   "o",
                                                                   "gate", "up", "down"};
constexpr std::array<std::string_view, kNumLinears> kTensorStems = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

// Sizes beyond this are certainly a corrupt or hostile config, and keep every
// product below int64 overflow.
constexpr int64_t kMaxDim = int64_t{1} << 24;

Status positive(const char* field, int64_t value) {
  if (value <= 0 || value > kMaxDim) {
    return Status::Error(std::string("model config: ") + field + " = " + std::to_string(value) +
                         " (must be in [1, " + std::to_string(kMaxDim) + "])");
  }
  return Status::Ok();
}

}  // namespace

Status ModelConfig::validate() const {
  TERN_RETURN_IF_ERROR(positive("hidden", hidden));
  TERN_RETURN_IF_ERROR(positive("layers", layers));
  TERN_RETURN_IF_ERROR(positive("heads", heads));
  TERN_RETURN_IF_ERROR(positive("kv_heads", kv_heads));
  TERN_RETURN_IF_ERROR(positive("head_dim", head_dim));
  TERN_RETURN_IF_ERROR(positive("ffn", ffn));
  TERN_RETURN_IF_ERROR(positive("vocab", vocab));
  TERN_RETURN_IF_ERROR(positive("max_seq", max_seq));
  if (heads % kv_heads != 0) {
    return Status::Error("model config: heads = " + std::to_string(heads) +
                         " is not a multiple of kv_heads = " + std::to_string(kv_heads));
  }
  if (head_dim % 2 != 0) {
    return Status::Error("model config: head_dim = " + std::to_string(head_dim) +
                         " must be even for RoPE");
  }
  if (!(rope_theta > 1.0) || !std::isfinite(rope_theta)) {
    return Status::Error("model config: rope_theta = " + std::to_string(rope_theta) +
                         " (must be finite and > 1)");
  }
  if (!(norm_eps > 0.0f) || !std::isfinite(norm_eps)) {
    return Status::Error("model config: norm_eps = " + std::to_string(norm_eps) +
                         " (must be finite and > 0)");
  }
  return Status::Ok();
}

int64_t ModelConfig::num_params() const {
  const int64_t q_dim = heads * head_dim;
  const int64_t kv_dim = kv_heads * head_dim;
  int64_t per_layer = 2 * hidden                              // attn_norm, ffn_norm
                      + hidden * q_dim + 2 * hidden * kv_dim  // q, k, v
                      + q_dim * hidden                        // o
                      + 3 * hidden * ffn;                     // gate, up, down
  if (sub_norms) per_layer += q_dim + ffn;
  int64_t total = layers * per_layer + vocab * hidden + hidden;  // + embedding, output_norm
  if (!tied_embeddings) total += vocab * hidden;
  return total;
}

std::string_view linear_short_name(LinearId id) {
  return kShortNames[static_cast<size_t>(id)];
}

std::string linear_tensor_name(int64_t layer, LinearId id) {
  return "blk." + std::to_string(layer) + "." + std::string(kTensorStems[static_cast<size_t>(id)]) +
         ".weight";
}

Result<LinearId> parse_linear_id(std::string_view short_name) {
  for (size_t i = 0; i < kShortNames.size(); ++i) {
    if (kShortNames[i] == short_name) return static_cast<LinearId>(i);
  }
  return Status::Error("LoRA target '" + std::string(short_name) +
                       "' is not one of q, k, v, o, gate, up, down");
}

Status LoraConfig::validate() const {
  if (rank <= 0 || rank > 4096) {
    return Status::Error("LoRA config: rank = " + std::to_string(rank) + " (must be in [1, 4096])");
  }
  if (!(alpha > 0.0f) || !std::isfinite(alpha)) {
    return Status::Error("LoRA config: alpha = " + std::to_string(alpha) + " (must be > 0)");
  }
  if (targets.empty()) return Status::Error("LoRA config: no target modules");
  return Status::Ok();
}

bool LoraConfig::targets_linear(LinearId id) const {
  return std::find(targets.begin(), targets.end(), id) != targets.end();
}

namespace {

struct PresetShape {
  const char* name;
  int64_t hidden, layers, heads, kv_heads, head_dim, ffn, vocab, max_seq;
  double rope_theta;
};

// Ternary BitNet b1.58 shapes (ReLU², sub-norms, neox RoPE, tied embeddings),
// except llama-tiny, which preset_config turns into a dense Llama.
constexpr PresetShape kPresets[] = {
    // Small enough to train a few hundred steps in a test on two cores.
    {"tiny", 64, 2, 4, 2, 16, 176, 256, 256, 10000.0},
    // The demo's model (~0.65M parameters): trains in minutes on two cores,
    // yet big enough that per-tensor overheads do not dominate an update.
    {"small", 128, 3, 4, 2, 32, 320, 1024, 256, 10000.0},
    // ~4M parameters: the next size up, where a DeMo update's DCT blocks tile
    // every matrix several times over (bench demo compares optimizers on it).
    {"medium", 256, 4, 8, 4, 32, 704, 4096, 512, 10000.0},
    {"bitnet-125m", 768, 12, 12, 12, 64, 2560, 32000, 2048, 10000.0},
    {"bitnet-1b", 2048, 20, 32, 8, 64, 5632, 32000, 2048, 500000.0},
    // Microsoft BitNet b1.58 2B-4T (config.json of the released model).
    {"bitnet-2b-4t", 2560, 30, 20, 5, 128, 6912, 128256, 4096, 500000.0},
    {"llama-tiny", 64, 2, 4, 4, 16, 176, 256, 256, 10000.0},
};

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const PresetShape& p : kPresets) names.emplace_back(p.name);
  return names;
}

Result<ModelConfig> preset_config(std::string_view name) {
  for (const PresetShape& p : kPresets) {
    if (name != p.name) continue;
    ModelConfig c;  // defaults: ternary, ReLU², sub-norms, neox RoPE, tied
    c.hidden = p.hidden;
    c.layers = p.layers;
    c.heads = p.heads;
    c.kv_heads = p.kv_heads;
    c.head_dim = p.head_dim;
    c.ffn = p.ffn;
    c.vocab = p.vocab;
    c.max_seq = p.max_seq;
    c.rope_theta = p.rope_theta;
    if (name == "llama-tiny") {
      // Dense Llama layout: SiLU, no sub-norms, interleaved RoPE as llama.cpp stores it.
      c.activation = ref::Activation::kSiLU;
      c.linear = LinearKind::kDense;
      c.sub_norms = false;
      c.tied_embeddings = false;
      c.rope_style = ref::RopeStyle::kInterleaved;
    }
    return c;
  }
  std::string known;
  for (const std::string& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  return Status::Error("unknown preset '" + std::string(name) + "' (known: " + known + ")");
}

Result<ModelConfig> parse_model_config(std::string_view json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Error("model config: not a JSON object");
  }
  ModelConfig c;
  static constexpr std::string_view kKnownKeys[] = {
      "hidden",     "layers", "heads",      "kv_heads",        "head_dim",
      "ffn",        "vocab",  "max_seq",    "rope_theta",      "norm_eps",
      "activation", "linear", "rope_style", "tied_embeddings", "sub_norms"};
  for (const auto& item : j.items()) {
    if (std::find(std::begin(kKnownKeys), std::end(kKnownKeys), item.key()) ==
        std::end(kKnownKeys)) {
      return Status::Error("model config: unknown key '" + item.key() + "'");
    }
  }
  // Optional field of the JSON kind `is_kind`; absent fields keep their defaults.
  using KindTest = bool (nlohmann::json::*)() const noexcept;
  auto read = [&]<typename T>(const char* key, KindTest is_kind, const char* kind,
                              T* out) -> Status {
    if (!j.contains(key)) return Status::Ok();
    if (!(j[key].*is_kind)()) {
      return Status::Error(std::string("model config: '") + key + "' must be " + kind + ", got " +
                           j[key].dump());
    }
    *out = j[key].get<T>();
    return Status::Ok();
  };
  auto read_int = [&](const char* key, int64_t* out) {
    return read(key, &nlohmann::json::is_number_integer, "an integer", out);
  };
  auto read_float = [&](const char* key, double* out) {
    return read(key, &nlohmann::json::is_number, "a number", out);
  };
  auto read_bool = [&](const char* key, bool* out) {
    return read(key, &nlohmann::json::is_boolean, "true or false", out);
  };
  auto read_choice = [&](const char* key, std::string_view a, std::string_view b,
                         bool* is_a) -> Status {
    std::string value(a);
    TERN_RETURN_IF_ERROR(read(key, &nlohmann::json::is_string, "a string", &value));
    if (value != a && value != b) {
      return Status::Error(std::string("model config: '") + key + "' = \"" + value +
                           "\" (expected \"" + std::string(a) + "\" or \"" + std::string(b) +
                           "\")");
    }
    *is_a = value == a;
    return Status::Ok();
  };
  TERN_RETURN_IF_ERROR(read_int("hidden", &c.hidden));
  TERN_RETURN_IF_ERROR(read_int("layers", &c.layers));
  TERN_RETURN_IF_ERROR(read_int("heads", &c.heads));
  TERN_RETURN_IF_ERROR(read_int("kv_heads", &c.kv_heads));
  TERN_RETURN_IF_ERROR(read_int("head_dim", &c.head_dim));
  TERN_RETURN_IF_ERROR(read_int("ffn", &c.ffn));
  TERN_RETURN_IF_ERROR(read_int("vocab", &c.vocab));
  TERN_RETURN_IF_ERROR(read_int("max_seq", &c.max_seq));
  TERN_RETURN_IF_ERROR(read_float("rope_theta", &c.rope_theta));
  double eps = c.norm_eps;
  TERN_RETURN_IF_ERROR(read_float("norm_eps", &eps));
  c.norm_eps = static_cast<float>(eps);
  bool relu2 = c.activation == ref::Activation::kReLU2;
  TERN_RETURN_IF_ERROR(read_choice("activation", "relu2", "silu", &relu2));
  c.activation = relu2 ? ref::Activation::kReLU2 : ref::Activation::kSiLU;
  bool ternary = c.linear == LinearKind::kTernary;
  TERN_RETURN_IF_ERROR(read_choice("linear", "ternary", "dense", &ternary));
  c.linear = ternary ? LinearKind::kTernary : LinearKind::kDense;
  bool neox = c.rope_style == ref::RopeStyle::kNeox;
  TERN_RETURN_IF_ERROR(read_choice("rope_style", "neox", "interleaved", &neox));
  c.rope_style = neox ? ref::RopeStyle::kNeox : ref::RopeStyle::kInterleaved;
  TERN_RETURN_IF_ERROR(read_bool("tied_embeddings", &c.tied_embeddings));
  TERN_RETURN_IF_ERROR(read_bool("sub_norms", &c.sub_norms));
  TERN_RETURN_IF_ERROR(c.validate());
  return c;
}

std::string model_config_to_json(const ModelConfig& c) {
  nlohmann::json j = {
      {"hidden", c.hidden},
      {"layers", c.layers},
      {"heads", c.heads},
      {"kv_heads", c.kv_heads},
      {"head_dim", c.head_dim},
      {"ffn", c.ffn},
      {"vocab", c.vocab},
      {"max_seq", c.max_seq},
      {"rope_theta", c.rope_theta},
      {"norm_eps", c.norm_eps},
      {"activation", c.activation == ref::Activation::kReLU2 ? "relu2" : "silu"},
      {"linear", c.linear == LinearKind::kTernary ? "ternary" : "dense"},
      {"rope_style", c.rope_style == ref::RopeStyle::kNeox ? "neox" : "interleaved"},
      {"tied_embeddings", c.tied_embeddings},
      {"sub_norms", c.sub_norms},
  };
  return j.dump();
}

}  // namespace tern
