#include "model/hf_convert.h"

#include <nlohmann/json.hpp>

#include "model/bitnet.h"

namespace tern {
namespace {

Result<int64_t> int_field(const nlohmann::json& j, const char* key, std::optional<int64_t> dflt) {
  if (!j.contains(key) || j[key].is_null()) {
    if (dflt) return *dflt;
    return Status::Error(std::string("config.json: missing '") + key + "'");
  }
  if (!j[key].is_number_integer()) {
    return Status::Error(std::string("config.json: '") + key + "' is " + j[key].dump() +
                         ", not an integer");
  }
  return j[key].get<int64_t>();
}

Result<double> float_field(const nlohmann::json& j, const char* key, double dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_number()) {
    return Status::Error(std::string("config.json: '") + key + "' is " + j[key].dump() +
                         ", not a number");
  }
  return j[key].get<double>();
}

// Row order for llama.cpp's interleaved RoPE: within each head, HF keeps the two
// halves of every rotated pair hd/2 apart; llama.cpp wants them adjacent.
int64_t interleaved_row(int64_t row, int64_t head_dim) {
  const int64_t head = row / head_dim, j = row % head_dim, half = head_dim / 2;
  return head * head_dim + (j % half) * 2 + j / half;
}

}  // namespace

Result<std::unique_ptr<HfWeightSource>> HfWeightSource::open(const std::string& path) {
  Result<safetensors::SafetensorsDir> dir = safetensors::SafetensorsDir::open(path);
  if (!dir.ok()) return dir.status().with_context("convert");
  const nlohmann::json& j = dir.value().config();
  const std::string where = "convert '" + path + "'";
  if (!j.is_object() || !j.contains("architectures") || !j["architectures"].is_array() ||
      j["architectures"].empty() || !j["architectures"][0].is_string()) {
    return Status::Error(where + ": config.json has no 'architectures' list");
  }
  const std::string arch = j["architectures"][0].get<std::string>();
  Flavor flavor;
  if (arch == "BitNetForCausalLM") {
    flavor = Flavor::kBitNet;
  } else if (arch == "BitnetForCausalLM") {
    flavor = Flavor::kOneBitLlm;
  } else if (arch == "LlamaForCausalLM") {
    flavor = Flavor::kLlama;
  } else {
    return Status::Error(where + ": architecture '" + arch +
                         "' is not supported (BitNetForCausalLM, BitnetForCausalLM, "
                         "LlamaForCausalLM)");
  }
  ModelConfig c;
  auto fields = [&]() -> Status {
    TERN_ASSIGN_OR_RETURN(c.hidden, int_field(j, "hidden_size", std::nullopt));
    TERN_ASSIGN_OR_RETURN(c.layers, int_field(j, "num_hidden_layers", std::nullopt));
    TERN_ASSIGN_OR_RETURN(c.heads, int_field(j, "num_attention_heads", std::nullopt));
    TERN_ASSIGN_OR_RETURN(c.kv_heads, int_field(j, "num_key_value_heads", c.heads));
    TERN_ASSIGN_OR_RETURN(c.ffn, int_field(j, "intermediate_size", std::nullopt));
    TERN_ASSIGN_OR_RETURN(c.vocab, int_field(j, "vocab_size", std::nullopt));
    TERN_ASSIGN_OR_RETURN(c.max_seq, int_field(j, "max_position_embeddings", 2048));
    if (c.heads <= 0) return Status::Error("config.json: num_attention_heads must be > 0");
    TERN_ASSIGN_OR_RETURN(c.head_dim, int_field(j, "head_dim", c.hidden / c.heads));
    TERN_ASSIGN_OR_RETURN(c.rope_theta, float_field(j, "rope_theta", 10000.0));
    TERN_ASSIGN_OR_RETURN(double eps, float_field(j, "rms_norm_eps", 1e-5));
    c.norm_eps = static_cast<float>(eps);
    return Status::Ok();
  };
  TERN_RETURN_IF_ERROR(fields().with_context(where));
  const std::string act = j.value("hidden_act", std::string("silu"));
  if (act != "silu" && act != "relu2") {
    return Status::Error(where + ": hidden_act '" + act + "' is not supported (silu, relu2)");
  }
  c.activation = act == "silu" ? ref::Activation::kSiLU : ref::Activation::kReLU2;
  c.linear = flavor == Flavor::kLlama ? LinearKind::kDense : LinearKind::kTernary;
  c.sub_norms = flavor != Flavor::kLlama;
  c.tied_embeddings = dir.value().find("lm_head.weight") == nullptr;
  c.rope_style = flavor == Flavor::kLlama ? ref::RopeStyle::kInterleaved : ref::RopeStyle::kNeox;
  TERN_RETURN_IF_ERROR(c.validate().with_context(where));
  bool divide = false;
  if (j.contains("quantization_config") && j["quantization_config"].is_object()) {
    divide = j["quantization_config"].value("linear_class", std::string()) == "bitlinear";
  }
  return std::unique_ptr<HfWeightSource>(
      new HfWeightSource(std::move(dir).value(), c, flavor, divide));
}

Result<std::string> HfWeightSource::hf_name(std::string_view gguf_name) const {
  const std::string name(gguf_name);
  if (name == "token_embd.weight") return std::string("model.embed_tokens.weight");
  if (name == "output_norm.weight") return std::string("model.norm.weight");
  if (name == "output.weight") return std::string("lm_head.weight");
  const size_t dot = name.find('.', 4);
  if (!name.starts_with("blk.") || dot == std::string::npos) {
    return Status::Error("convert: no Hugging Face name for '" + name + "'");
  }
  const std::string layer = "model.layers." + name.substr(4, dot - 4) + ".";
  const std::string rest = name.substr(dot + 1);
  const bool one_bit = flavor_ == Flavor::kOneBitLlm;
  const std::pair<const char*, std::string> table[] = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
      {"attn_sub_norm.weight",
       one_bit ? "self_attn.inner_attn_ln.weight" : "self_attn.attn_sub_norm.weight"},
      {"ffn_sub_norm.weight", one_bit ? "mlp.ffn_layernorm.weight" : "mlp.ffn_sub_norm.weight"},
  };
  for (const auto& [gguf, hf] : table) {
    if (rest == gguf) return layer + hf;
  }
  return Status::Error("convert: no Hugging Face name for '" + name + "'");
}

Result<const safetensors::TensorInfo*> HfWeightSource::tensor(
    const std::string& name, const safetensors::SafetensorsFile** file) const {
  const safetensors::TensorInfo* t = dir_.find(name, file);
  if (t == nullptr) {
    return Status::Error("convert '" + dir_.path() + "': no tensor '" + name + "'");
  }
  return t;
}

Result<ref::TernaryMatrix> HfWeightSource::unpack(const std::string& name, int64_t rows,
                                                  int64_t cols) const {
  const std::string where = "convert '" + dir_.path() + "': tensor '" + name + "'";
  const safetensors::SafetensorsFile* file = nullptr;
  TERN_ASSIGN_OR_RETURN(const safetensors::TensorInfo* t, tensor(name, &file));
  if (rows % 4 != 0 || t->shape != std::vector<int64_t>{rows / 4, cols}) {
    return Status::Error(where + ": packed shape does not match [" + std::to_string(rows) + "/4, " +
                         std::to_string(cols) + "]");
  }
  const safetensors::SafetensorsFile* scale_file = nullptr;
  TERN_ASSIGN_OR_RETURN(const safetensors::TensorInfo* s, tensor(name + "_scale", &scale_file));
  if (s->elements() != 1) return Status::Error(where + "_scale: expected one element");
  float scale = 0.0f;
  TERN_RETURN_IF_ERROR(scale_file->read_f32(*s, {&scale, 1}));
  if (!(scale > 0.0f) || !std::isfinite(scale)) {
    return Status::Error(where + "_scale = " + std::to_string(scale) + " (must be > 0)");
  }
  // Output row i·P + p lives in bits 2i..2i+1 of packed row p, as code + 1.
  const std::span<const uint8_t> bytes = file->bytes(*t);
  const int64_t block = rows / 4;
  std::vector<int8_t> codes(static_cast<size_t>(rows * cols));
  for (int64_t p = 0; p < block; ++p) {
    for (int64_t col = 0; col < cols; ++col) {
      const uint8_t byte = bytes[static_cast<size_t>(p * cols + col)];
      for (int64_t i = 0; i < 4; ++i) {
        const int code = ((byte >> (2 * i)) & 3) - 1;
        if (code > 1) return Status::Error(where + ": invalid 2-bit code 3");
        codes[static_cast<size_t>((i * block + p) * cols + col)] = static_cast<int8_t>(code);
      }
    }
  }
  return ref::pack_ternary(codes.data(), rows, cols, divide_scale_ ? 1.0f / scale : scale);
}

Status HfWeightSource::read(std::string_view name, std::span<const int64_t> shape,
                            std::span<float> out) {
  TERN_ASSIGN_OR_RETURN(std::string hf, hf_name(name));
  const safetensors::SafetensorsFile* file = nullptr;
  TERN_ASSIGN_OR_RETURN(const safetensors::TensorInfo* t, tensor(hf, &file));
  if (t->dtype == safetensors::DType::kU8 && shape.size() == 2) {  // packed ternary
    TERN_ASSIGN_OR_RETURN(ref::TernaryMatrix m, unpack(hf, shape[0], shape[1]));
    ternary_latents(m, out);  // full training starts exactly at the packed weights
    return Status::Ok();
  }
  if (t->shape != std::vector<int64_t>(shape.begin(), shape.end())) {
    return Status::Error("convert '" + dir_.path() + "': tensor '" + hf +
                         "' has another shape than tern expects for '" + std::string(name) + "'");
  }
  TERN_RETURN_IF_ERROR(file->read_f32(*t, out));
  const bool q = name.ends_with("attn_q.weight"), k = name.ends_with("attn_k.weight");
  if (flavor_ == Flavor::kLlama && (q || k)) {
    const std::vector<float> hf_rows(out.begin(), out.end());
    const int64_t rows = shape[0], cols = shape[1];
    for (int64_t r = 0; r < rows; ++r) {
      std::copy_n(hf_rows.data() + r * cols, cols,
                  out.data() + interleaved_row(r, config_.head_dim) * cols);
    }
  }
  return Status::Ok();
}

Result<ref::TernaryMatrix> HfWeightSource::read_ternary(std::string_view name, int64_t rows,
                                                        int64_t cols) {
  TERN_ASSIGN_OR_RETURN(std::string hf, hf_name(name));
  const safetensors::TensorInfo* t = dir_.find(hf);
  if (t != nullptr && t->dtype == safetensors::DType::kU8) return unpack(hf, rows, cols);
  return WeightSource::read_ternary(name, rows, cols);  // latent weights: absmean
}

Status convert_hf_to_gguf(const std::string& hf_dir, const std::string& gguf_path,
                          const ModelWriteOptions& options) {
  TERN_ASSIGN_OR_RETURN(std::unique_ptr<HfWeightSource> source, HfWeightSource::open(hf_dir));
  TERN_ASSIGN_OR_RETURN(BitNetModel model, BitNetModel::create_frozen(source->config(), *source));
  return write_model_gguf(gguf_path, model, options);
}

}  // namespace tern
