#include "model/model_file.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "format/ggml_quants.h"

namespace tern {
namespace {

constexpr int64_t kTqBlock = 256;

bool is_bitnet_arch(std::string_view arch) {
  return arch == "bitnet" || arch == "bitnet-b1.58" || arch == "bitnet-25";
}

std::vector<int64_t> ggml_dims(std::span<const int64_t> shape) {
  return {shape.rbegin(), shape.rend()};
}

std::string shape_text(std::span<const int64_t> dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// "blk.0.attn_q.weight" → "blk.0.attn_q.scale": llama.cpp's optional per-tensor scale.
std::string scale_name(std::string_view weight_name) {
  std::string name(weight_name);
  if (name.ends_with(".weight")) name.resize(name.size() - 7);
  return name + ".scale";
}

Result<const gguf::TensorInfo*> find_checked(const gguf::GgufFile& file, const std::string& path,
                                             std::string_view name,
                                             std::span<const int64_t> shape) {
  const gguf::TensorInfo* t = file.find_tensor(name);
  if (t == nullptr) {
    return Status::Error("model file '" + path + "': no tensor '" + std::string(name) + "'");
  }
  if (t->dims != ggml_dims(shape)) {
    return Status::Error("model file '" + path + "': tensor '" + std::string(name) +
                         "' has ggml dims " + shape_text(t->dims) + ", expected " +
                         shape_text(ggml_dims(shape)));
  }
  return t;
}

// The optional `.scale` multiplier of a weight (1 when absent).
Result<float> tensor_scale(const gguf::GgufFile& file, const std::string& path,
                           std::string_view weight_name) {
  const gguf::TensorInfo* t = file.find_tensor(scale_name(weight_name));
  if (t == nullptr) return 1.0f;
  if (t->elements() != 1) {
    return Status::Error("model file '" + path + "': '" + t->name + "' has " +
                         std::to_string(t->elements()) + " elements, expected 1");
  }
  float scale = 0.0f;
  TERN_RETURN_IF_ERROR(file.read_tensor_f32(*t, {&scale, 1}));
  if (!std::isfinite(scale)) {
    return Status::Error("model file '" + path + "': '" + t->name + "' is not finite");
  }
  return scale;
}

// Tensors of any GGUF by name, shape-checked (adapters, and the model source).
Status read_f32(const gguf::GgufFile& file, const std::string& path, std::string_view name,
                std::span<const int64_t> shape, std::span<float> out) {
  TERN_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, find_checked(file, path, name, shape));
  TERN_RETURN_IF_ERROR(file.read_tensor_f32(*t, out).with_context("model file '" + path + "'"));
  TERN_ASSIGN_OR_RETURN(float scale, tensor_scale(file, path, name));
  if (scale != 1.0f) {
    for (float& v : out) v *= scale;
  }
  return Status::Ok();
}

class GgufTensorSource final : public WeightSource {
 public:
  GgufTensorSource(const gguf::GgufFile& file, std::string path)
      : file_(file), path_(std::move(path)) {}
  Status read(std::string_view name, std::span<const int64_t> shape,
              std::span<float> out) override {
    return read_f32(file_, path_, name, shape, out);
  }

 private:
  const gguf::GgufFile& file_;
  std::string path_;
};

Result<int64_t> get_int_or(const gguf::GgufFile& f, const std::string& key, int64_t fallback) {
  if (!f.has(key)) return fallback;
  return f.get_int(key);
}

Result<double> get_float_or(const gguf::GgufFile& f, const std::string& key, double fallback) {
  if (!f.has(key)) return fallback;
  return f.get_float(key);
}

bool is_linear_weight(std::string_view name) {
  if (!name.starts_with("blk.")) return false;
  for (int i = 0; i < kNumLinears; ++i) {
    const std::string example = linear_tensor_name(0, static_cast<LinearId>(i));
    const std::string_view stem = std::string_view(example).substr(5);  // ".attn_q.weight"
    if (name.ends_with(stem)) return true;
  }
  return false;
}

// If every value is 0 or ±m for one m > 0, the codes and m; used to take back
// exact ternary weights stored in a float type.
bool exact_ternary(std::span<const float> values, std::vector<int8_t>* codes, float* magnitude) {
  float m = 0.0f;
  for (float v : values) {
    const float a = std::fabs(v);
    if (a == 0.0f) continue;
    if (m == 0.0f) m = a;
    if (a != m) return false;
  }
  codes->resize(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    (*codes)[i] = static_cast<int8_t>(values[i] > 0.0f ? 1 : (values[i] < 0.0f ? -1 : 0));
  }
  *magnitude = m == 0.0f ? ref::kWeightScaleEps : m;
  return true;
}

}  // namespace

Result<ModelConfig> model_config_from_gguf(const gguf::GgufFile& f) {
  TERN_ASSIGN_OR_RETURN(std::string arch, f.get_string("general.architecture"));
  if (!is_bitnet_arch(arch) && arch != "llama") {
    return Status::Error("architecture '" + arch +
                         "' is not supported (expected bitnet, bitnet-b1.58, bitnet-25 or llama)");
  }
  auto key = [&](const char* suffix) { return arch + "." + suffix; };
  ModelConfig c;
  TERN_ASSIGN_OR_RETURN(c.hidden, f.get_int(key("embedding_length")));
  TERN_ASSIGN_OR_RETURN(c.layers, f.get_int(key("block_count")));
  TERN_ASSIGN_OR_RETURN(c.ffn, f.get_int(key("feed_forward_length")));
  TERN_ASSIGN_OR_RETURN(c.heads, f.get_int(key("attention.head_count")));
  if (c.heads <= 0) {
    return Status::Error(key("attention.head_count") + " = " + std::to_string(c.heads));
  }
  TERN_ASSIGN_OR_RETURN(c.kv_heads, get_int_or(f, key("attention.head_count_kv"), c.heads));
  TERN_ASSIGN_OR_RETURN(c.head_dim, get_int_or(f, key("attention.key_length"), c.hidden / c.heads));
  TERN_ASSIGN_OR_RETURN(c.max_seq, get_int_or(f, key("context_length"), 2048));
  TERN_ASSIGN_OR_RETURN(c.rope_theta, get_float_or(f, key("rope.freq_base"), 10000.0));
  TERN_ASSIGN_OR_RETURN(double eps, get_float_or(f, key("attention.layer_norm_rms_epsilon"), 1e-5));
  c.norm_eps = static_cast<float>(eps);
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) {
    return Status::Error("no 2-D tensor 'token_embd.weight'");
  }
  TERN_ASSIGN_OR_RETURN(c.vocab, get_int_or(f, key("vocab_size"), embd->dims[1]));
  c.linear = is_bitnet_arch(arch) ? LinearKind::kTernary : LinearKind::kDense;
  c.sub_norms = f.find_tensor("blk.0.attn_sub_norm.weight") != nullptr;
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  // llama.cpp's bitnet graph uses SiLU and neox RoPE; the 2B-4T names use ReLU².
  std::string activation = (arch == "bitnet" || arch == "llama") ? "silu" : "relu2";
  if (f.has("tern.ffn_activation")) {
    TERN_ASSIGN_OR_RETURN(activation, f.get_string("tern.ffn_activation"));
  }
  if (activation != "silu" && activation != "relu2") {
    return Status::Error("tern.ffn_activation = '" + activation + "' (expected silu or relu2)");
  }
  c.activation = activation == "silu" ? ref::Activation::kSiLU : ref::Activation::kReLU2;
  std::string rope = arch == "llama" ? "interleaved" : "neox";
  if (f.has("tern.rope_style")) {
    TERN_ASSIGN_OR_RETURN(rope, f.get_string("tern.rope_style"));
  }
  if (rope != "neox" && rope != "interleaved") {
    return Status::Error("tern.rope_style = '" + rope + "' (expected neox or interleaved)");
  }
  c.rope_style = rope == "neox" ? ref::RopeStyle::kNeox : ref::RopeStyle::kInterleaved;
  TERN_RETURN_IF_ERROR(c.validate());
  return c;
}

Result<std::unique_ptr<GgufModelSource>> GgufModelSource::open(const std::string& path) {
  Result<gguf::GgufFile> file = gguf::GgufFile::open(path);
  if (!file.ok()) return file.status().with_context("open model");
  Result<ModelConfig> config = model_config_from_gguf(file.value());
  if (!config.ok()) return config.status().with_context("model file '" + path + "'");
  // Metadata alone must not make tern allocate a huge model: the file has to be
  // big enough to hold the weights it describes (TQ1_0, the densest type tern
  // reads, needs 54 bytes per 256 weights).
  const double needed = static_cast<double>(config.value().num_params()) * 54.0 / 256.0;
  if (static_cast<double>(file.value().bytes().size()) < needed) {
    return Status::Error("model file '" + path +
                         "': " + std::to_string(file.value().bytes().size()) +
                         " bytes cannot hold the " + std::to_string(config.value().num_params()) +
                         " parameters its metadata describes");
  }
  return std::unique_ptr<GgufModelSource>(
      new GgufModelSource(std::move(file).value(), config.value(), path));
}

Result<const gguf::TensorInfo*> GgufModelSource::find(std::string_view name,
                                                      std::span<const int64_t> shape) const {
  return find_checked(file_, path_, name, shape);
}

Status GgufModelSource::read(std::string_view name, std::span<const int64_t> shape,
                             std::span<float> out) {
  TERN_RETURN_IF_ERROR(read_f32(file_, path_, name, shape, out));
  // Full training from a file of ternary weights: start from latents that
  // quantize back to the stored codes and scale exactly. Genuine latents (any
  // other values) are returned as they are.
  if (config_.linear != LinearKind::kTernary || !is_linear_weight(name)) return Status::Ok();
  std::vector<int8_t> codes;
  float magnitude = 0.0f;
  if (exact_ternary(out, &codes, &magnitude)) {
    ternary_latents(ref::pack_ternary(codes.data(), shape[0], shape[1], magnitude), out);
  }
  return Status::Ok();
}

Result<ref::TernaryMatrix> GgufModelSource::read_ternary(std::string_view name, int64_t rows,
                                                         int64_t cols) {
  const int64_t shape[2] = {rows, cols};
  TERN_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, find(name, shape));
  TERN_ASSIGN_OR_RETURN(float scale, tensor_scale(file_, path_, name));
  std::vector<int8_t> codes(static_cast<size_t>(rows * cols));
  if (t->type == GgmlType::kTQ2_0 || t->type == GgmlType::kTQ1_0) {
    // Codes straight from the blocks; exact when every block shares one scale.
    const std::span<const uint8_t> bytes = file_.tensor_bytes(*t);
    const int64_t blocks_per_row = cols / kTqBlock;
    const auto row_size = static_cast<size_t>(blocks_per_row * block_bytes(t->type));
    std::vector<float> block_scales(static_cast<size_t>(blocks_per_row));
    bool uniform = true;
    float first = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* row = bytes.data() + static_cast<size_t>(r) * row_size;
      int8_t* out = codes.data() + r * cols;
      if (t->type == GgmlType::kTQ2_0) {
        unpack_tq2_0(row, cols, out, block_scales.data());
      } else {
        unpack_tq1_0(row, cols, out, block_scales.data());
      }
      for (int64_t c = 0; c < cols; ++c) {
        if (out[c] < -1 || out[c] > 1) {  // TQ2_0's unused field value 3
          return Status::Error("model file '" + path_ + "': tensor '" + std::string(name) +
                               "' holds code " + std::to_string(out[c]) + " at row " +
                               std::to_string(r) + ", column " + std::to_string(c) +
                               " (not ternary)");
        }
      }
      if (r == 0) first = block_scales[0];
      for (float s : block_scales) uniform &= s == first;
    }
    if (uniform && first > 0.0f && std::isfinite(first)) {
      return ref::pack_ternary(codes.data(), rows, cols, first * scale);
    }
  }
  // Any other layout: decode to fp32 (one tensor at a time), take exact ternary
  // values back as they are, requantize anything else with absmean.
  std::vector<float> values(static_cast<size_t>(rows * cols));
  TERN_RETURN_IF_ERROR(read_f32(file_, path_, name, shape, values));
  float magnitude = 0.0f;
  if (exact_ternary(values, &codes, &magnitude)) {
    return ref::pack_ternary(codes.data(), rows, cols, magnitude);
  }
  ref::TernaryMatrix m;
  ref::quantize_weights_absmean(&m, values.data(), rows, cols);
  return m;
}

std::string gguf_architecture(const ModelConfig& c) {
  if (c.linear == LinearKind::kDense) return "llama";
  return c.activation == ref::Activation::kSiLU ? "bitnet" : "bitnet-b1.58";
}

std::vector<std::pair<std::string, gguf::Value>> tokenizer_metadata(const gguf::GgufFile& file) {
  std::vector<std::pair<std::string, gguf::Value>> out;
  for (const auto& [key, value] : file.metadata()) {
    if (key.starts_with("tokenizer.")) out.emplace_back(key, value);
  }
  return out;
}

Status write_model_gguf(const std::string& path, const BitNetModel& model,
                        const ModelWriteOptions& options) {
  const ModelConfig& c = model.config();
  const std::string arch = gguf_architecture(c);
  auto key = [&](const char* suffix) { return arch + "." + suffix; };
  gguf::GgufWriter w;
  w.set_string("general.architecture", arch);
  if (!options.name.empty()) w.set_string("general.name", options.name);
  w.set_u32(key("context_length"), static_cast<uint32_t>(c.max_seq));
  w.set_u32(key("embedding_length"), static_cast<uint32_t>(c.hidden));
  w.set_u32(key("block_count"), static_cast<uint32_t>(c.layers));
  w.set_u32(key("feed_forward_length"), static_cast<uint32_t>(c.ffn));
  w.set_u32(key("attention.head_count"), static_cast<uint32_t>(c.heads));
  w.set_u32(key("attention.head_count_kv"), static_cast<uint32_t>(c.kv_heads));
  w.set_u32(key("rope.dimension_count"), static_cast<uint32_t>(c.head_dim));
  if (c.head_dim * c.heads != c.hidden) {
    w.set_u32(key("attention.key_length"), static_cast<uint32_t>(c.head_dim));
    w.set_u32(key("attention.value_length"), static_cast<uint32_t>(c.head_dim));
  }
  w.set_f32(key("rope.freq_base"), static_cast<float>(c.rope_theta));
  w.set_f32(key("attention.layer_norm_rms_epsilon"), c.norm_eps);
  w.set_u32(key("vocab_size"), static_cast<uint32_t>(c.vocab));
  w.set_string("tern.ffn_activation", c.activation == ref::Activation::kSiLU ? "silu" : "relu2");
  w.set_string("tern.rope_style", c.rope_style == ref::RopeStyle::kNeox ? "neox" : "interleaved");
  for (const auto& [k, v] : options.extra_metadata) w.set_value(k, v);

  const GgmlType tq =
      options.ternary_type == TernaryFileType::kTQ1_0 ? GgmlType::kTQ1_0 : GgmlType::kTQ2_0;
  for (const BitNetModel::BaseTensor& t : model.base_tensors()) {
    if (!t.f16.empty()) {  // frozen F16 storage: written as stored, exactly
      std::vector<uint8_t> bytes(t.f16.size() * sizeof(uint16_t));
      std::memcpy(bytes.data(), t.f16.data(), bytes.size());
      w.add_tensor(t.name, GgmlType::kF16, ggml_dims(t.shape), std::move(bytes));
      continue;
    }
    const bool latent =
        t.ternary && t.packed == nullptr && options.ternary_type == TernaryFileType::kLatentF32;
    if (!t.ternary || latent) {
      std::vector<uint8_t> bytes(t.values.size() * sizeof(float));
      std::memcpy(bytes.data(), t.values.data(), bytes.size());
      w.add_tensor(t.name, GgmlType::kF32, ggml_dims(t.shape), std::move(bytes));
      continue;
    }
    ref::TernaryMatrix quantized;
    const ref::TernaryMatrix* m = t.packed;
    if (m == nullptr) {  // full training: quantize the latent weights as inference would
      ref::quantize_weights_absmean(&quantized, t.values.data(), t.shape[0], t.shape[1]);
      m = &quantized;
    }
    std::vector<int8_t> row(static_cast<size_t>(m->cols));
    std::vector<uint8_t> bytes;
    GgmlType type = tq;
    if (m->cols % kTqBlock == 0) {
      const uint64_t row_size = row_bytes(tq, m->cols).value();
      bytes.resize(static_cast<size_t>(row_size * static_cast<uint64_t>(m->rows)));
      for (int64_t r = 0; r < m->rows; ++r) {
        m->unpack_row(r, row.data());
        uint8_t* out = bytes.data() + static_cast<size_t>(r) * row_size;
        if (tq == GgmlType::kTQ2_0) {
          pack_tq2_0(row.data(), m->cols, 1.0f, out);
        } else {
          pack_tq1_0(row.data(), m->cols, 1.0f, out);
        }
      }
    } else {  // documented fallback: exact codes as F16
      type = GgmlType::kF16;
      bytes.resize(static_cast<size_t>(m->rows * m->cols) * 2);
      for (int64_t r = 0; r < m->rows; ++r) {
        m->unpack_row(r, row.data());
        for (int64_t col = 0; col < m->cols; ++col) {
          const uint16_t h = fp32_to_fp16(static_cast<float>(row[static_cast<size_t>(col)]));
          std::memcpy(bytes.data() + 2 * static_cast<size_t>(r * m->cols + col), &h, 2);
        }
      }
    }
    w.add_tensor(t.name, type, ggml_dims(t.shape), std::move(bytes));
    std::vector<uint8_t> scale(sizeof(float));
    std::memcpy(scale.data(), &m->scale, sizeof(float));
    w.add_tensor(scale_name(t.name), GgmlType::kF32, {1}, std::move(scale));
  }
  return w.write(path).with_context("write model '" + path + "'");
}

Status write_lora_adapter(const std::string& path, const BitNetModel& model) {
  TERN_CHECK(model.is_lora(), "write_lora_adapter() of a model without LoRA");
  gguf::GgufWriter w;
  w.set_string("general.architecture", gguf_architecture(model.config()));
  w.set_string("general.type", "adapter");
  w.set_string("adapter.type", "lora");
  w.set_f32("adapter.lora.alpha", model.lora_config().alpha);
  for (const TensorInfo& info : model.layout().tensors()) {
    const std::span<const float> values = model.params().view(info);
    std::vector<uint8_t> bytes(values.size() * sizeof(float));
    std::memcpy(bytes.data(), values.data(), bytes.size());
    w.add_tensor(info.name, GgmlType::kF32, ggml_dims(info.shape), std::move(bytes));
  }
  return w.write(path).with_context("write LoRA adapter '" + path + "'");
}

Result<LoraConfig> lora_config_from_adapter(const gguf::GgufFile& f, const ModelConfig& base) {
  TERN_ASSIGN_OR_RETURN(std::string type, f.get_string("general.type"));
  TERN_ASSIGN_OR_RETURN(std::string adapter_type, f.get_string("adapter.type"));
  if (type != "adapter" || adapter_type != "lora") {
    return Status::Error("not a LoRA adapter (general.type '" + type + "', adapter.type '" +
                         adapter_type + "')");
  }
  LoraConfig lora;
  TERN_ASSIGN_OR_RETURN(double alpha, f.get_float("adapter.lora.alpha"));
  lora.alpha = static_cast<float>(alpha);
  lora.rank = -1;
  std::vector<std::set<LinearId>> per_layer(static_cast<size_t>(base.layers));
  for (const gguf::TensorInfo& t : f.tensors()) {
    const bool is_a = t.name.ends_with(".weight.lora_a");
    if (!is_a && !t.name.ends_with(".weight.lora_b")) {
      return Status::Error("unexpected tensor '" + t.name + "' in a LoRA adapter");
    }
    const std::string linear = t.name.substr(0, t.name.size() - 7);  // drop ".lora_a"
    bool matched = false;
    for (int64_t l = 0; l < base.layers && !matched; ++l) {
      for (int i = 0; i < kNumLinears && !matched; ++i) {
        if (linear_tensor_name(l, static_cast<LinearId>(i)) != linear) continue;
        matched = true;
        if (t.dims.size() != 2) {
          return Status::Error("tensor '" + t.name + "' has " + std::to_string(t.dims.size()) +
                               " dims, expected 2");
        }
        const int64_t rank = is_a ? t.dims[1] : t.dims[0];
        if (lora.rank != -1 && rank != lora.rank) {
          return Status::Error("tensor '" + t.name + "' has rank " + std::to_string(rank) +
                               ", other tensors have " + std::to_string(lora.rank));
        }
        lora.rank = rank;
        per_layer[static_cast<size_t>(l)].insert(static_cast<LinearId>(i));
      }
    }
    if (!matched) {
      return Status::Error("tensor '" + t.name + "' does not name a linear of this base model");
    }
  }
  if (lora.rank == -1) return Status::Error("adapter has no LoRA tensors");
  for (size_t l = 1; l < per_layer.size(); ++l) {
    if (per_layer[l] != per_layer[0]) {
      return Status::Error("adapter targets differ between block 0 and block " + std::to_string(l) +
                           " (tern applies one target set to every block)");
    }
  }
  lora.targets.assign(per_layer[0].begin(), per_layer[0].end());
  TERN_RETURN_IF_ERROR(lora.validate());
  return lora;
}

Status load_lora_adapter(const std::string& path, BitNetModel& model) {
  TERN_CHECK(model.is_lora(), "load_lora_adapter() into a model without LoRA");
  Result<gguf::GgufFile> file = gguf::GgufFile::open(path);
  if (!file.ok()) return file.status().with_context("load LoRA adapter");
  Result<LoraConfig> lora = lora_config_from_adapter(file.value(), model.config());
  if (!lora.ok()) return lora.status().with_context("LoRA adapter '" + path + "'");
  const LoraConfig& mine = model.lora_config();
  if (lora.value().rank != mine.rank || lora.value().alpha != mine.alpha ||
      lora.value().targets != mine.targets) {
    return Status::Error("LoRA adapter '" + path +
                         "': rank/alpha/targets differ from the model's LoRA configuration");
  }
  GgufTensorSource source(file.value(), path);
  return model.load_trainable(source);
}

}  // namespace tern
