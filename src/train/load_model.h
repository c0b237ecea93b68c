// load_model: a model GGUF (and optionally a LoRA adapter GGUF) ready for
// inference, with the tokenizer its metadata describes.
//
// Without an adapter the model is frozen (BitNetModel::create_frozen: ternary
// linears packed at 2 bits, nothing trainable). With one, the model is built in
// LoRA mode with the adapter's configuration (rank from the tensor shapes,
// alpha from the metadata, targets from the tensor names) and the adapter's A/B
// tensors loaded. The tokenizer comes from the model file's tokenizer.ggml.*
// keys when present; a vocabulary larger than the model's is an error.
// Files are untrusted: errors name the file. Returns owned values; no shared state.
#pragma once

#include <optional>
#include <string>

#include "core/status.h"
#include "model/bitnet.h"
#include "tokenizer/tokenizer.h"

namespace tern {

struct LoadedModel {
  BitNetModel model;
  std::optional<Tokenizer> tokenizer;  // absent when the file has no tokenizer metadata
};

Result<LoadedModel> load_model(const std::string& model_path, const std::string& lora_path = "");

// The tokenizer of a loaded model, or "model '<path>' has no tokenizer metadata".
Result<Tokenizer> require_tokenizer(const LoadedModel& loaded, const std::string& model_path);

}  // namespace tern
