// Hugging Face checkpoints (config.json + *.safetensors) as tern models.
//
// Supported layouts:
//  - BitNetForCausalLM (Microsoft BitNet b1.58 2B-4T): ternary weights packed four
//    output rows per uint8 plus a `weight_scale` per linear (multiplied for
//    quantization_config.linear_class "autobitlinear", divided for "bitlinear"),
//    or the bf16 master-weight variant (quantized with absmean on conversion);
//  - BitnetForCausalLM (1bitLLM bitnet_b1_58): fp16 latent weights, sub-norms
//    named inner_attn_ln / ffn_layernorm, quantized on conversion;
//  - LlamaForCausalLM: dense. q/k rows are permuted into llama.cpp's interleaved
//    RoPE order, so the GGUF runs unchanged in llama.cpp and in tern.
// Inputs are untrusted: unknown architectures, missing tensors and wrong shapes
// or dtypes are errors that name the directory and the tensor. Not synchronized.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "format/safetensors.h"
#include "model/config.h"
#include "model/model_file.h"
#include "model/weight_source.h"

namespace tern {

// Serves a checkpoint's tensors under tern's (GGUF) names.
class HfWeightSource final : public WeightSource {
 public:
  static Result<std::unique_ptr<HfWeightSource>> open(const std::string& dir);

  const ModelConfig& config() const { return config_; }

  Status read(std::string_view name, std::span<const int64_t> shape, std::span<float> out) override;
  Result<ref::TernaryMatrix> read_ternary(std::string_view name, int64_t rows,
                                          int64_t cols) override;

  enum class Flavor { kBitNet, kOneBitLlm, kLlama };

 private:
  HfWeightSource(safetensors::SafetensorsDir dir, ModelConfig config, Flavor flavor,
                 bool divide_scale)
      : dir_(std::move(dir)), config_(config), flavor_(flavor), divide_scale_(divide_scale) {}
  Result<std::string> hf_name(std::string_view gguf_name) const;
  Result<const safetensors::TensorInfo*> tensor(const std::string& hf_name,
                                                const safetensors::SafetensorsFile** file) const;
  Result<ref::TernaryMatrix> unpack(const std::string& hf_name, int64_t rows, int64_t cols) const;

  safetensors::SafetensorsDir dir_;
  ModelConfig config_;
  Flavor flavor_;
  bool divide_scale_;
};

// Converts a checkpoint directory to a model GGUF (see model_file.h).
Status convert_hf_to_gguf(const std::string& hf_dir, const std::string& gguf_path,
                          const ModelWriteOptions& options = {});

}  // namespace tern
