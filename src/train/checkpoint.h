// Training checkpoints: everything a run needs to continue bit-identically.
//
// One GGUF file (general.type = "tern.checkpoint") holding the trainable
// parameters, the AdamW moments, the optimizer and trainer step counts, the
// data RNG state, and the model (and LoRA) configuration as JSON. A CRC-32 over
// every tensor's bytes and the state values is stored in the file and checked
// on load. Writing is atomic (temporary file, fsync, rename), so a crash during
// a save leaves the previous checkpoint intact. For LoRA runs the frozen base is
// not stored: it comes from its own model file.
// Functions are stateless; callers serialize access to the model and trainer.
#pragma once

#include <optional>
#include <string>

#include "core/status.h"
#include "model/bitnet.h"
#include "model/config.h"
#include "train/trainer.h"

namespace tern {

struct CheckpointHeader {
  ModelConfig model;
  std::optional<LoraConfig> lora;  // set for LoRA runs
  int64_t step = 0;                // optimizer steps done
};

Status save_checkpoint(const std::string& path, const BitNetModel& model, const Trainer& trainer);

// Reads only what is needed to build the model before load_checkpoint().
Result<CheckpointHeader> read_checkpoint_header(const std::string& path);

// Restores parameters, optimizer state, step and RNG into a model built from the
// checkpoint's header and a trainer over it. Any mismatch (layout, shapes,
// checksum) is an error naming the file and the offending item; the model and
// trainer are only modified once everything has been validated.
Status load_checkpoint(const std::string& path, BitNetModel& model, Trainer& trainer);

}  // namespace tern
