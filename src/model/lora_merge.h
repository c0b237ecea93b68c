// Merging a LoRA adapter into its base: W' = W + (alpha/r)·B·A for every
// target linear, as a new full (fp32) model that write_model_gguf can save.
//
// Dense bases merge exactly (up to fp32 rounding of the sum). A ternary base
// cannot hold W + ΔW exactly: the merged latent weights γ·q + ΔW are
// re-quantized with absmean when the model is written, which is lossy — the
// merged file runs anywhere llama.cpp runs, the adapter file stays the exact form.
// The fp32 model needs 4 bytes per parameter. Pure function; not synchronized.
#pragma once

#include "core/status.h"
#include "model/bitnet.h"

namespace tern {

// `lora` must be a LoRA model (is_lora()).
Result<BitNetModel> merge_lora(const BitNetModel& lora);

}  // namespace tern
