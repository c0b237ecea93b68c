// Model and LoRA-adapter GGUF files that interoperate with llama.cpp.
//
// Architectures read: `bitnet` (llama.cpp: ternary, SiLU, sub-norms), `bitnet-b1.58`
// and `bitnet-25` (Microsoft's BitNet 2B-4T naming: ternary, ReLU²) and `llama`
// (dense, SiLU, interleaved RoPE). tern writes ternary SiLU models as `bitnet`,
// ternary ReLU² models as `bitnet-b1.58`, dense models as `llama`, and records
// its own keys (`tern.ffn_activation`, …) so a round trip is exact.
//
// Ternary linears are written as TQ2_0 (or TQ1_0) codes with a block scale of 1
// plus an F32 `<name>.scale` tensor holding tern's fp32 scale, which llama.cpp
// multiplies in after the product: exact for both programs. Rows whose length
// is not a multiple of 256 (the TQ block size) are written as F16 codes in
// {−1, 0, 1} (exact) with the same `.scale` tensor. See docs/formats.md.
// Files are untrusted: every key, type and shape is checked; errors name the
// file and the offending item. Read-only objects are safe to share across threads.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "format/gguf.h"
#include "model/bitnet.h"
#include "model/config.h"
#include "model/weight_source.h"

namespace tern {

// Model configuration from a model GGUF's metadata (and tensor presence).
Result<ModelConfig> model_config_from_gguf(const gguf::GgufFile& file);

// A model GGUF as a source of initial weights (any supported tensor type is
// decoded to fp32; ternary linears are read as codes without an fp32 detour
// when the file holds exact ternary codes).
class GgufModelSource final : public WeightSource {
 public:
  static Result<std::unique_ptr<GgufModelSource>> open(const std::string& path);

  const ModelConfig& config() const { return config_; }
  const gguf::GgufFile& file() const { return file_; }

  Status read(std::string_view name, std::span<const int64_t> shape, std::span<float> out) override;
  Result<ref::TernaryMatrix> read_ternary(std::string_view name, int64_t rows,
                                          int64_t cols) override;

 private:
  GgufModelSource(gguf::GgufFile file, ModelConfig config, std::string path)
      : file_(std::move(file)), config_(config), path_(std::move(path)) {}
  Result<const gguf::TensorInfo*> find(std::string_view name, std::span<const int64_t> shape) const;

  gguf::GgufFile file_;
  ModelConfig config_;
  std::string path_;
};

// How ternary linears are stored: packed codes (TQ2_0 / TQ1_0, what inference
// reads), or, for a fully trained model, its latent fp32 weights as F32 (a
// training checkpoint that reloads bit-exactly, e.g. a swarm's epoch file).
enum class TernaryFileType { kTQ2_0, kTQ1_0, kLatentF32 };

struct ModelWriteOptions {
  TernaryFileType ternary_type = TernaryFileType::kTQ2_0;
  std::string name;  // general.name (optional)
  // Extra metadata (tokenizer keys, …), written after the model keys.
  std::vector<std::pair<std::string, gguf::Value>> extra_metadata;
};

// The tokenizer.* metadata of a GGUF file (a vocabulary from `tern tokenizer
// train`, or a model), in file order, for ModelWriteOptions::extra_metadata.
std::vector<std::pair<std::string, gguf::Value>> tokenizer_metadata(const gguf::GgufFile& file);

// Writes the model's base (LoRA adapters excluded) atomically.
Status write_model_gguf(const std::string& path, const BitNetModel& model,
                        const ModelWriteOptions& options = {});

// The llama.cpp architecture name tern uses for a config.
std::string gguf_architecture(const ModelConfig& config);

// LoRA adapter in llama.cpp's `--lora` format: general.type = adapter,
// adapter.type = lora, adapter.lora.alpha, tensors <linear>.weight.lora_a
// (ggml [n_in, r]) and .lora_b (ggml [r, n_out]), F32.
Status write_lora_adapter(const std::string& path, const BitNetModel& model);

// The LoRA configuration an adapter file describes (rank from the tensor
// shapes, alpha from metadata, targets from the tensor names), checked against
// the base model's config.
Result<LoraConfig> lora_config_from_adapter(const gguf::GgufFile& adapter, const ModelConfig& base);

// Loads an adapter's A/B tensors into a LoRA model built with the adapter's config.
Status load_lora_adapter(const std::string& path, BitNetModel& model);

}  // namespace tern
